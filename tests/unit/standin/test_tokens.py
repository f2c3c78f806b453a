"""The stand-in's token counting, limits and simulated prefix cache (no server)."""

from __future__ import annotations

import base64
import subprocess
from typing import Any

import pytest
from chat_parts import audio_part, make_wav
from synapscribe_local.standin.chat_request import DEFAULT_SYSTEM_PROMPT, check_limits, parse_chat_request
from synapscribe_local.standin.config import StandinConfig
from synapscribe_local.standin.embedded import embedded_text
from synapscribe_local.standin.errors import StandinError
from synapscribe_local.standin.prefix_cache import BLOCK_SIZE, PrefixCache, block_hashes
from synapscribe_local.standin.tokens import (
    AudioDecodeError,
    audio_duration_seconds,
    count_text_tokens,
    text_token_ids,
)


def body(config: StandinConfig, messages: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {"model": config.served_name, "messages": messages, **extra}


# --- counting -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "tokens"), [("", 0), ("a", 1), ("abcd", 1), ("abcde", 2), ("x" * 400, 100)])
def test_text_tokens_are_a_quarter_of_the_characters_rounded_up(text: str, tokens: int) -> None:
    assert count_text_tokens(text) == tokens
    assert len(text_token_ids(text)) == tokens


def test_text_token_ids_are_deterministic_and_content_dependent() -> None:
    assert text_token_ids("hello world") == text_token_ids("hello world")
    assert text_token_ids("hello world") != text_token_ids("hello there")


def test_wav_duration_is_exact() -> None:
    assert audio_duration_seconds(make_wav(2.5), "wav") == pytest.approx(2.5)


def test_mp3_duration_is_read_by_mutagen(tmp_path: Any) -> None:
    out = tmp_path / "tone.mp3"
    subprocess.run(
        ["ffmpeg", "-loglevel", "error", "-f", "lavfi", "-i", "sine=frequency=440:duration=3",
         "-b:a", "32k", str(out)],
        check=True,
    )  # fmt: skip
    assert audio_duration_seconds(out.read_bytes(), "mp3") == pytest.approx(3.0, abs=0.1)


@pytest.mark.parametrize(
    ("data", "fmt"), [(b"", "wav"), (b"not audio at all" * 10, "mp3"), (b"RIFFxxxx", "wav")]
)
def test_undecodable_audio_is_an_error(data: bytes, fmt: str) -> None:
    with pytest.raises(AudioDecodeError):
        audio_duration_seconds(data, fmt)


def test_chat_template_overhead(config: StandinConfig) -> None:
    # <|im_start|> "system\n"(2) <|im_end|> "\n"(1); <|im_start|> "user\n"(2) "abcd"(1) <|im_end|>
    # "\n"(1); then <|im_start|> "assistant\n"(3)
    messages = [{"role": "system", "content": ""}, {"role": "user", "content": "abcd"}]
    request = parse_chat_request(body(config, messages), config)
    assert len(request.render()) == (1 + 2 + 1 + 1) + (1 + 2 + 1 + 1 + 1) + (1 + 3)


def test_a_conversation_without_a_system_turn_gets_qwens_default(config: StandinConfig) -> None:
    # Qwen2.5-Omni's chat template (and the real engine, tests/engine/test_standin_conformance.py)
    # opens with a default system turn when the first message is not one.
    bare = parse_chat_request(body(config, [{"role": "user", "content": "abcd"}]), config).render()
    empty = parse_chat_request(
        body(config, [{"role": "system", "content": ""}, {"role": "user", "content": "abcd"}]), config
    ).render()
    assert len(bare) - len(empty) == count_text_tokens(DEFAULT_SYSTEM_PROMPT)


def test_audio_costs_tokens_per_second_plus_its_markers(config: StandinConfig) -> None:
    text_only = parse_chat_request(body(config, [{"role": "user", "content": "abcd"}]), config).render()
    content = [{"type": "text", "text": "abcd"}, audio_part(make_wav(2.0))]
    with_audio = parse_chat_request(body(config, [{"role": "user", "content": content}]), config).render()
    assert len(with_audio) - len(text_only) == 2 * config.audio_tokens_per_second + 2
    assert config.audio_tokens_per_second == 25  # the platform's Qwen2.5-Omni figure


def test_audio_url_data_url_counts_like_input_audio(config: StandinConfig) -> None:
    data = make_wav(1.0)
    url = "data:audio/wav;base64," + base64.b64encode(data).decode()
    a = parse_chat_request(
        body(config, [{"role": "user", "content": [{"type": "audio_url", "audio_url": {"url": url}}]}]),
        config,
    )
    b = parse_chat_request(body(config, [{"role": "user", "content": [audio_part(data)]}]), config)
    assert a.render().token_ids == b.render().token_ids
    assert a.audio_items[0].num_tokens == 25


# --- refusals -----------------------------------------------------------------------------------


def test_text_over_the_context_is_refused_with_vllms_message(config: StandinConfig) -> None:
    text = "x" * (config.max_model_len * 4)
    request = parse_chat_request(body(config, [{"role": "user", "content": text}]), config)
    prompt = request.render()
    with pytest.raises(StandinError) as err:
        check_limits(request, prompt, config)
    limit = config.max_model_len
    assert err.value.status == 400 and err.value.param == "input_tokens"
    # vLLM's renderer tokenizes at most one token past the limit, so that is the count it names.
    assert err.value.message == (
        f"This model's maximum context length is {limit} tokens. However, your prompt contains at least "
        f"{limit + 1} input tokens, which exceeds this limit even without any output tokens. Please reduce "
        f"the length of the input prompt. (parameter=input_tokens, value={limit + 1})"
    )


def test_audio_over_the_context_is_refused_with_the_engines_message(config: StandinConfig) -> None:
    minute = audio_part(make_wav(60.0))
    request = parse_chat_request(body(config, [{"role": "user", "content": [minute] * 11}]), config)
    prompt = request.render()
    with pytest.raises(StandinError) as err:
        check_limits(request, prompt, config)
    assert err.value.param is None
    assert err.value.message == (
        f"Input length ({len(prompt)}) exceeds model's maximum context length ({config.max_model_len})."
    )


def test_max_tokens_past_the_context_is_cut_not_refused(config: StandinConfig) -> None:
    # The engine (vLLM's get_max_tokens) runs such a request with what the context leaves; an
    # earlier stand-in refused it, which the real engine never does.
    text = "x" * 4000  # ~1000 tokens
    request = parse_chat_request(
        body(config, [{"role": "user", "content": text}], max_tokens=config.max_model_len - 500), config
    )
    prompt = request.render()
    room = config.max_model_len - len(prompt)
    assert room < config.max_model_len - 500 and check_limits(request, prompt, config) == room
    free = parse_chat_request(body(config, [{"role": "user", "content": text}]), config)
    assert check_limits(free, prompt, config) == room
    small = parse_chat_request(body(config, [{"role": "user", "content": text}], max_tokens=7), config)
    assert check_limits(small, prompt, config) == 7


def test_max_tokens_over_the_whole_context_is_refused_naming_it(config: StandinConfig) -> None:
    limit = config.max_model_len
    for name in ("max_tokens", "max_completion_tokens"):
        request = parse_chat_request(
            body(config, [{"role": "user", "content": "hi"}], **{name: limit + 1}), config
        )
        with pytest.raises(StandinError) as err:
            check_limits(request, request.render(), config)
        assert err.value.param == name
        assert err.value.message == (
            f"{name}={limit + 1} cannot be greater than max_model_len={limit}. Please request fewer output "
            f"tokens. (parameter={name}, value={limit + 1})"
        )


def test_a_prompt_that_fills_the_context_leaves_max_tokens_zero(config: StandinConfig) -> None:
    base = parse_chat_request(body(config, [{"role": "user", "content": ""}]), config).render()
    digits = "1" * (config.max_model_len - len(base))  # one token each
    request = parse_chat_request(body(config, [{"role": "user", "content": digits}]), config)
    assert len(request.render()) == config.max_model_len
    with pytest.raises(StandinError) as err:
        check_limits(request, request.render(), config)
    assert err.value.param == "max_tokens"
    assert err.value.message == "max_tokens must be at least 1, got 0. (parameter=max_tokens, value=0)"


def test_longer_context_accepts_what_16k_refuses() -> None:
    small = StandinConfig.from_platform(max_model_len=16384)
    large = StandinConfig.from_platform(max_model_len=32768)
    messages = [{"role": "user", "content": "y" * 80_000}]  # 20,000 tokens
    for cfg, fits in ((small, False), (large, True)):
        request = parse_chat_request(body(cfg, messages, max_tokens=100), cfg)
        if fits:
            assert check_limits(request, request.render(), cfg) == 100
        else:
            with pytest.raises(StandinError, match="maximum context length is 16384"):
                check_limits(request, request.render(), cfg)


def test_audio_item_over_the_encoder_cache_is_refused(config: StandinConfig) -> None:
    seconds = config.encoder_cache_size / config.audio_tokens_per_second + 1  # 2048 tokens ~ 82 s
    request = parse_chat_request(
        body(config, [{"role": "user", "content": [audio_part(make_wav(seconds))]}]), config
    )
    with pytest.raises(StandinError) as err:
        check_limits(request, request.render(), config)
    assert "exceeds the pre-allocated encoder cache size 2048" in err.value.message
    fine = parse_chat_request(body(config, [{"role": "user", "content": [audio_part(make_wav(60))]}]), config)
    check_limits(fine, fine.render(), config)


def test_more_audio_items_than_the_prompt_limit_are_refused(config: StandinConfig) -> None:
    parts = [audio_part(make_wav(0.2, seed=i)) for i in range(config.max_audio_items + 1)]
    request = parse_chat_request(body(config, [{"role": "user", "content": parts}]), config)
    with pytest.raises(StandinError, match=f"At most {config.max_audio_items} audio"):
        check_limits(request, request.render(), config)
    request = parse_chat_request(body(config, [{"role": "user", "content": parts[:-1]}]), config)
    check_limits(request, request.render(), config)


@pytest.mark.parametrize(
    ("payload", "needle"),
    [
        ({"messages": []}, "messages must be a non-empty list"),
        ({"messages": [{"role": "robot", "content": "hi"}]}, "messages[0].role"),
        ({"messages": [{"role": "user"}]}, "content is required"),
        ({"messages": [{"role": "user", "content": 5}]}, "string or a list of parts"),
        ({"messages": [{"role": "user", "content": [{"type": "text"}]}]}, "'text' as a string"),
        ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]},
         "not supported"),
        ({"messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {"data": "%%%",
          "format": "wav"}}]}]}, "not valid base64"),
        ({"messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {"data": "AAAA",
          "format": "aiff"}}]}]}, "input_audio.format"),
        ({"messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {"data": "AAAA",
          "format": "wav"}}]}]}, "failed to load audio"),
        ({"messages": [{"role": "user", "content": [{"type": "audio_url", "audio_url": {"url":
          "https://example.com/a.mp3"}}]}]}, "does not fetch audio URLs"),
        ({"messages": [{"role": "user", "content": [{"type": "audio_url", "audio_url": {"url": "data:xx"}}]}]},
         "base64 data: URL"),
        ({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 0}, "max_tokens must be"),
        ({"messages": [{"role": "user", "content": "hi"}], "stream_options": {"include_usage": True}},
         "Stream options can only be defined"),
        ({"messages": [{"role": "user", "content": "hi"}], "stream": "yes"}, "stream must be a boolean"),
    ],
)  # fmt: skip
def test_malformed_requests_are_refused_with_a_specific_message(
    config: StandinConfig, payload: dict[str, Any], needle: str
) -> None:
    with pytest.raises(StandinError) as err:
        parse_chat_request({"model": config.served_name, **payload}, config)
    assert err.value.status == 400
    assert needle in err.value.message
    assert err.value.body()["error"]["type"] == "BadRequestError"


