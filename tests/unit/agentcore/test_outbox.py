"""The Outbox joins an answer's pieces into fewer `answerDelta` pushes (deltas.py's rule) and keeps
the contract's order: held text goes before any later message and before the final."""

from __future__ import annotations

import asyncio
from typing import cast

from synapscribe.agentcore.aws import AwsIo, Spans
from synapscribe.agentcore.outbox import Outbox
from synapscribe.contract import Answer, Audio, ServerModel, Timings


class Pushes:
    """AwsIo's push, recording what was pushed."""

    def __init__(self) -> None:
        self.pushed: list[ServerModel] = []

    async def push(self, connection_id: str, message: ServerModel, spans: Spans | None = None) -> bool:
        await asyncio.sleep(0)
        self.pushed.append(message)
        return True

    def kinds(self) -> list[tuple[str, str]]:
        return [(m.type, getattr(m, "text", "")) for m in self.pushed]  # type: ignore[attr-defined]


def outbox(pushes: Pushes, **kwargs: float) -> Outbox:
    return Outbox(cast(AwsIo, pushes), "conn", Spans(), **kwargs)


async def settle() -> None:
    for _ in range(10):
        await asyncio.sleep(0)


async def test_pieces_are_joined_until_a_sentence_ends() -> None:
    pushes = Pushes()
    box = outbox(pushes)
    box.send_text("r1", "Rubisco")
    await settle()
    assert pushes.kinds() == [("answerDelta", "Rubisco")]  # the first piece at once
    for piece in (" fixes", " carbon", " dioxide"):
        box.send_text("r1", piece)
    await settle()
    assert len(pushes.pushed) == 1  # held: no sentence ended, the bound is far off
    box.send_text("r1", ". It", ends_sentence=True)
    await settle()
    assert pushes.kinds()[1:] == [("answerDelta", " fixes carbon dioxide. It")]
    box.send_text("r1", " is")
    box.end_of_text()
    await box.drained()
    assert pushes.kinds()[2:] == [("answerDelta", " is")]
    box.finish_with(Answer(requestId="r1", text="...", audio=[], timings=Timings(totalMs=1)))
    await box.closed()
    assert "".join(box.streamed) == "Rubisco fixes carbon dioxide. It is"


async def test_a_sentences_text_goes_before_its_audio_and_all_text_before_the_final() -> None:
    pushes = Pushes()
    box = outbox(pushes)
    box.send_text("r1", "One")
    await settle()
    box.send_text("r1", " two.", ends_sentence=True)
    box.send_text("r1", " Three")
    box.send(Audio(requestId="r1", seq=0, url="https://s3/x", text="One two."))
    await settle()
    box.send_text("r1", " four")  # held: the next sentence is not complete
    box.send(Audio(requestId="r1", seq=1, url="https://s3/y", text="Five."))
    await settle()
    box.finish_with(Answer(requestId="r1", text="One two. Three four", audio=[], timings=Timings(totalMs=1)))
    await box.closed()
    assert pushes.kinds() == [
        ("answerDelta", "One"),
        ("answerDelta", " two. Three"),  # the completed sentence (and what followed) before its audio
        ("audio", "One two."),
        ("audio", "Five."),  # not held back behind text that is not due
        ("answerDelta", " four"),  # all of the text before the final
        ("answer", "One two. Three four"),
    ]


async def test_held_text_is_pushed_within_the_bound_without_a_sentence_end() -> None:
    pushes = Pushes()
    box = outbox(pushes, max_delay=0.05)  # the bound shortened (the rule itself: test_deltas.py)
    box.send_text("r1", "A")
    await settle()
    box.send_text("r1", " very")
    await settle()
    assert len(pushes.pushed) == 1
    await asyncio.wait_for(box.drained(), 2)  # not drained until the held text went
    assert pushes.kinds() == [("answerDelta", "A"), ("answerDelta", " very")]
    box.abandon()
    await box.closed()
