"""Checks the smoke test applies to what the server sent: the contract, the order of one
query's stream, and the latency budget. Each returns a list of problems (empty when fine)."""

from __future__ import annotations

import random
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass

from synapscribe.audio.formats import looks_like_mp3 as looks_like_mp3
from synapscribe.contract import Audio

from synapscribe_ops.smoke.client import QueryResult, Received


@dataclass(frozen=True)
class Budget:
    """Latency budget, measured by the client from sending the request."""

    connect_ms: float = 5_000
    lecture_ready_s: float = 120
    first_delta_ms: float = 15_000
    first_audio_ms: float = 20_000
    answer_ms: float = 60_000

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def contract_problems(messages: Iterable[Received]) -> list[str]:
    """Every frame that is not a contract message; receiving nothing is a problem too (a check
    over nothing must not pass: a dead URL would otherwise "match the contract")."""
    received = list(messages)
    if not received:
        return ["no message was received, so nothing could be checked against the contract"]
    return [
        f"{(m.raw[:120] if isinstance(m.raw, str) else '<binary>')!r}: {m.problem}"
        for m in received
        if m.problem
    ]


def said_nothing(result: QueryResult) -> bool:
    """The query was answered with no words at all (a model with random weights may end at once)."""
    return result.answer is not None and not result.answer.text.strip()


def _ends_problems(result: QueryResult) -> tuple[list[str], list[str | None]]:
    """The stream's ends: one final message, and `warming` (no server was running, one is
    starting) at most once, before all else. Also the types without `warming`."""
    problems: list[str] = []
    rid = result.request_id
    if result.timed_out or result.final is None:
        # Without a final message there is nothing the order rules below could check.
        problems.append(
            f"{rid}: the stream did not finish ({len(result.messages)} messages, no answer or error)"
        )
    types = [m.type for m in result.messages]
    if "warming" in types:
        if types.index("warming") != 0 or types.count("warming") != 1:
            problems.append(f"{rid}: warming must come at most once, first: {types}")
        types = [t for t in types if t != "warming"]
    if types.count("answer") + types.count("error") > 1:
        problems.append(f"{rid}: more than one final message: {types}")
    return problems, types


def stream_problems(
    result: QueryResult, *, voice_input: bool, voice_output: bool, allow_empty: bool = False
) -> list[str]:
    """The contract's order for one query: `answerDelta` and `audio` interleaved, then exactly one
    `answer` or `error`; a voice question's one `transcript` anywhere before the `answer` (before,
    between or after the deltas and audio: the answer does not wait for it; one arriving after the
    final is not collected, so it shows as missing); audio `seq` 0, 1, 2 …; the answer's text
    and audio list agree with what streamed.

    `allow_empty`: an answer with no words (see said_nothing) is not a problem in itself, nor are
    the deltas and speech it then cannot have; everything else is still checked."""
    rid = result.request_id
    problems, types = _ends_problems(result)
    if result.error is not None:
        problems.append(f"{rid}: answered with error {result.error.code}: {result.error.message}")
        return problems
    problems += _transcript_problems(rid, types, voice_input=voice_input, answered=result.answer is not None)
    seqs = [m.message.seq for m in result.messages if isinstance(m.message, Audio)]
    if seqs != list(range(len(seqs))):
        problems.append(f"{rid}: audio seq must run 0, 1, 2 …: {seqs}")
    return problems + _answer_problems(
        result, types, seqs, voice_output=voice_output, allow_empty=allow_empty
    )


def _answer_problems(
    result: QueryResult, types: list[str | None], seqs: list[int], *, voice_output: bool, allow_empty: bool
) -> list[str]:
    """stream_problems' checks of the final answer against what streamed before it."""
    problems: list[str] = []
    rid = result.request_id
    answer = result.answer
    if answer is None:
        return problems
    empty = not answer.text.strip()
    if empty and not allow_empty:
        problems.append(f"{rid}: the answer is empty")
    if "answerDelta" not in types:
        if not (empty and allow_empty):
            problems.append(f"{rid}: no answerDelta before the answer")
    elif _words(result.delta_text) != _words(answer.text):
        problems.append(f"{rid}: the answerDeltas do not add up to the answer's text")
    if answer.audio != result.audio_urls:
        problems.append(f"{rid}: answer.audio {len(answer.audio)} urls differ from the audio messages sent")
    if voice_output and not answer.audio and not (empty and allow_empty):
        problems.append(f"{rid}: voice was requested but the answer has no audio")
    if not voice_output and (answer.audio or seqs):
        problems.append(f"{rid}: voice was false but audio was sent")
    return problems


def _transcript_problems(
    rid: str, types: list[str | None], *, voice_input: bool, answered: bool
) -> list[str]:
    """A voice question's one transcript, anywhere before the final; none for a typed question."""
    if "transcript" not in types:
        return [f"{rid}: no transcript for a voice question"] if voice_input and answered else []
    if not voice_input:
        return [f"{rid}: a transcript for a typed question"]
    if types.count("transcript") != 1:
        return [f"{rid}: transcript must come once: {types}"]
    return []


