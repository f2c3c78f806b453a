from pathlib import Path

import pytest
import yaml
from synapscribe.cli import main
from synapscribe.platform import PlatformConfigError, load_platform, load_platform_file


def test_packaged_config_holds_the_design_numbers():
    p = load_platform()
    assert (p.ports.agentcore, p.ports.vllm, p.ports.tts) == (5000, 8000, 8001)
    assert p.vllm.max_model_len == 16384
    assert p.vllm.gpu_memory_utilization == 0.85
    assert p.vllm.max_num_seqs == 8
    assert p.vllm.max_num_batched_tokens == 2048


def test_derived_limits_follow_the_context_length():
    p16 = load_platform()
    p32 = p16.with_max_model_len(32768)
    # ~9 minutes of audio at 16K; a 25-minute lecture only as transcript; ~an hour of transcript.
    assert 8 * 60 < p16.max_audio_lecture_seconds < 10 * 60
    assert 60 * 60 <= p16.max_transcript_lecture_seconds < 75 * 60
    assert p32.max_audio_lecture_seconds > 2 * p16.max_audio_lecture_seconds
    assert p32.max_audio_items_per_prompt > p16.max_audio_items_per_prompt
    assert p16.max_audio_items_per_prompt * p16.audio.max_item_seconds >= p16.max_audio_lecture_seconds


def test_context_longer_than_the_model_is_refused():
    with pytest.raises(PlatformConfigError, match=r"vllm\.max_model_len"):
        load_platform().with_max_model_len(65536)


def test_audio_item_over_the_encoder_cache_is_refused(tmp_path: Path):
    data = load_platform().model_dump()
    data["audio"]["max_item_seconds"] = 90  # 2,250 tokens > 2,048
    f = tmp_path / "platform.yaml"
    f.write_text(yaml.safe_dump(data))
    with pytest.raises(PlatformConfigError, match="encoder cache"):
        load_platform_file(f)


def test_cli_prints_json_with_derived_values(capsys):
    assert main(["platform", "--format", "json", "--max-model-len", "32768"]) == 0
    out = capsys.readouterr().out
    assert '"max_model_len": 32768' in out
    assert '"max_audio_items_per_prompt"' in out


def test_cli_rejects_a_bad_context_length_with_a_message(capsys):
    assert main(["platform", "--max-model-len", "100"]) == 2
    assert "max_model_len" in capsys.readouterr().err


def test_the_context_modes_come_from_the_configuration():
    p = load_platform()
    # facts.md: Qwen2.5-Omni-3B's own limit is 32K; the default context is 16K.
    assert p.model.max_position_embeddings == 32768
    assert p.context_lengths == (p.vllm.max_model_len, p.model.max_position_embeddings)
    assert p.with_max_model_len(p.model.max_position_embeddings).context_lengths == (32768,)
    assert p.as_dict()["derived"]["context_lengths"] == list(p.context_lengths)


def test_max_model_len_is_checked_against_the_models_own_limit(tmp_path: Path):
    data = load_platform().model_dump()
    data["model"]["max_position_embeddings"] = 8192  # a smaller model than the configured context
    f = tmp_path / "platform.yaml"
    f.write_text(yaml.safe_dump(data))
    with pytest.raises(
        PlatformConfigError, match=r"vllm\.max_model_len \(16384\) exceeds .*max_position_embeddings \(8192\)"
    ):
        load_platform_file(f)
    data["model"]["max_position_embeddings"] = 65536
    data["vllm"]["max_model_len"] = 65536
    f.write_text(yaml.safe_dump(data))
    assert load_platform_file(f).context_lengths == (65536,)
    del data["model"]["max_position_embeddings"]
    f.write_text(yaml.safe_dump(data))
    with pytest.raises(PlatformConfigError, match=r"model\.max_position_embeddings"):
        load_platform_file(f)
