"""A tiny model with Qwen2.5-Omni's architecture and random weights, made locally (nothing from a
hub): the same config classes, processor, special tokens and chat template shape as the served
model, so vLLM runs its real Qwen2.5-Omni code path (audio encoder, multimodal placeholders, mRoPE),
just with a 128-wide, 2-layer thinker and 64-wide, 2-layer encoders (0.83 M parameters).

Its words mean nothing. It does end: a random model never picks its end token, so the model's own
generation_config.json (where vLLM takes its default sampling from) lists about one ordinary token in
six as an end token and a strong repetition penalty; answers and transcripts then end after a few
tokens at temperature 0.

`tiny_model(python)` is the cached directory, built by running this file with the engine
environment's interpreter (`python tiny_model.py OUT_DIR`); the cache is keyed by this file's source,
so the same source always gives the same model (seeded weights, a tokenizer trained on text here).
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

SEED = 20261202
BPE_VOCAB = 2048
END_TOKEN_EVERY = 6  # one ordinary token in this many ends a generation
REPETITION_PENALTY = 5.0

# Qwen2.5-Omni's special tokens (its tokenizer_config.json), in its order.
SPECIAL_TOKENS = [
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|AUDIO|>", "<|audio_bos|>", "<|audio_eos|>",
    "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_bos|>", "<|vision_eos|>",
    "<|vision_pad|>", "<|IMAGE|>", "<|VIDEO|>",
]  # fmt: skip
# What Qwen2_5OmniProcessor reads from the tokenizer (extra_special_tokens in tokenizer_config.json).
NAMED_TOKENS = {
    "audio_token": "<|AUDIO|>", "audio_bos_token": "<|audio_bos|>", "audio_eos_token": "<|audio_eos|>",
    "image_token": "<|IMAGE|>", "video_token": "<|VIDEO|>",
    "vision_bos_token": "<|vision_bos|>", "vision_eos_token": "<|vision_eos|>",
}  # fmt: skip

# The shape of Qwen2.5-Omni's chat template: a default system turn, string or list content, one
# `<|audio_bos|><|AUDIO|><|audio_eos|>` per audio item (the processor expands <|AUDIO|> to the item's
# 25 tokens a second). vLLM sees the list loop and passes OpenAI-style content parts.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] in ('audio', 'audio_url', 'input_audio') %}<|audio_bos|><|AUDIO|><|audio_eos|>"
    "{% elif part['type'] in ('image', 'image_url') %}<|vision_bos|><|IMAGE|><|vision_eos|>"
    "{% elif part['type'] in ('video', 'video_url') %}<|vision_bos|><|VIDEO|><|vision_eos|>"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# The tokenizer's training text: lecture-like English, fixed here so the vocabulary never changes; the
# chat roles on lines of their own, so each is one token (the config names the id of `user`).
CORPUS = """
Today we look at how a neural network learns from examples. The lecture starts with the idea of a
loss function, then gradient descent, then the chain rule that gives back propagation its name.
Questions are welcome at any time: what is the learning rate, why does the model overfit, how do we
choose the batch size, and when should training stop? A student asked about the transcript of last
week's lecture on probability, entropy and information. The answer is in the second part of the
recording, after the break, where the speaker explains the difference between a prior and a
posterior, and shows an example with numbers one, two, three, four, five, six, seven, eight, nine
and ten. Summaries, follow-up questions and spoken answers are part of every session.
system
user
assistant
"""


def thinker_config() -> dict[str, Any]:
    text = {
        "vocab_size": 0,  # set from the tokenizer
        "hidden_size": 128, "intermediate_size": 256, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 32768,
        # Qwen2.5-Omni's multimodal RoPE; the sections add up to half the head size (32 / 2).
        "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": [4, 6, 6]},
        "tie_word_embeddings": False,
    }  # fmt: skip
    audio = {
        "num_mel_bins": 128, "encoder_layers": 2, "encoder_attention_heads": 2, "encoder_ffn_dim": 128,
        "d_model": 64, "output_dim": 128, "max_source_positions": 1500, "n_window": 100,
    }  # fmt: skip
    vision = {
        "depth": 2, "hidden_size": 64, "intermediate_size": 128, "num_heads": 2, "out_hidden_size": 128,
        "patch_size": 14, "spatial_merge_size": 2, "temporal_patch_size": 2, "window_size": 112,
        "fullatt_block_indexes": [1],
    }  # fmt: skip
    return {"text_config": text, "audio_config": audio, "vision_config": vision}


def train_tokenizer() -> Any:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=BPE_VOCAB, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    tok.train_from_iterator([line for line in CORPUS.splitlines() if line], trainer=trainer)
    tok.add_special_tokens(SPECIAL_TOKENS)
    return tok


def build(out: Path) -> None:
    import torch
    from transformers import (
        Qwen2_5OmniConfig,
        Qwen2_5OmniProcessor,
        Qwen2_5OmniThinkerForConditionalGeneration,
        Qwen2TokenizerFast,
        Qwen2VLImageProcessor,
        Qwen2VLVideoProcessor,
        WhisperFeatureExtractor,
    )

    torch.manual_seed(SEED)
    tokenizer = Qwen2TokenizerFast(
        tokenizer_object=train_tokenizer(), eos_token="<|im_end|>", pad_token="<|endoftext|>",
        unk_token=None, bos_token=None, extra_special_tokens=NAMED_TOKENS, model_max_length=32768,
    )  # fmt: skip
    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in SPECIAL_TOKENS}
    processor = Qwen2_5OmniProcessor(
        image_processor=Qwen2VLImageProcessor(),
        video_processor=Qwen2VLVideoProcessor(),
        feature_extractor=WhisperFeatureExtractor(feature_size=128, chunk_length=300),
        tokenizer=tokenizer,
        chat_template=CHAT_TEMPLATE,
    )
    processor.save_pretrained(out)

    parts = thinker_config()
    parts["text_config"]["vocab_size"] = -(-len(tokenizer) // 64) * 64
    config = Qwen2_5OmniConfig(
        thinker_config={
            **parts,
            "audio_token_index": ids["<|AUDIO|>"], "image_token_index": ids["<|IMAGE|>"],
            "video_token_index": ids["<|VIDEO|>"], "audio_start_token_id": ids["<|audio_bos|>"],
            "audio_end_token_id": ids["<|audio_eos|>"], "vision_start_token_id": ids["<|vision_bos|>"],
            "vision_end_token_id": ids["<|vision_eos|>"], "user_token_id": tokenizer.convert_tokens_to_ids("user"),
        },
        enable_audio_output=False,
    )  # fmt: skip
    config.architectures = ["Qwen2_5OmniModel"]  # what the served model's config.json names
    config.dtype = "bfloat16"
    config.save_pretrained(out)

    thinker = Qwen2_5OmniThinkerForConditionalGeneration(config.thinker_config).to(torch.bfloat16)
    from safetensors.torch import save_file

    weights = {f"thinker.{name}": t.contiguous() for name, t in thinker.state_dict().items()}
    save_file(weights, str(out / "model.safetensors"), metadata={"format": "pt"})

    ordinary = [i for i in range(len(tokenizer)) if i not in ids.values()]
    ends = [ids["<|im_end|>"], ids["<|endoftext|>"], *ordinary[END_TOKEN_EVERY - 1 :: END_TOKEN_EVERY]]
    generation = {
        "eos_token_id": ends,
        "pad_token_id": ids["<|endoftext|>"],
        "repetition_penalty": REPETITION_PENALTY,
    }
    (out / "generation_config.json").write_text(json.dumps(generation, indent=1) + "\n")
    params = sum(t.numel() for t in weights.values())
    (out / "TINY_MODEL.json").write_text(
        json.dumps({"parameters": params, "seed": SEED, "vocab": len(tokenizer)})
    )


def cache_key() -> str:
    return hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:12]


def tiny_model(python: Path) -> tuple[Path, float]:
    """The cached model directory (built with the engine environment's `python`) and the seconds spent."""
    from cached_build import CACHE_DIR, cached_build

    def run(partial: Path) -> None:
        partial.mkdir(parents=True)
        env = {
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "PATH": "/usr/bin:/bin",
            "HOME": str(partial),
        }
        proc = subprocess.run(
            [str(python), __file__, str(partial)], capture_output=True, text=True, timeout=900, check=False, env=env
        )  # fmt: skip
        if proc.returncode != 0:
            raise RuntimeError(
                f"building the tiny model failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
            )

    return cached_build(CACHE_DIR / f"engine-model-{cache_key()}", run, done="TINY_MODEL.json")


if __name__ == "__main__":
    build(Path(sys.argv[1]))
