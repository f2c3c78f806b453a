"""The stand-in's settings: vLLM's limits from platform.yaml plus a latency model (default: none)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from synapscribe.platform import PlatformConfig, load_platform


@dataclass(frozen=True)
class Latency:
    """How long the simulated model takes. All zero by default (tests run at full speed)."""

    #: a transcription request's whole duration, seconds
    transcription_seconds: float = 0.0
    #: time to the first answer token, seconds
    first_token_seconds: float = 0.0
    #: answer decode rate after the first token; 0 means no delay between tokens
    tokens_per_second: float = 0.0
    #: how long an answer is (before max_tokens cuts it)
    answer_tokens: int = 170

    def __post_init__(self) -> None:
        for name in ("transcription_seconds", "first_token_seconds", "tokens_per_second"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite number >= 0, got {value}")
        if self.answer_tokens < 1:
            raise ValueError(f"answer_tokens must be >= 1, got {self.answer_tokens}")


#: The original design report's measured latencies (the benchmark's reference).
REPORT_LATENCY = Latency(
    transcription_seconds=1.8, first_token_seconds=0.4, tokens_per_second=40.0, answer_tokens=170
)


@dataclass(frozen=True)
class StandinConfig:
    served_name: str
    model_path: str
    max_model_len: int
    max_num_seqs: int
    max_num_batched_tokens: int
    audio_tokens_per_second: int
    #: vLLM's --limit-mm-per-prompt audio count
    max_audio_items: int
    latency: Latency = Latency()
    #: vLLM's --enable-prompt-tokens-details: usage.prompt_tokens_details.cached_tokens
    prompt_tokens_details: bool = False
    #: Test option: a transcription stops after this many tokens with finish_reason `length`,
    #: whatever max_tokens allows, like a model that would write more than it was given room for.
    transcription_max_tokens: int | None = None
    #: vLLM's --block-size: the prefix cache hits whole blocks of this many tokens (16 is vLLM's
    #: default on GPUs; its CPU build uses 128)
    block_size: int = 16
    #: vLLM's multimodal processor cache (--mm-processor-cache-gb), in items: an LRU; an item sent
    #: by uuid alone that it no longer holds is refused ("Cache miss ... data is not provided.")
    mm_cache_items: int = 1024

    @property
    def encoder_cache_size(self) -> int:
        """With audio as the only modality vLLM sizes the encoder cache from max_num_batched_tokens."""
        return self.max_num_batched_tokens

    @property
    def kv_cache_blocks(self) -> int:
        """Simulated KV cache: room for max_num_seqs full-length sequences, in blocks."""
        return self.max_num_seqs * math.ceil(self.max_model_len / self.block_size)

    @classmethod
    def from_platform(
        cls, platform: PlatformConfig | None = None, max_model_len: int | None = None
    ) -> StandinConfig:
        p = platform or load_platform()
        if max_model_len is not None and max_model_len != p.vllm.max_model_len:
            p = p.with_max_model_len(max_model_len)
        return cls(
            served_name=p.model.served_name,
            model_path=p.model.path,
            max_model_len=p.vllm.max_model_len,
            max_num_seqs=p.vllm.max_num_seqs,
            max_num_batched_tokens=p.vllm.max_num_batched_tokens,
            audio_tokens_per_second=p.audio.tokens_per_second,
            max_audio_items=p.max_audio_items_per_prompt,
        )
