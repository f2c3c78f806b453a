"""The stand-in charges text like Qwen's byte-level BPE where it costs most, so an AgentCore that
underestimates digits or CJK is refused by the stand-in exactly as vLLM would refuse it."""

from __future__ import annotations

import pytest
from synapscribe_local.standin.tokens import count_text_tokens, split_text, text_token_ids


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("2024", 4),  # every digit is its own token
        ("abcd1234", 5),
        ("Cells", 2),
        ("é", 1),  # 2-byte character: one token
        ("光合作用", 8),  # CJK: two tokens each
        ("🙂", 3),  # emoji: three
        ("a光1", 4),
    ],
)
def test_digits_and_non_ascii_cost_like_qwen(text: str, tokens: int) -> None:
    assert count_text_tokens(text) == tokens
    assert len(text_token_ids(text)) == tokens


@pytest.mark.parametrize(
    "text", ["", "Hello, world! 3.14159", "光合作用 is 光合作用, 🙂🙂 x" * 9, "\n\t  \x00 ~", "ab\u0301c"]
)
def test_pieces_join_back_and_never_exceed_the_utf8_bytes(text: str) -> None:
    assert "".join(split_text(text)) == text
    assert count_text_tokens(text) <= len(text.encode("utf-8"))


def test_token_ids_stay_text_ids_and_differ_for_different_digits() -> None:
    ids = text_token_ids("0123456789")
    assert len(set(ids)) == 10
    assert all(0 <= i < 151_643 for i in text_token_ids("光合作用🙂 and 42"))
