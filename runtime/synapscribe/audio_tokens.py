"""How many tokens vLLM makes of one audio item for Qwen2.5-Omni: the one rule, shared by the
planner (synapscribe.planner) and the model stand-in (synapscribe_local.standin.tokens).

The engine decodes the item, resamples it to 16 kHz (the length rounded up, as torchaudio does), makes
one mel frame per started hop (10 ms at 25 tokens a second) and its audio encoder halves the frames
twice (each stage rounding up, then down). So 25 tokens a second, but one fewer for many lengths
that are not whole 40 ms (an MP3 item of 1666 frames of 36 ms: 1499, not 1500). The chat template
sets each item between <|audio_bos|> and <|audio_eos|>. tests/engine holds both to the real engine.
"""

from __future__ import annotations

#: The audio encoder's input rate; vLLM resamples every item to it.
ENCODER_SAMPLE_RATE = 16_000
#: Mel frames per audio token: the encoder halves the frame rate twice.
MEL_FRAMES_PER_TOKEN = 4
#: <|audio_bos|> and <|audio_eos|> around every item's audio tokens.
AUDIO_MARKER_TOKENS = 2


def audio_tokens_for(samples: int, rate: int, tokens_per_second: int) -> int:
    """Audio tokens of an item of `samples` decoded samples (per channel) at `rate` Hz, markers not
    included: the feature extractor's mask has one mel frame per started hop (16 kHz /
    (4 x tokens_per_second) = 160 samples at 25 tokens a second); the encoder's output length is
    ((frames - 1) // 2 + 1 - 2) // 2 + 1."""
    at_16k = samples if rate == ENCODER_SAMPLE_RATE else -(-samples * ENCODER_SAMPLE_RATE // rate)
    hop = ENCODER_SAMPLE_RATE // (MEL_FRAMES_PER_TOKEN * tokens_per_second)
    frames = -(-at_16k // hop)
    return ((frames - 1) // 2 + 1 - 2) // 2 + 1
