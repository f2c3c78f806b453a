"""The stand-in's serving: what a vLLM engine does behind its OpenAI-compatible routes.

`EngineState` (scheduler queues, KV use, prefix and multimodal caches, counters), `Generation` (one
admitted request paced by the latency model), the chat completion's body and stream chunks as vLLM
writes them, /tokenize's prompt and /metrics' text. The routes (server.py) read the state from
`request.app.state.engine` and call these, as vLLM's api_router modules call its serving classes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from synapscribe_local.standin.answers import Answer, respond
from synapscribe_local.standin.chat_request import (
    ChatRequest,
    check_item_count,
    check_model,
    parse_messages,
)
from synapscribe_local.standin.config import StandinConfig
from synapscribe_local.standin.errors import StandinError, error_body
from synapscribe_local.standin.prefix_cache import MultimodalCache, PrefixCache
from synapscribe_local.standin.tokens import Prompt, split_text


@dataclass
class _Running:
    prompt_tokens: int
    generated: int = 0


@dataclass
class EngineState:
    """What a vLLM engine would report: scheduler queues, KV usage, prefix cache, counters."""

    config: StandinConfig
    prefix_cache: PrefixCache
    mm_cache: MultimodalCache
    waiting: int = 0
    running: dict[str, _Running] = field(default_factory=dict)
    prompt_tokens_total: int = 0
    generation_tokens_total: int = 0
    finished: dict[str, int] = field(default_factory=lambda: {"stop": 0, "length": 0, "abort": 0})
    _slots: asyncio.Semaphore | None = None

    @classmethod
    def fresh(cls, config: StandinConfig) -> EngineState:
        """An engine just started: empty queues and caches sized by `config`."""
        return cls(
            config=config,
            prefix_cache=PrefixCache(config.kv_cache_blocks, config.block_size),
            mm_cache=MultimodalCache(config.mm_cache_items),
        )

    @property
    def slots(self) -> asyncio.Semaphore:
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.config.max_num_seqs)
        return self._slots

    def kv_cache_usage(self) -> float:
        size = self.config.block_size
        blocks = sum(-(-(r.prompt_tokens + r.generated) // size) for r in self.running.values())
        return min(1.0, blocks / self.config.kv_cache_blocks)


def _chunk(
    request_id: str, created: int, model: str, delta: dict[str, Any], finish: str | None
) -> dict[str, Any]:
    """A stream chunk with the fields vLLM sends: the first (role) chunk names no token ids, the
    content chunks do (null), the finishing chunk adds its stop_reason."""
    choice: dict[str, Any] = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
    if "role" not in delta:
        choice["token_ids"] = None
    if finish is not None:
        choice["stop_reason"] = None
    return {
        "id": request_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [choice],
    }


def _usage(generation: Generation, completion_tokens: int, streamed: bool = False) -> dict[str, Any]:
    """Usage as vLLM reports it; in a stream its null fields are left out, as vLLM leaves them."""
    prompt_tokens = len(generation.prompt)
    details = None
    if generation.state.config.prompt_tokens_details:
        details = {"cached_tokens": generation.cached_tokens}
    usage: dict[str, Any] = {
        "prompt_tokens": prompt_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "completion_tokens": completion_tokens,
        "prompt_tokens_details": details,
        "completion_tokens_details": None,
    }
    return {k: v for k, v in usage.items() if v is not None} if streamed else usage


def _sse(data: dict[str, Any]) -> str:
    return f"data: {json.dumps(data, separators=(',', ':'))}\n\n"


class Generation:
    """One admitted request: holds a scheduler slot and paces its tokens by the latency model."""

    def __init__(self, state: EngineState, request: ChatRequest, prompt: Prompt, max_tokens: int) -> None:
        self.state = state
        self.request = request
        self.prompt = prompt
        self.max_tokens = max_tokens
        self.id = f"chatcmpl-{uuid.uuid4().hex}"
        self.created = int(time.time())
        self.finish_reason = "stop"
        self.cached_tokens = 0

    def plan(self) -> tuple[Answer, list[str], str]:
        latency = self.state.config.latency
        answer = respond(self.request, latency.answer_tokens)
        pieces = split_text(answer.text)
        finish = "stop"
        limit = self.max_tokens
        forced = self.state.config.transcription_max_tokens
        if answer.kind == "transcription" and forced is not None:
            limit = min(limit, forced)
        if len(pieces) > limit:
            pieces, finish = pieces[:limit], "length"
        return answer, pieces, finish

    async def tokens(self) -> AsyncGenerator[str, None]:
        """The answer's tokens, each when the simulated model would emit it."""
        state = self.state
        latency = state.config.latency
        state.waiting += 1
        try:
            await state.slots.acquire()
        finally:
            state.waiting -= 1
        running = _Running(prompt_tokens=len(self.prompt))
        state.running[self.id] = running
        finish = "abort"
        try:
            self.cached_tokens = state.prefix_cache.lookup_and_insert(self.prompt).hit_tokens
            state.prompt_tokens_total += len(self.prompt)
            answer, pieces, planned_finish = self.plan()
            loop = asyncio.get_running_loop()
            start = loop.time()
            if answer.kind == "transcription":
                await asyncio.sleep(latency.transcription_seconds)
            for i, piece in enumerate(pieces):
                if answer.kind == "answer":
                    due = latency.first_token_seconds
                    if latency.tokens_per_second > 0:
                        due += i / latency.tokens_per_second
                    delay = start + due - loop.time()
                    if delay > 0:
                        await asyncio.sleep(delay)
                running.generated += 1
                state.generation_tokens_total += 1
                yield piece
            finish = planned_finish
            self.finish_reason = finish
        finally:
            state.finished[finish] = state.finished.get(finish, 0) + 1
            del state.running[self.id]
            state.slots.release()


