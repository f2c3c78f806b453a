"""What the stand-in says: deterministic text built from the request, always marked `[stand-in] `.

- Transcription: the last user message carries audio and its text asks to "transcribe": the answer
  is the audio's embedded text (generated test speech carries what it says in its metadata).
- Anything else is a question: the question is the last user message's audio (its embedded text)
  or its text; the answer quotes the lecture sentence that shares most words with it (and cites
  the time range its part or transcript line was labelled with, as `[from 01:00-02:00]`), mentions the
  previous question when the conversation has history, and runs to about `answer_tokens` tokens in
  whole sentences so that sentence-level TTS has several sentences to speak.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from synapscribe_local.standin.chat_request import ChatRequest, Message
from synapscribe_local.standin.embedded import embedded_text
from synapscribe_local.standin.tokens import CHARS_PER_TOKEN

PREFIX = "[stand-in] "
INAUDIBLE = PREFIX + "(inaudible: no embedded text)"


def inaudible(seconds: float) -> str:
    """The transcription of real audio (a browser recording): the stand-in cannot listen, but it
    says how much audio it decoded, so a test sees the recording arrived whole."""
    return f"{INAUDIBLE[:-1]}; {seconds:.1f} s of audio)"


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_WORD = re.compile(r"[a-z0-9']+")
_STOPWORDS = frozenset(
    [
        "the",
        "a",
        "an",
        "and",
        "or",
        "of",
        "to",
        "in",
        "on",
        "at",
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "it",
        "this",
        "that",
        "what",
        "which",
        "who",
        "how",
        "why",
        "when",
        "does",
        "do",
        "did",
        "can",
        "could",
        "would",
        "should",
        "about",
        "for",
        "with",
        "from",
        "by",
        "as",
        "into",
        "than",
        "then",
        "there",
        "their",
        "its",
    ]
)
_QUOTE_MAX = 240


@dataclass(frozen=True)
class Answer:
    text: str
    kind: str  # "transcription" or "answer"


def _words(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if len(w) > 2 and w not in _STOPWORDS}


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_END.split(text) if s.strip()]


def _quote(text: str) -> str:
    """Text as a closed sentence: one line, bounded, ending in . ! or ? (TTS splits on those)."""
    text = " ".join(text.split()).strip(" \"'")
    if len(text) > _QUOTE_MAX:
        text = text[: _QUOTE_MAX - 3].rstrip() + "..."
    return text if text.endswith((".", "!", "?")) else text + "."


def _heard(message: Message) -> str:
    """What a user message says: its audio's embedded text, else its text."""
    spoken = [t for t in (embedded_text(a.data) for a in message.audio) if t]
    return " ".join(spoken) if spoken else message.text


def is_transcription(request: ChatRequest) -> bool:
    last = request.messages[-1]
    return last.role == "user" and bool(last.audio) and "transcribe" in last.text.lower()


def transcribe(request: ChatRequest) -> Answer:
    audio = request.messages[-1].audio
    texts = [t for t in (embedded_text(a.data) for a in audio) if t]
    seconds = sum(a.duration_seconds for a in audio)
    return Answer(text=PREFIX + " ".join(texts) if texts else inaudible(seconds), kind="transcription")


#: A user message this long (or carrying audio) before the question is lecture material, not a turn.
LECTURE_MIN_CHARS = 300


def _is_lecture(message: Message) -> bool:
    return message.role in ("system", "developer") or (
        message.role == "user" and (bool(message.audio) or len(message.text) >= LECTURE_MIN_CHARS)
    )


def _lecture_sentences(request: ChatRequest) -> list[str]:
    """Lecture text: user lecture messages (text, and what their audio says); the system prompt
    only when there is no such message (it holds instructions, which should not be quoted)."""
    from_users: list[str] = []
    from_system: list[str] = []
    for message in request.messages[:-1]:
        if not _is_lecture(message):
            continue
        target = from_users if message.role == "user" else from_system
        for audio in message.audio:
            heard = embedded_text(audio.data)
            if heard:
                target.extend(_sentences(heard))
        target.extend(_sentences(message.text))
    return from_users or from_system


