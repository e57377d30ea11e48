"""Config: the documented defaults match the schema, and every mistake is a clear error."""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path

import pytest

from cli.config import DEFAULT_PATH, ENV_PREFIX, Config, load_config
from settings import ConfigError, env_overrides


def test_default_file_documents_exactly_the_schema() -> None:
    data = tomllib.loads(DEFAULT_PATH.read_text())
    schema = {
        f.name: {g.name for g in dataclasses.fields(f.default_factory())}  # type: ignore[misc]
        for f in dataclasses.fields(Config)
    }
    assert set(data) == set(schema)
    for section, keys in schema.items():
        assert set(data[section]) == keys, section


def test_every_default_key_has_a_comment_above_it() -> None:
    lines = DEFAULT_PATH.read_text().splitlines()
    for i, line in enumerate(lines):
        if "=" in line and not line.lstrip().startswith("#") and not line.startswith("["):
            above = lines[i - 1].strip()
            assert above.startswith("#") or "=" in above, f"undocumented: {line}"


def test_defaults_load(config: Config) -> None:
    assert config.vad.end_silence_ms == 500
    assert config.llm.base_model == "Qwen/Qwen3-4B"
    assert config.stt.model == "auto"


def test_user_file_overrides_defaults(tmp_path: Path) -> None:
    user = tmp_path / "kiosk.toml"
    user.write_text('[vad]\nend_silence_ms = 700\n[audio]\ninput_device = "2"\n')
    cfg = load_config(user, environ={})
    assert cfg.vad.end_silence_ms == 700
    assert cfg.audio.input_device == "2"
    assert cfg.vad.aggressiveness == 2


def test_environment_overrides_file(tmp_path: Path) -> None:
    user = tmp_path / "kiosk.toml"
    user.write_text("[vad]\nend_silence_ms = 700\n")
    env = {"SOS_VOICE__VAD__END_SILENCE_MS": "300", "SOS_VOICE__LLM__BASE_URL": "http://x:8000/v1"}
    cfg = load_config(user, environ=env)
    assert cfg.vad.end_silence_ms == 300
    assert cfg.llm.base_url == "http://x:8000/v1"


def test_int_is_accepted_for_float_but_not_the_reverse() -> None:
    assert load_config(environ={"SOS_VOICE__VAD__MAX_TURN_S": "10"}).vad.max_turn_s == 10.0
    with pytest.raises(ConfigError, match=r"vad\.end_silence_ms: expected int"):
        load_config(environ={"SOS_VOICE__VAD__END_SILENCE_MS": "0.5"})


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("[vad]\nend_silense_ms = 300\n", r"unknown key vad\.end_silense_ms"),
        ("[vadd]\nx = 1\n", r"unknown config section \[vadd\]"),
        ('[vad]\naggressiveness = "high"\n', r"vad\.aggressiveness: expected int"),
        ("[vad]\naggressiveness = 5\n", r"aggressiveness must be 0\.\.3"),
        ("[audio]\nframe_ms = 25\n", r"frame_ms must be 10, 20 or 30"),
        (
            '[audio]\necho_cancellation = "speex"\n',
            r"echo_cancellation must be one of webrtc, off, headset",
        ),
        ("[audio]\nplay = 1\n", r"audio\.play: expected bool"),
        ('[llm]\nanswerer = "gpt"\n', r"llm\.answerer must be one of"),
        ("[vad\n", r"kiosk\.toml"),
        ('[stt]\nencoder_window = "short"\n', r"stt\.encoder_window must be 'full' or seconds"),
        ("[stt]\nencoder_window = 5\n", r"seconds from 10 to 30, not '5'"),
    ],
)
def test_bad_values_name_the_key(tmp_path: Path, toml: str, message: str) -> None:
    user = tmp_path / "kiosk.toml"
    user.write_text(toml)
    with pytest.raises(ConfigError, match=message):
        load_config(user, environ={})


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.toml", environ={})


def test_env_names_must_have_section_and_key() -> None:
    with pytest.raises(ConfigError, match="SECTION__KEY"):
        env_overrides({"SOS_VOICE__VAD": "1"}, ENV_PREFIX)
    assert env_overrides({"OTHER": "1", "SOS_VOICE__TTS__VOICE": "x.onnx"}, ENV_PREFIX) == {
        "tts": {"voice": "x.onnx"}
    }


def test_replace_validates() -> None:
    cfg = load_config(environ={})
    assert cfg.replace(vad={"end_silence_ms": 200}).vad.end_silence_ms == 200
    with pytest.raises(ConfigError):
        cfg.replace(vad={"aggressiveness": 9})


def test_device_index_may_be_a_number() -> None:
    cfg = load_config(environ={"SOS_VOICE__AUDIO__INPUT_DEVICE": "2"})
    assert cfg.audio.input_device == "2"


def test_encoder_window_settings() -> None:
    """A number in the file is seconds on a CPU (20 by default); CUDA and "full" use Whisper's
    full window."""
    cfg = load_config(environ={"SOS_VOICE__STT__ENCODER_WINDOW": "full"})
    assert (cfg.stt.window_seconds("cpu"), cfg.stt.window_seconds("cuda")) == (30.0, 30.0)
    default = load_config(environ={}).stt
    assert (default.window_seconds("cpu"), default.window_seconds("cuda")) == (20.0, 30.0)