def budget_problems(result: QueryResult, budget: Budget, *, voice_output: bool) -> list[str]:
    problems: list[str] = []
    t = result.timings()
    checks = [("firstDeltaMs", budget.first_delta_ms), ("totalMs", budget.answer_ms)]
    if voice_output:
        checks.append(("firstAudioMs", budget.first_audio_ms))
    for name, limit in checks:
        value = t.get(name)
        if value is not None and value > limit:
            problems.append(
                f"{result.request_id}: {name} {value:.0f} ms is over the budget of {limit:.0f} ms"
            )
    return problems


_WORD = re.compile(r"[a-z0-9']+")
_SMALL = frozenset(
    [
        "a",
        "an",
        "the",
        "of",
        "to",
        "in",
        "on",
        "is",
        "are",
        "was",
        "what",
        "which",
        "how",
        "why",
        "does",
        "do",
        "and",
        "or",
        "it",
        "about",
    ]
)


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def content_words(text: str) -> set[str]:
    return {w for w in _words(text) if w not in _SMALL and len(w) > 2}


def refers_back(answer: str, earlier: str, share: float = 0.5) -> bool:
    """Whether `answer` repeats at least `share` of the content words of `earlier`."""
    wanted = content_words(earlier)
    return bool(wanted) and len(wanted & content_words(answer)) >= share * len(wanted)


#: Every stand-in answer and transcript starts with this (runtime/synapscribe_local/standin/answers.py).
STANDIN_LABEL = "[stand-in]"
#: How the stand-in shows the conversation's history: it quotes the previous question after this.
STANDIN_EARLIER = "Earlier in this conversation you asked:"
#: The follow-up check's vocabulary: the question before the follow-up asks the model to name one
#: of these; the follow-up asks what it just named. Matched by stem (chloroplasts, mitochondria).
PICK_TERMS: dict[str, str] = {
    "chloroplast": "chloroplast",
    "mitochondrion": "mitochondri",
    "ribosome": "ribosom",
}


def standin_label_problems(result: QueryResult) -> list[str]:
    """When the stack runs the stand-in, its label must be on every transcript and answer."""
    problems: list[str] = []
    if result.transcript is not None and not result.transcript.startswith(STANDIN_LABEL):
        problems.append(
            f"{result.request_id}: the transcript lacks the {STANDIN_LABEL} label: {result.transcript[:80]!r}"
        )
    if result.answer is not None and not result.answer.text.startswith(STANDIN_LABEL):
        problems.append(
            f"{result.request_id}: the answer lacks the {STANDIN_LABEL} label: {result.answer.text[:80]!r}"
        )
    return problems


def named_terms(text: str) -> set[str]:
    low = text.lower()
    return {term for term, stem in PICK_TERMS.items() if stem in low}


#: The follow-up check's key: a made-up word the user gives in the question before the follow-up
#: ("my codeword is …") and the follow-up asks for. No lecture holds it (the lecture names the
#: PICK_TERMS, so a follow-up about the term passes without any history) and no model can guess it
#: (new each run), so only a model that was given the earlier turn can answer with it.
_CODEWORD_CONSONANTS = "bdfgklmnprstvz"
_CODEWORD_VOWELS = "aeiou"


def new_codeword(rng: random.Random | None = None) -> str:
    """Four made-up syllables, e.g. "zorevimu" (about 24 million words; none is English)."""
    pick = rng or random.SystemRandom()
    return "".join(pick.choice(_CODEWORD_CONSONANTS) + pick.choice(_CODEWORD_VOWELS) for _ in range(4))


def codeword_question(question: str, codeword: str) -> str:
    """`question` carrying the codeword after it (the question itself stays a prefix)."""
    return f"{question} Also, my codeword is {codeword}: remember it."


def follow_up_problems(
    earlier_question: str, follow_up_answer: str, codeword: str, *, standin: bool
) -> list[str]:
    """The follow-up ("what is my codeword?") must answer with the codeword the earlier QUESTION
    gave: only the conversation's history holds it, so this fails for any model that lost it.

    With the stand-in, which quotes the previous question back, its history line must also be
    there and quote the earlier question."""
    if codeword.lower() not in earlier_question.lower():
        raise ValueError(f"the earlier question must give the codeword {codeword!r}: {earlier_question!r}")
    problems: list[str] = []
    if codeword.lower() not in follow_up_answer.lower():
        problems.append(
            f"the follow-up's answer does not give the codeword {codeword!r} the earlier question gave "
            f"(only the conversation's history holds it): {follow_up_answer[:200]!r}"
        )
    if standin:
        _, marker, after = follow_up_answer.partition(STANDIN_EARLIER)
        # The quote is as many sentences long as the question it quotes.
        sentences = len(_SENTENCE.split(earlier_question.strip()))
        quoted = " ".join(_SENTENCE.split(after.strip())[:sentences]) if marker else ""
        if not marker:
            problems.append(
                f"the stand-in's follow-up answer has no {STANDIN_EARLIER!r} line: the conversation's "
                "history did not reach the model"
            )
        elif not refers_back(quoted, earlier_question):
            problems.append(f"the stand-in's history line does not quote the earlier question: {quoted!r}")
    return problems


_SENTENCE = re.compile(r"(?<=[.!?])\s+")