def test_unknown_model_is_a_404_like_vllm(config: StandinConfig) -> None:
    with pytest.raises(StandinError) as err:
        parse_chat_request({"model": "gpt-4", "messages": [{"role": "user", "content": "hi"}]}, config)
    assert err.value.status == 404
    assert err.value.body() == {
        "error": {"message": "The model `gpt-4` does not exist. Valid aliases: qwen2.5-omni-3b.",
                  "type": "NotFoundError", "param": "model", "code": 404}
    }  # fmt: skip


# --- prefix cache -------------------------------------------------------------------------------


def _prompt(config: StandinConfig, messages: list[dict[str, Any]]) -> Any:
    return parse_chat_request(body(config, messages), config).render()


def test_repeating_a_prompt_hits_all_its_full_blocks_but_the_last_token(config: StandinConfig) -> None:
    cache = PrefixCache(capacity_blocks=1000)
    prompt = _prompt(config, [{"role": "user", "content": "q" * 400}])
    first = cache.lookup_and_insert(prompt)
    assert (first.queried_tokens, first.hit_tokens) == (len(prompt), 0)
    second = cache.lookup_and_insert(prompt)
    assert second.hit_tokens == (len(prompt) - 1) // BLOCK_SIZE * BLOCK_SIZE
    assert cache.queries_total == 2 * len(prompt)
    assert cache.hits_total == second.hit_tokens


