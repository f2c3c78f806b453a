"""What the stand-in answers: transcriptions from embedded text, answers built from the request."""

from __future__ import annotations

import re
from typing import Any

from chat_parts import audio_part, make_wav
from synapscribe_local.standin.answers import INAUDIBLE, PREFIX, inaudible, respond
from synapscribe_local.standin.chat_request import parse_chat_request
from synapscribe_local.standin.config import StandinConfig
from synapscribe_local.standin.tokens import count_text_tokens

LECTURE = (
    "Photosynthesis turns light into chemical energy. Mitochondria are the powerhouse of the cell. "
    "Ribosomes build proteins from amino acids. The nucleus stores the genetic material."
)


def ask(config: StandinConfig, messages: list[dict[str, Any]], answer_tokens: int = 170) -> str:
    request = parse_chat_request({"model": config.served_name, "messages": messages}, config)
    return respond(request, answer_tokens).text


def transcription(data: bytes) -> list[dict[str, Any]]:
    return [
        {"role": "user", "content": [audio_part(data), {"type": "text", "text": "Transcribe this audio."}]}
    ]


def test_transcription_returns_the_embedded_text(config: StandinConfig) -> None:
    text = ask(config, transcription(make_wav(1.0, text="What do mitochondria do?")))
    assert text == PREFIX + "What do mitochondria do?"


def test_transcription_of_audio_without_embedded_text_says_so(config: StandinConfig) -> None:
    text = ask(config, transcription(make_wav(1.0)))
    assert text == inaudible(1.0) == "[stand-in] (inaudible: no embedded text; 1.0 s of audio)"
    assert text.startswith(INAUDIBLE[:-1])


def test_answer_quotes_the_best_matching_lecture_sentence(config: StandinConfig) -> None:
    text = ask(
        config,
        [{"role": "system", "content": LECTURE}, {"role": "user", "content": "What do ribosomes build?"}],
    )
    assert text.startswith(PREFIX + "You asked: What do ribosomes build?")
    assert "The lecture says: Ribosomes build proteins from amino acids." in text
    assert "Earlier in this conversation" not in text


def test_answer_is_several_sentences_of_about_the_configured_length(config: StandinConfig) -> None:
    messages = [
        {"role": "system", "content": LECTURE},
        {"role": "user", "content": "What is photosynthesis?"},
    ]
    for tokens in (40, 170, 400):
        text = ask(config, messages, answer_tokens=tokens)
        assert tokens <= count_text_tokens(text) <= tokens + 80
        sentences = re.split(r"(?<=[.!?])\s+", text)
        assert len(sentences) >= (3 if tokens < 100 else 5)
        assert all(s.endswith((".", "!", "?")) for s in sentences)


def test_follow_up_mentions_the_previous_question(config: StandinConfig) -> None:
    # AgentCore's layout: system, lecture (audio), acknowledgement, history, question.
    lecture = [
        {"role": "system", "content": "You are a teaching assistant."},
        {"role": "user", "content": [{"type": "text", "text": "The lecture:"}, audio_part(make_wav(2.0, text=LECTURE))]},
        {"role": "assistant", "content": "I have the lecture and will answer from it."},
    ]  # fmt: skip
    first = ask(config, [*lecture, {"role": "user", "content": "Where is the genetic material stored?"}])
    assert "The lecture says: The nucleus stores the genetic material." in first
    assert "Earlier in this conversation" not in first
    follow = ask(
        config,
        [*lecture, {"role": "user", "content": "Where is the genetic material stored?"},
         {"role": "assistant", "content": first}, {"role": "user", "content": "And what builds proteins?"}],
    )  # fmt: skip
    assert "Earlier in this conversation you asked: Where is the genetic material stored?" in follow
    assert "The lecture says: Ribosomes build proteins from amino acids." in follow


def test_voice_question_is_heard_from_its_audio(config: StandinConfig) -> None:
    question = {
        "role": "user",
        "content": [audio_part(make_wav(1.0, text="What is the powerhouse of the cell?")),
                    {"type": "text", "text": "The student's question is in this audio. Answer it."}],
    }  # fmt: skip
    text = ask(config, [{"role": "system", "content": LECTURE}, question])
    assert text.startswith(PREFIX + "You asked: What is the powerhouse of the cell?")
    assert "Mitochondria are the powerhouse of the cell." in text


def test_question_without_lecture_context_says_so(config: StandinConfig) -> None:
    text = ask(config, [{"role": "user", "content": "Anything?"}])
    assert text.startswith(PREFIX)
    assert "There is no lecture context in this request." in text


def test_lecture_material_beats_the_system_prompts_instructions(config: StandinConfig) -> None:
    transcript = "The lecture, as a transcript with timestamps:\n" + "\n".join(
        f"[00:{i:02d}:00] {s}" for i, s in enumerate(re.split(r"(?<=\.)\s+", LECTURE * 2))
    )
    assert len(transcript) >= 300  # long user text is lecture material
    text = ask(
        config,
        [{"role": "system", "content": "Answer what the lecture says. Say so when the lecture does not say."},
         {"role": "user", "content": transcript},
         {"role": "assistant", "content": "I have the lecture."},
         {"role": "user", "content": "What does the lecture say about ribosomes?"}],
    )  # fmt: skip
    assert "Ribosomes build proteins from amino acids." in text
    assert "Earlier in this conversation" not in text


def test_a_transcript_mode_answer_cites_the_line_of_the_sentence_it_quotes(config: StandinConfig) -> None:
    """Transcript mode: the lecture message labels each segment "[mm:ss-mm:ss]" (prompts.py); the
    answer cites the segment holding the quoted sentence, as the system prompt asks; AgentCore
    parses it to seconds (agentcore/citations.py)."""
    from synapscribe.agentcore import citations, prompts

    segments = [
        prompts.TranscriptSegment(0.0, 4.0, "Photosynthesis turns light into chemical energy."),
        prompts.TranscriptSegment(4.0, 9.5, "Mitochondria are the powerhouse of the cell."),
        prompts.TranscriptSegment(65.0, 71.0, "Ribosomes build proteins from amino acids."),
        # (A lecture message is at least LECTURE_MIN_CHARS long for the stand-in.)
        *[
            prompts.TranscriptSegment(80.0 + 5 * i, 85.0 + 5 * i, f"Filler sentence {i} says nothing.")
            for i in range(8)
        ],
    ]
    lecture = prompts.lecture_transcript_message(segments)
    text = ask(
        config, [*prompts.lecture_messages(lecture), {"role": "user", "content": "What do ribosomes build?"}]
    )
    assert (
        "The lecture says: [01:05-01:11] Ribosomes build proteins from amino acids. [from 01:05-01:11]"
        in text
    )
    assert [(c.startSeconds, c.endSeconds) for c in citations.parse(text, 125.0)] == [(65.0, 71.0)]
    # Nothing in the lecture about it: nothing cited.
    unrelated = ask(
        config, [*prompts.lecture_messages(lecture), {"role": "user", "content": "Who won in 1966?"}]
    )
    assert citations.parse(unrelated, 125.0) == []
