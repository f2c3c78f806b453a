"""Parse and check a chat completions request the way vLLM does (shape, model, audio, limits)."""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field
from typing import Any, Protocol

from synapscribe.audio_tokens import audio_tokens_for

from synapscribe_local.standin.config import StandinConfig
from synapscribe_local.standin.errors import StandinError, validation_error
from synapscribe_local.standin.tokens import (
    AudioDecodeError,
    AudioItem,
    Prompt,
    audio_samples,
)

ROLES = frozenset({"system", "developer", "user", "assistant", "tool"})
#: Qwen2.5-Omni's chat template opens with this system turn when the first message is not one.
DEFAULT_SYSTEM_PROMPT = (
    "You are Qwen, a virtual human developed by the Qwen Team, Alibaba Group, capable of perceiving "
    "auditory and visual inputs, as well as generating text and speech."
)
#: Formats the stand-in can measure (vLLM decodes anything its audio loader reads).
AUDIO_FORMATS = frozenset({"wav", "mp3", "flac", "ogg", "m4a", "aac", "webm"})
_MIME_FORMATS = {
    "audio/wav": "wav",
    "audio/x-wav": "wav",
    "audio/wave": "wav",
    "audio/mpeg": "mp3",
    "audio/mp3": "mp3",
    "audio/flac": "flac",
    "audio/x-flac": "flac",
    "audio/ogg": "ogg",
    "audio/mp4": "m4a",
    "audio/x-m4a": "m4a",
    "audio/aac": "aac",
    "audio/webm": "webm",
}
_DATA_URL = re.compile(
    r"^data:(?P<mime>[\w.+-]+/[\w.+-]+)(?P<params>(;[\w.+-]+=[\w.+-]+)*);base64,(?P<data>.*)$", re.S
)


@dataclass
class Part:
    text: str | None = None
    audio: AudioItem | None = None
    #: an audio item sent by its uuid alone (`input_audio: null`), until `resolve_references`
    ref: str | None = None


@dataclass
class Message:
    role: str
    parts: list[Part] = field(default_factory=list)

    @property
    def text(self) -> str:
        return " ".join(p.text for p in self.parts if p.text)

    @property
    def audio(self) -> list[AudioItem]:
        return [p.audio for p in self.parts if p.audio is not None]


class MediaSource(Protocol):
    """Where items sent by uuid alone are found (the stand-in's multimodal processor cache)."""

    def get(self, uuid: str) -> AudioItem | None: ...


def resolve_references(messages: list[Message], media: MediaSource | None) -> None:
    """Give each audio part sent by uuid alone the item the processor cache holds under it, or
    refuse the request as vLLM 0.32 does (HTTP 400; index: the item's place among the request's
    audio items)."""
    index = 0
    for message in messages:
        for part in message.parts:
            if part.ref is not None:
                held = media.get(part.ref) if media is not None else None
                if held is None:
                    raise _bad(f"Cache miss for audio at index {index} but data is not provided.")
                part.audio, part.ref = held, None
            if part.audio is not None:
                index += 1


@dataclass
class ChatRequest:
    model: str
    messages: list[Message]
    stream: bool
    include_usage: bool
    max_tokens: int | None
    add_generation_prompt: bool = True
    #: which field max_tokens came from (vLLM names it in its refusal)
    max_tokens_param: str = "max_tokens"
    #: tokens per streamed chunk (vLLM's per-request `stream_interval`): the first and the last
    #: chunk go at once, the others each time this many tokens were generated
    stream_interval: int = 1

    @property
    def audio_items(self) -> list[AudioItem]:
        return [a for m in self.messages for a in m.audio]

    def render(self) -> Prompt:
        """The prompt as ChatML tokens (see tokens.py for the counting rules)."""
        prompt = Prompt()
        if self.messages[0].role != "system":
            prompt.start_message("system")
            prompt.add_text(DEFAULT_SYSTEM_PROMPT)
            prompt.end_message()
        for message in self.messages:
            prompt.start_message(message.role)
            for part in message.parts:
                if part.audio is not None:
                    prompt.add_audio(part.audio)
                elif part.text:
                    prompt.add_text(part.text)
            prompt.end_message()
        if self.add_generation_prompt:
            prompt.start_message("assistant")
        return prompt


def _bad(message: str, param: str | None = None) -> StandinError:
    return StandinError(message, param=param)


