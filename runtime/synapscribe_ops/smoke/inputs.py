"""What the smoke test's scenario is given: its questions, the lecture and the question clip, the
budget, and what the model's words are taken to mean (MEANINGFUL or MEANINGLESS)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from synapscribe_ops.smoke.checks import PICK_TERMS, Budget, new_codeword

VOICE_QUESTION = "Where does photosynthesis take place in the plant?"
TEXT_QUESTION = (
    f"Which of these does the lecture mention: {', '.join(list(PICK_TERMS)[:-1])} or {list(PICK_TERMS)[-1]}?"
    " Name just one."
)
FOLLOW_UP = "What is my codeword? Answer in one short sentence."
#: `model_words`: the model's words mean something (any real model, the stand-in) or nothing.
MEANINGFUL = "meaningful"
MEANINGLESS = "meaningless"
MODEL_WORDS = (MEANINGFUL, MEANINGLESS)
#: How often a question is asked while a meaningless model answers it with no words at all.
MEANINGLESS_ATTEMPTS = 5
#: The checks of what the model's words say, skipped for a model whose words mean nothing.
WORD_CHECKS: dict[str, str] = {
    "follow-up recalls the codeword": "the follow-up's answer gives the codeword the text question "
    "gave (only the conversation's history holds it)",
}


@dataclass
class SmokeInputs:
    lecture: Path
    lecture_content_type: str
    voice_question: bytes  # MP3 of VOICE_QUESTION, small enough to send inline
    budget: Budget = field(default_factory=Budget)
    step_timeout_s: float = 15.0
    expect_standin: bool = False
    model_words: str = MEANINGFUL
    #: The word the text question gives and the follow-up asks for (new each run unless given).
    codeword: str = field(default_factory=new_codeword)

    def __post_init__(self) -> None:
        if self.model_words not in MODEL_WORDS:
            raise ValueError(f"model_words must be one of {', '.join(MODEL_WORDS)}, not {self.model_words!r}")
        if self.expect_standin and self.model_words == MEANINGLESS:
            raise ValueError("the model stand-in's words mean something: it cannot be a meaningless model")