_RANGE = r"\d{1,2}:\d{2}(?::\d{2})?-\d{1,2}:\d{2}(?::\d{2})?"
#: "Part 2 (01:00-02:00):" before an audio part; "[00:05-00:09] ..." opening a transcript line.
_PART_LABEL = re.compile(rf"\(({_RANGE})\):\s*$")
_LINE_LABEL = re.compile(rf"^\[({_RANGE})\]")


def _sentence_ranges(request: ChatRequest) -> dict[str, str]:
    """Each lecture sentence's time range as the lecture message labels it (its first place):
    the part's range for what an audio part says, the line's for a transcript line."""
    ranges: dict[str, str] = {}
    for message in request.messages[:-1]:
        if message.role != "user" or not _is_lecture(message):
            continue
        label: str | None = None
        for part in message.parts:
            if part.text:
                found = _PART_LABEL.search(part.text)
                label = found.group(1) if found else None
                line_label: str | None = None
                for sentence in _sentences(part.text):
                    opening = _LINE_LABEL.match(sentence)
                    line_label = opening.group(1) if opening else line_label
                    if line_label:
                        ranges.setdefault(sentence, line_label)
            if part.audio is not None and label:
                for sentence in _sentences(embedded_text(part.audio.data) or ""):
                    ranges.setdefault(sentence, label)
    return ranges


def _previous_question(request: ChatRequest) -> str | None:
    """The latest earlier user turn that is a question (not lecture material)."""
    for message in reversed(request.messages[:-1]):
        if message.role == "user" and not _is_lecture(message):
            return _heard(message) or None
    return None


def answer(request: ChatRequest, answer_tokens: int) -> Answer:
    last = request.messages[-1]
    question = _quote(_heard(last)) if last.role == "user" else ""
    lecture = _lecture_sentences(request)
    wanted = _words(question)
    scored = [(len(wanted & _words(s)), -i, s) for i, s in enumerate(lecture)]
    best = max(scored) if scored else None

    out: list[str] = []
    if question:
        out.append(f"{PREFIX}You asked: {question}")
    else:
        out.append(f"{PREFIX}The question could not be heard (no embedded text).")
    if best is not None and best[0] > 0:
        # Cited as the system prompt asks (agentcore/prompts.py CITATION_INSTRUCTION).
        cited = _sentence_ranges(request).get(best[2])
        out.append(f"The lecture says: {_quote(best[2])}" + (f" [from {cited}]" if cited else ""))
    elif lecture:
        out.append(f"The lecture has no sentence about that. It begins: {_quote(lecture[0])}")
    else:
        out.append("There is no lecture context in this request.")
    previous = _previous_question(request)
    if previous:
        out.append(f"Earlier in this conversation you asked: {_quote(previous)}")
    audio_items = len(request.audio_items)
    out.append(f"This answer comes from the model stand-in, which read {audio_items} audio item(s).")
    # Pad with the lecture's following sentences, then a fixed sentence, to the answer length.
    start = 1 - best[1] if best is not None and best[0] > 0 else 0
    follow = lecture[start:] if lecture else []
    budget = answer_tokens * CHARS_PER_TOKEN
    filler = 0
    while sum(len(s) + 1 for s in out) < budget:
        if follow:
            out.append(f"It goes on: {_quote(follow.pop(0))}")
        else:
            filler += 1
            out.append(f"Stand-in sentence {filler} keeps the answer at a realistic length.")
    return Answer(text=" ".join(out), kind="answer")


def respond(request: ChatRequest, answer_tokens: int) -> Answer:
    if is_transcription(request):
        return transcribe(request)
    return answer(request, answer_tokens)