def test_follow_up_with_the_same_audio_bytes_reuses_the_prefix(config: StandinConfig) -> None:
    lecture = [{"role": "system", "content": "Answer from the lecture."},
               {"role": "user", "content": [audio_part(make_wav(10.0, seed=1))]}]  # fmt: skip
    cache = PrefixCache(capacity_blocks=1000)
    first = _prompt(config, [*lecture, {"role": "user", "content": "What is a cell?"}])
    cache.lookup_and_insert(first)
    follow_up = _prompt(
        config,
        [*lecture, {"role": "user", "content": "What is a cell?"}, {"role": "assistant", "content": "A unit."},
         {"role": "user", "content": "And a tissue?"}],
    )  # fmt: skip
    hit = cache.lookup_and_insert(follow_up).hit_tokens
    assert hit >= 250  # the 10 s of audio (250 tokens) and the system prompt were reused
    # Same duration, different bytes: the audio blocks must not be shared.
    other = _prompt(config, [lecture[0], {"role": "user", "content": [audio_part(make_wav(10.0, seed=2))]},
                             {"role": "user", "content": "What is a cell?"}])  # fmt: skip
    assert len(other) == len(first)
    assert cache.lookup_and_insert(other).hit_tokens < 32


def test_block_hashes_include_audio_content(config: StandinConfig) -> None:
    system = {"role": "system", "content": ""}  # so the audio starts in the first block
    a = _prompt(config, [system, {"role": "user", "content": [audio_part(make_wav(2.0, seed=1))]}])
    b = _prompt(config, [system, {"role": "user", "content": [audio_part(make_wav(2.0, seed=3))]}])
    assert a.token_ids == b.token_ids and a.audio[0][0] < BLOCK_SIZE
    assert block_hashes(a)[0] != block_hashes(b)[0]


def test_prefix_cache_evicts_least_recently_used_blocks(config: StandinConfig) -> None:
    cache = PrefixCache(capacity_blocks=4)
    p1 = _prompt(config, [{"role": "user", "content": "a" * 256}])  # > 4 blocks
    p2 = _prompt(config, [{"role": "user", "content": "b" * 256}])
    cache.lookup_and_insert(p1)
    cache.lookup_and_insert(p2)
    assert len(cache) == 4
    assert cache.lookup_and_insert(p1).hit_tokens == 0


# --- embedded text ------------------------------------------------------------------------------


def test_embedded_text_is_read_from_id3_in_wav() -> None:
    assert embedded_text(make_wav(0.5, text="Cells divide by mitosis.")) == "Cells divide by mitosis."
    assert embedded_text(make_wav(0.5)) is None
    assert embedded_text(b"garbage") is None
