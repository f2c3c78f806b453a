from __future__ import annotations

from synapscribe.agentcore.sentences import MAX_CHARS, SentenceSplitter


def feed_all(pieces: list[str]) -> list[str]:
    s = SentenceSplitter()
    out = [sentence for p in pieces for sentence in s.feed(p)]
    rest = s.flush()
    return [*out, rest] if rest else out


def test_sentences_complete_as_the_text_streams() -> None:
    s = SentenceSplitter()
    assert s.feed("Photosynthesis turns light into ene") == []
    assert s.feed("rgy. It happens in chlo") == ["Photosynthesis turns light into energy."]
    assert s.feed("roplasts! Next") == ["It happens in chloroplasts!"]
    assert s.flush() == "Next"
    assert s.flush() is None


def test_text_is_kept_whole_whatever_the_chunking() -> None:
    text = "The Calvin cycle fixes carbon, e.g. from the air. It needs ATP. Does it need light? Not directly."
    for size in (1, 3, 4, 7, 100):
        pieces = [text[i : i + size] for i in range(0, len(text), size)]
        sentences = feed_all(pieces)
        assert " ".join(sentences) == text
        assert sentences[0] == "The Calvin cycle fixes carbon, e.g. from the air."


def test_short_sentences_join_the_next() -> None:
    assert feed_all(["Yes. It is the enzyme rubisco. "]) == ["Yes. It is the enzyme rubisco."]


def test_run_on_text_is_cut() -> None:
    words = "word " * 200
    sentences = feed_all([words])
    assert all(len(s) <= MAX_CHARS for s in sentences)
    assert " ".join(sentences).split() == words.split()
