"""The smoke test's follow-up check against AgentCore itself (the query pipeline in-process with the
real stand-in): it passes when AgentCore keeps the conversation's history and fails when AgentCore
drops it, whether the turn is never stored or never sent to the model. The check asks for a
codeword only the earlier question gave; the lecture names the terms the earlier question is about,
so a check on the term passed either way."""

from __future__ import annotations

import random
from typing import Any

import pytest
from synapscribe.agentcore import prompts
from synapscribe.store import Store
from synapscribe_ops.smoke.checks import codeword_question, follow_up_problems, new_codeword
from synapscribe_ops.smoke.inputs import FOLLOW_UP, TEXT_QUESTION

from .pipeline_rig import check_order


def drop_history(monkeypatch: pytest.MonkeyPatch, how: str) -> None:
    if how == "not stored":
        monkeypatch.setattr(Store, "append_turn", lambda self, session_id, turn, **kw: {})
    elif how == "not sent":
        monkeypatch.setattr(prompts, "history_messages", lambda turns: [])


@pytest.mark.parametrize("history", ["kept", "not stored", "not sent"])
async def test_the_follow_up_check_tells_whether_agentcore_kept_the_history(
    make_rig: Any, monkeypatch: pytest.MonkeyPatch, history: str
) -> None:
    drop_history(monkeypatch, history)
    codeword = new_codeword(random.Random(history))
    asked = codeword_question(TEXT_QUESTION, codeword)
    async with make_rig() as rig:
        session_id = rig.session()
        earlier = check_order(await rig.ask(session_id, text=asked, voice=False), voice_in=False)
        follow_up = check_order(await rig.ask(session_id, text=FOLLOW_UP, voice=False), voice_in=False)
        sent = rig.vllm_bodies[-1]["messages"]
    assert earlier["type"] == follow_up["type"] == "answer", (earlier, follow_up)
    assert (asked in str(sent)) == (history == "kept"), "the model got the earlier turn only when kept"
    for standin in (False, True):  # any model's check, then the stand-in's stricter one
        problems = follow_up_problems(asked, follow_up["text"], codeword, standin=standin)
        if history == "kept":
            assert problems == [], problems
        else:
            assert any(f"does not give the codeword {codeword!r}" in p for p in problems), problems
