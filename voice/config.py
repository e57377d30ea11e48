"""Settings: one documented TOML file, a user file on top, environment variables last.

Why dataclasses and not a dict: a typo in a key or a string where a number belongs must stop the
program at start-up with the key's name, not surface as a KeyError in the middle of a visitor's
question. Each section is a frozen dataclass; `config/default.toml` holds the documented
defaults and must name exactly the fields declared here (a test checks that).
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ENV_PREFIX = "SOS_VOICE__"
DEFAULT_PATH = Path(__file__).resolve().parent.parent / "config" / "default.toml"


class ConfigError(ValueError):
    """A setting is unknown or has a bad value; the message names the key."""


@dataclass(frozen=True)
class AudioConfig:
    input_device: str = ""
    output_device: str = ""
    frame_ms: int = 30
    play: bool = True

    def validate(self) -> None:
        if self.frame_ms not in (10, 20, 30):
            raise ConfigError(f"audio.frame_ms must be 10, 20 or 30, not {self.frame_ms}")


@dataclass(frozen=True)
class VadConfig:
    aggressiveness: int = 2
    start_frames: int = 4
    start_window: int = 6
    end_silence_ms: int = 500
    preroll_ms: int = 300
    min_speech_ms: int = 250
    max_turn_s: float = 20.0

    def validate(self) -> None:
        if not 0 <= self.aggressiveness <= 3:
            raise ConfigError(f"vad.aggressiveness must be 0..3, not {self.aggressiveness}")
        if not 1 <= self.start_frames <= self.start_window:
            raise ConfigError("vad.start_frames must be between 1 and vad.start_window")
        for name in ("end_silence_ms", "preroll_ms", "min_speech_ms"):
            if getattr(self, name) < 0:
                raise ConfigError(f"vad.{name} must be >= 0")
        if self.max_turn_s <= 0:
            raise ConfigError("vad.max_turn_s must be > 0")


@dataclass(frozen=True)
class SttConfig:
    model: str = "auto"
    gpu_model: str = "distil-large-v3"
    device: str = "auto"
    compute_type: str = "auto"
    language: str = "en"
    beam_size: int = 5
    use_sos_vocabulary: bool = True
    hotwords: str = ""
    workers: int = 2

    def validate(self) -> None:
        if self.device not in ("auto", "cpu", "cuda"):
            raise ConfigError(f"stt.device must be auto, cpu or cuda, not {self.device!r}")
        if self.beam_size < 1 or self.workers < 1:
            raise ConfigError("stt.beam_size and stt.workers must be >= 1")


@dataclass(frozen=True)
class TtsConfig:
    voice: str = "auto"
    length_scale: float = 1.0
    workers: int = 2

    def validate(self) -> None:
        if not 0.3 <= self.length_scale <= 3.0:
            raise ConfigError("tts.length_scale must be between 0.3 and 3.0")
        if self.workers < 1:
            raise ConfigError("tts.workers must be >= 1")


@dataclass(frozen=True)
class LlmConfig:
    answerer: str = "auto"
    base_model: str = "Qwen/Qwen3-4B"
    adapter: str = "HacksHaven/sos-qwen3-4b-lora"
    merge_adapter: bool = False
    load_in_4bit: bool = True
    max_new_tokens: int = 256
    temperature: float = 0.6
    top_p: float = 0.9
    history_tokens: int = 1536
    max_batch: int = 32
    grounding_entries: int = 3
    base_url: str = ""
    model: str = "sos"
    api_key: str = ""
    timeout_s: float = 30.0

    def validate(self) -> None:
        allowed = ("auto", "transformers", "openai", "catalog")
        if self.answerer not in allowed:
            raise ConfigError(f"llm.answerer must be one of {allowed}, not {self.answerer!r}")
        if self.max_new_tokens < 1 or self.max_batch < 1 or self.grounding_entries < 1:
            raise ConfigError("llm.max_new_tokens, max_batch, grounding_entries must be >= 1")
        if not 0.0 <= self.temperature <= 2.0:
            raise ConfigError("llm.temperature must be between 0 and 2")
        if not 0.0 < self.top_p <= 1.0:
            raise ConfigError("llm.top_p must be in (0, 1]")


@dataclass(frozen=True)
class CatalogConfig:
    path: str = ""
    retrieval: str = "auto"

    def validate(self) -> None:
        if self.retrieval not in ("auto", "lexical", "hybrid"):
            raise ConfigError(
                f"catalog.retrieval must be auto, lexical or hybrid, not {self.retrieval!r}"
            )
        if self.path and not Path(self.path).expanduser().is_file():
            raise ConfigError(f"catalog.path: no such file: {self.path}")


@dataclass(frozen=True)
class PipelineConfig:
    barge_in: bool = True
    half_duplex: bool = False
    early_stt: bool = True
    first_chunk_min_chars: int = 24
    max_history_turns: int = 6

    def validate(self) -> None:
        if self.first_chunk_min_chars < 1 or self.max_history_turns < 0:
            raise ConfigError("pipeline.first_chunk_min_chars >= 1, max_history_turns >= 0")


@dataclass(frozen=True)
class ServerConfig:
    """Limits and security of ``sos-voice --serve``. Every limit is per server or per session."""

    # Address and port to bind (the CLI's --host/--port override them).
    host: str = "127.0.0.1"
    port: int = 8765
    # Bearer token clients must present ("" = none; only allowed when bound to loopback).
    token: str = ""
    # Extra browser origins allowed to connect, comma-separated ("*" = any). The page's own
    # origin (same host:port) and clients that send no Origin header are always allowed.
    allowed_origins: str = ""
    # Largest JSON or binary message accepted; larger ones get an error event (the session goes
    # on); more than twice this closes the connection with 1009.
    max_message_bytes: int = 262_144
    # Longest user turn, in seconds of audio (caps the VAD's max_turn_s and push-to-talk).
    max_turn_audio_s: float = 30.0
    # Concurrent sessions; the next connection is closed with 1013 (try again later).
    max_sessions: int = 32
    # Close a session with 1001 after this long without a client message while idle.
    idle_timeout_s: float = 300.0
    # Bytes waiting to be sent to one client; a client that reads slower is dropped with 1008.
    send_queue_bytes: int = 4_194_304
    # TLS certificate chain and private key (PEM files); both empty = plain ws:// and http://.
    tls_cert: str = ""
    tls_key: str = ""
    # Serve the browser page at GET /; web_root "" = the web/ folder shipped with the project.
    serve_web: bool = True
    web_root: str = ""
    # How many recent turns the /metrics latency percentiles are computed over.
    metrics_window: int = 200
    # Keepalive pings find vanished clients (their response is then cancelled).
    ping_interval_s: float = 20.0

    def validate(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"server.port must be 0..65535, not {self.port}")
        if self.max_message_bytes < 1024:
            raise ConfigError("server.max_message_bytes must be >= 1024")
        if self.max_turn_audio_s <= 0 or self.idle_timeout_s <= 0:
            raise ConfigError("server.max_turn_audio_s and server.idle_timeout_s must be > 0")
        if self.max_sessions < 1 or self.metrics_window < 1:
            raise ConfigError("server.max_sessions and server.metrics_window must be >= 1")
        if self.send_queue_bytes < 65536:
            raise ConfigError("server.send_queue_bytes must be >= 65536")
        if self.ping_interval_s < 0:
            raise ConfigError("server.ping_interval_s must be >= 0 (0 = no keepalive)")
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ConfigError("server.tls_cert and server.tls_key must be given together")
        for name in ("tls_cert", "tls_key"):
            value = getattr(self, name)
            if value and not Path(value).expanduser().is_file():
                raise ConfigError(f"server.{name}: no such file: {value}")
        if self.web_root and not Path(self.web_root).expanduser().is_dir():
            raise ConfigError(f"server.web_root: no such folder: {self.web_root}")

    def origins(self) -> tuple[str, ...]:
        """The extra allowed origins, normalized (lower case, no trailing slash)."""
        parts = self.allowed_origins.replace(" ", ",").split(",")
        return tuple(p.strip().rstrip("/").lower() for p in parts if p.strip())


@dataclass(frozen=True)
class Config:
    """All settings. Build with :func:`load_config`; never mutate (use :meth:`replace`)."""

    audio: AudioConfig = field(default_factory=AudioConfig)
    vad: VadConfig = field(default_factory=VadConfig)
    stt: SttConfig = field(default_factory=SttConfig)
    tts: TtsConfig = field(default_factory=TtsConfig)
    llm: LlmConfig = field(default_factory=LlmConfig)
    catalog: CatalogConfig = field(default_factory=CatalogConfig)
    pipeline: PipelineConfig = field(default_factory=PipelineConfig)
    server: ServerConfig = field(default_factory=ServerConfig)

    def replace(self, **sections: Mapping[str, Any]) -> Config:
        """A validated copy with some keys changed: ``cfg.replace(vad={"end_silence_ms": 300})``."""
        merged = dataclasses.asdict(self)
        for name, values in sections.items():
            if name not in merged:
                raise ConfigError(f"unknown config section [{name}]")
            merged[name].update(values)
        return _build(merged, "override")


def _section_types() -> dict[str, type]:
    hints = typing.get_type_hints(Config)
    return {f.name: hints[f.name] for f in dataclasses.fields(Config)}


def _coerce(value: Any, expected: Any, where: str) -> Any:
    if isinstance(expected, types.UnionType):
        raise TypeError("union settings are not supported")
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if expected is str and isinstance(value, int) and not isinstance(value, bool):
        return str(value)  # device indices: input_device = 2 or SOS_VOICE__AUDIO__INPUT_DEVICE=2
    if expected is bool:
        if isinstance(value, bool):
            return value
    elif isinstance(value, expected) and not isinstance(value, bool):
        return value
    raise ConfigError(
        f"{where}: expected {expected.__name__}, got {type(value).__name__} {value!r}"
    )


def _build(data: Mapping[str, Any], source: str) -> Config:
    sections = _section_types()
    built: dict[str, Any] = {}
    for name, values in data.items():
        if name not in sections:
            raise ConfigError(f"{source}: unknown config section [{name}]")
        if not isinstance(values, Mapping):
            raise ConfigError(f"{source}: [{name}] must be a table")
        cls = sections[name]
        hints = typing.get_type_hints(cls)
        known = {f.name for f in dataclasses.fields(cls)}
        kwargs = {}
        for key, value in values.items():
            if key not in known:
                raise ConfigError(
                    f"{source}: unknown key {name}.{key} (known: {', '.join(sorted(known))})"
                )
            kwargs[key] = _coerce(value, hints[key], f"{source}: {name}.{key}")
        section = cls(**kwargs)
        section.validate()
        built[name] = section
    return Config(**built)


def _merge(base: dict[str, Any], extra: Mapping[str, Any], source: str) -> None:
    for name, values in extra.items():
        if not isinstance(values, Mapping):
            raise ConfigError(f"{source}: [{name}] must be a table of keys")
        base.setdefault(name, {}).update(values)


def _parse_env_value(text: str) -> Any:
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def env_overrides(environ: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """``SOS_VOICE__VAD__END_SILENCE_MS=700`` -> ``{"vad": {"end_silence_ms": 700}}``."""
    out: dict[str, dict[str, Any]] = {}
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX):
            continue
        parts = name[len(ENV_PREFIX) :].lower().split("__")
        if len(parts) != 2 or not all(parts):
            raise ConfigError(f"environment: {name} must look like {ENV_PREFIX}SECTION__KEY")
        out.setdefault(parts[0], {})[parts[1]] = _parse_env_value(raw)
    return out


def read_toml(path: Path) -> dict[str, Any]:
    """Read a TOML file, turning syntax errors into a ConfigError that names the file."""
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError as exc:
        raise ConfigError(f"config file not found: {path}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from exc


def load_config(
    path: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> Config:
    """Defaults from config/default.toml, then ``path``, then the environment."""
    data: dict[str, Any] = {}
    _merge(data, read_toml(DEFAULT_PATH), str(DEFAULT_PATH))
    source = str(DEFAULT_PATH)
    if path is not None:
        _merge(data, read_toml(Path(path)), str(path))
        source = str(path)
    env = env_overrides(os.environ if environ is None else environ)
    if env:
        _merge(data, env, "environment")
        source = f"{source} + environment"
    return _build(data, source)