def metrics_text(state: EngineState) -> str:
    labels = f'engine="0",model_name="{state.config.served_name}"'
    lines: list[str] = []

    def metric(name: str, kind: str, help_text: str, samples: list[tuple[str, str, float]]) -> None:
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} {kind}")
        for suffix, extra, value in samples:
            label_text = labels + (f",{extra}" if extra else "")
            lines.append(f"{name}{suffix}{{{label_text}}} {float(value)}")

    metric("vllm:num_requests_running", "gauge", "Number of requests in model execution batches.",
           [("", "", len(state.running))])  # fmt: skip
    metric("vllm:num_requests_waiting", "gauge", "Number of requests waiting to be processed.",
           [("", "", state.waiting)])  # fmt: skip
    usage = state.kv_cache_usage()
    metric("vllm:kv_cache_usage_perc", "gauge", "KV-cache usage. 1 means 100 percent usage.",
           [("", "", usage)])  # fmt: skip
    metric("vllm:prefix_cache_queries", "counter", "Prefix cache queries, in terms of number of queried tokens.",
           [("_total", "", state.prefix_cache.queries_total)])  # fmt: skip
    metric("vllm:prefix_cache_hits", "counter", "Prefix cache hits, in terms of number of cached tokens.",
           [("_total", "", state.prefix_cache.hits_total)])  # fmt: skip
    metric("vllm:mm_cache_queries", "counter", "Multi-modal cache queries, in terms of number of queried items.",
           [("_total", "", state.mm_cache.queries_total)])  # fmt: skip
    metric("vllm:mm_cache_hits", "counter", "Multi-modal cache hits, in terms of number of cached items.",
           [("_total", "", state.mm_cache.hits_total)])  # fmt: skip
    metric("vllm:prompt_tokens", "counter", "Number of prefill tokens processed.",
           [("_total", "", state.prompt_tokens_total)])  # fmt: skip
    metric("vllm:generation_tokens", "counter", "Number of generation tokens processed.",
           [("_total", "", state.generation_tokens_total)])  # fmt: skip
    metric("vllm:request_success", "counter", "Count of successfully processed requests.",
           [("_total", f'finished_reason="{k}"', v) for k, v in sorted(state.finished.items())])  # fmt: skip
    return "\n".join(lines) + "\n"


def tokenize_prompt(body: Any, config: StandinConfig, media: MultimodalCache | None = None) -> Prompt:
    if not isinstance(body, dict):
        raise StandinError("the request body must be a JSON object")
    check_model(body.get("model"), config)
    has_prompt, has_messages = "prompt" in body, "messages" in body
    if has_prompt == has_messages:
        raise StandinError("Exactly one of 'prompt' or 'messages' must be provided")
    if has_prompt:
        text = body["prompt"]
        if not isinstance(text, str):
            raise StandinError("prompt must be a string", param="prompt")
        prompt = Prompt()
        prompt.add_text(text)
        return prompt
    flag = body.get("add_generation_prompt", True)
    if not isinstance(flag, bool):
        raise StandinError("add_generation_prompt must be a boolean", param="add_generation_prompt")
    request = ChatRequest(
        model=config.served_name,
        messages=parse_messages(body["messages"], config, media),
        stream=False,
        include_usage=False,
        max_tokens=None,
        add_generation_prompt=flag,
    )
    check_item_count(request.audio_items, config)
    return request.render()


async def completion(generation: Generation) -> dict[str, Any]:
    """A non-streaming chat completion's body, once every token is out."""
    async with contextlib.aclosing(generation.tokens()) as tokens:
        pieces = [piece async for piece in tokens]
    return {
        "id": generation.id,
        "object": "chat.completion",
        "created": generation.created,
        "model": generation.request.model,
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "".join(pieces),
                    "refusal": None,
                    "annotations": None,
                    "audio": None,
                    "function_call": None,
                },
                "logprobs": None,
                "finish_reason": generation.finish_reason,
                "stop_reason": None,
                "token_ids": None,
            }
        ],
        "usage": _usage(generation, len(pieces)),
        "prompt_logprobs": None,
    }


async def stream(generation: Generation) -> AsyncIterator[str]:
    chat = generation.request
    rid, created, model = generation.id, generation.created, chat.model
    count = 0
    # vLLM's stream_interval: the first token's chunk at once, then one chunk per `interval`
    # tokens; what is left goes with the last chunk.
    interval, held = chat.stream_interval, []
    try:
        first = True
        async with contextlib.aclosing(generation.tokens()) as tokens:
            async for piece in tokens:
                if first:
                    yield _sse(_chunk(rid, created, model, {"role": "assistant", "content": ""}, None))
                count += 1
                held.append(piece)
                if first or len(held) >= interval:
                    yield _sse(_chunk(rid, created, model, {"content": "".join(held)}, None))
                    held.clear()
                first = False
        if first:
            yield _sse(_chunk(rid, created, model, {"role": "assistant", "content": ""}, None))
        yield _sse(_chunk(rid, created, model, {"content": "".join(held)}, generation.finish_reason))
        if chat.include_usage:
            usage_chunk = _chunk(rid, created, model, {}, None)
            usage_chunk["choices"] = []
            usage_chunk["usage"] = _usage(generation, count, streamed=True)
            yield _sse(usage_chunk)
    except StandinError as exc:
        yield _sse(error_body(exc.message, exc.status, exc.err_type, exc.param))
    yield "data: [DONE]\n\n"