def _optional_positive_int(body: dict[str, Any], name: str) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise _bad(f"{name} must be an integer >= 1, got {value!r}", name)
    if value < 1:
        raise validation_error(f"{name} must be at least 1, got {value}.", name, value)
    return value


def _decode_base64(data: Any, where: str) -> bytes:
    if not isinstance(data, str) or not data:
        raise _bad(f"{where}: audio data must be a non-empty base64 string")
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise _bad(f"{where}: audio data is not valid base64") from None


def _audio_item(
    data: bytes, fmt: str, where: str, config: StandinConfig, uuid: str | None = None
) -> AudioItem:
    try:
        samples, rate = audio_samples(data, fmt)
    except AudioDecodeError as exc:
        raise _bad(f"{where}: failed to load audio: {exc}") from None
    return AudioItem(
        data=data,
        fmt=fmt,
        duration_seconds=samples / rate,
        num_tokens=audio_tokens_for(samples, rate, config.audio_tokens_per_second),
        uuid=uuid,
    )


def _parse_part(raw: Any, where: str, config: StandinConfig) -> Part:
    if not isinstance(raw, dict):
        raise _bad(f"{where}: a content part must be an object")
    kind = raw.get("type")
    if kind == "text":
        text = raw.get("text")
        if not isinstance(text, str):
            raise _bad(f"{where}: a text part needs 'text' as a string")
        return Part(text=text)
    if kind == "input_audio":
        spec = raw.get("input_audio")
        uuid = raw.get("uuid")
        if uuid is not None and (not isinstance(uuid, str) or not uuid):
            raise _bad(f"{where}: uuid must be a non-empty string")
        if spec is None and uuid is not None:
            return Part(ref=uuid)
        if not isinstance(spec, dict):
            raise _bad(f"{where}: an input_audio part needs 'input_audio': {{'data', 'format'}}")
        fmt = spec.get("format")
        if fmt not in AUDIO_FORMATS:
            raise _bad(f"{where}: input_audio.format must be one of {sorted(AUDIO_FORMATS)}, got {fmt!r}")
        data = _decode_base64(spec.get("data"), f"{where}.input_audio")
        return Part(audio=_audio_item(data, str(fmt), where, config, uuid))
    if kind == "audio_url":
        spec = raw.get("audio_url")
        url = spec.get("url") if isinstance(spec, dict) else None
        if not isinstance(url, str) or not url:
            raise _bad(f"{where}: an audio_url part needs 'audio_url': {{'url': str}}")
        if url.startswith(("http://", "https://", "file:")):
            raise _bad(f"{where}: the stand-in does not fetch audio URLs; send a data: URL or input_audio")
        match = _DATA_URL.match(url)
        if match is None:
            raise _bad(f"{where}: audio_url.url must be a base64 data: URL (data:audio/...;base64,...)")
        fmt = _MIME_FORMATS.get(match["mime"].lower())
        if fmt is None:
            raise _bad(f"{where}: unsupported audio media type {match['mime']!r}")
        data = _decode_base64(match["data"], f"{where}.audio_url")
        return Part(audio=_audio_item(data, fmt, where, config))
    if kind in ("image_url", "video_url", "input_image", "file"):
        raise _bad(f"{where}: {kind} parts are not supported: the stand-in serves text and audio only")
    raise _bad(f"{where}: unknown content part type {kind!r}")


def _parse_message(raw: Any, index: int, config: StandinConfig) -> Message:
    where = f"messages[{index}]"
    if not isinstance(raw, dict):
        raise _bad(f"{where} must be an object", "messages")
    role = raw.get("role")
    if role not in ROLES:
        raise _bad(f"{where}.role must be one of {sorted(ROLES)}, got {role!r}", "messages")
    content = raw.get("content")
    if content is None:
        if role != "assistant":
            raise _bad(f"{where}.content is required for role {role!r}", "messages")
        return Message(role=role)
    if isinstance(content, str):
        return Message(role=role, parts=[Part(text=content)])
    if not isinstance(content, list):
        raise _bad(f"{where}.content must be a string or a list of parts", "messages")
    parts = [_parse_part(p, f"{where}.content[{i}]", config) for i, p in enumerate(content)]
    if role != "user" and any(p.audio is not None or p.ref is not None for p in parts):
        raise _bad(f"{where}: audio parts are only allowed in user messages", "messages")
    return Message(role=role, parts=parts)


def check_model(model: Any, config: StandinConfig) -> str:
    if model is None:
        return config.served_name
    if model != config.served_name:
        raise StandinError(
            f"The model `{model}` does not exist. Valid aliases: {config.served_name}.",
            status=404,
            err_type="NotFoundError",
            param="model",
        )
    return str(model)


