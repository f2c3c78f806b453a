"""Joining an answer's streamed pieces into fewer `answerDelta` pushes, within the contract's bound.

Every push is a call to API Gateway's @connections API: money, and a few ms of AgentCore's CPU
(boto3's request, signing, a thread hand-off). The model writes a token every 10-25 ms, so one
push per piece was about 170 pushes an answer, and a fixed 0.1 s pace still about 45 (py-spy over
`bench pipeline`: the pushes were the largest part of AgentCore's CPU per question). The rule
(contract.ANSWER_DELTA_MAX_DELAY_SECONDS):

- the answer's first piece goes at once, so the first word is not delayed;
- later pieces are held and go together as soon as they complete a sentence (the moment that
  sentence goes to speech), so the text is never behind what is being spoken;
- text that ends no sentence goes at the latest ANSWER_DELTA_MAX_DELAY_SECONDS after the oldest of
  it was written (a long sentence, or a model that stalls, still streams);
- anything else the query sends (audio, transcript, its final) takes the held text first.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from synapscribe.contract import ANSWER_DELTA_MAX_DELAY_SECONDS


class DeltaCoalescer:
    """The pieces written and not yet pushed, and when they are due. `clock` is injectable (tests)."""

    def __init__(
        self,
        max_delay: float = ANSWER_DELTA_MAX_DELAY_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_delay = max_delay
        self.clock = clock
        self._parts: list[str] = []
        self._oldest: float | None = None  # when the oldest held piece was written
        self._urgent = False  # the held text goes at once (first piece, sentence end, end of text)
        self._pushed_any = False

    def __bool__(self) -> bool:
        return bool(self._parts)

    def add(self, text: str, ends_sentence: bool = False) -> None:
        """A piece of the answer; `ends_sentence` when it completes a sentence."""
        if not text:
            return
        if not self._parts:
            self._oldest = self.clock()
        self._parts.append(text)
        if ends_sentence or not self._pushed_any:
            self._urgent = True

    def end(self) -> None:
        """No more pieces: what is held goes at once."""
        if self._parts:
            self._urgent = True

    def due(self) -> float | None:
        """When the held text must be pushed (clock time; at or before now: at once), or None."""
        if self._oldest is None:
            return None
        return self._oldest if self._urgent else self._oldest + self.max_delay

    def ready(self) -> bool:
        due = self.due()
        return due is not None and due <= self.clock()

    def take(self) -> str:
        """The held text joined (pushed now by the caller), and nothing held afterwards."""
        text = "".join(self._parts)
        self._parts.clear()
        self._oldest = None
        self._urgent = False
        if text:
            self._pushed_any = True
        return text