def parse_messages(raw: Any, config: StandinConfig, media: MediaSource | None = None) -> list[Message]:
    if not isinstance(raw, list) or not raw:
        raise _bad("messages must be a non-empty list", "messages")
    messages = [_parse_message(m, i, config) for i, m in enumerate(raw)]
    resolve_references(messages, media)
    return messages


def parse_chat_request(body: Any, config: StandinConfig, media: MediaSource | None = None) -> ChatRequest:
    if not isinstance(body, dict):
        raise _bad("the request body must be a JSON object")
    model = check_model(body.get("model"), config)
    messages = parse_messages(body.get("messages"), config, media)
    stream = body.get("stream", False)
    if stream is None:
        stream = False
    if not isinstance(stream, bool):
        raise _bad(f"stream must be a boolean, got {stream!r}", "stream")
    options = body.get("stream_options")
    include_usage = False
    if options is not None:
        if not stream:
            raise _bad("Stream options can only be defined when `stream=True`.", "stream_options")
        if not isinstance(options, dict):
            raise _bad("stream_options must be an object", "stream_options")
        include_usage = bool(options.get("include_usage", False))
    n = body.get("n", 1)
    if n not in (None, 1):
        raise _bad(f"the stand-in serves n=1 only, got n={n!r}", "n")
    param = "max_completion_tokens" if body.get("max_completion_tokens") is not None else "max_tokens"
    max_tokens = _optional_positive_int(body, param)
    return ChatRequest(
        model=model,
        messages=messages,
        stream=stream,
        include_usage=include_usage,
        max_tokens=max_tokens,
        max_tokens_param=param,
        stream_interval=_optional_positive_int(body, "stream_interval") or 1,
    )


def check_item_count(items: list[AudioItem], config: StandinConfig) -> None:
    """vLLM's --limit-mm-per-prompt audio count, checked while the multimodal data is parsed (so
    /tokenize, which enforces no length limit, refuses it too)."""
    if len(items) > config.max_audio_items:
        raise validation_error(
            f"At most {config.max_audio_items} audio(s) may be provided in one prompt.", "audio"
        )


def check_limits(request: ChatRequest, prompt: Prompt, config: StandinConfig) -> int:
    """Refuse what vLLM (0.32) refuses, in its order and words; return the max_tokens the request
    runs with: the one asked for, cut silently to what the context leaves (vLLM's get_max_tokens),
    or all of that when none is asked for."""
    limit = config.max_model_len
    if request.max_tokens is not None and request.max_tokens > limit:
        # vLLM's TokenizeParams, before the prompt is rendered.
        raise validation_error(
            f"{request.max_tokens_param}={request.max_tokens} cannot be greater than "
            f"max_model_len={limit}. Please request fewer output tokens.",
            request.max_tokens_param,
            request.max_tokens,
        )
    items = request.audio_items
    check_item_count(items, config)
    # The renderer checks the tokenized chat template, each audio item still one placeholder; its
    # tokenizer stops at one token over the limit, so that is the count it names.
    rendered = len(prompt) - sum(item.num_tokens - 1 for item in items)
    if rendered > limit:
        raise validation_error(
            f"This model's maximum context length is {limit} tokens. However, your prompt contains "
            f"at least {limit + 1} input tokens, which exceeds this limit even without any output "
            "tokens. Please reduce the length of the input prompt.",
            "input_tokens",
            limit + 1,
        )
    n_input = len(prompt)
    if n_input > limit:
        # The serving layer's get_max_tokens, with the audio expanded.
        raise _bad(f"Input length ({n_input}) exceeds model's maximum context length ({limit}).")
    if n_input == limit:
        # No room for a single output token: the context leaves max_tokens 0, which vLLM's sampling
        # parameters refuse (before its input processor would).
        raise validation_error("max_tokens must be at least 1, got 0.", "max_tokens", 0)
    for item in items:
        if item.num_tokens > config.encoder_cache_size:
            raise _bad(
                f"The decoder prompt contains a(n) audio item with {item.num_tokens} embedding tokens, "
                f"which exceeds the pre-allocated encoder cache size {config.encoder_cache_size}. "
                "Please reduce the input size or increase the encoder cache size by setting "
                "--limit-mm-per-prompt at startup."
            )
    room = limit - n_input
    return room if request.max_tokens is None else min(request.max_tokens, room)
