"""Turn-taking on the words: the verdict rules, the policy per eagerness, and the endpointer's
hooks (end now, hold longer) on real espeak-ng speech."""

from __future__ import annotations

from pathlib import Path

import pytest

from settings import ConfigError
from tests.speech import concat_wavs, espeak_wav, read_pcm16
from voice.config import VadConfig
from voice.events import SpeechStopped
from voice.turn_end import TurnEndPolicy, judge
from voice.vad import Endpointer

FRAME_MS = 30
FRAME_BYTES = 16000 * 2 * FRAME_MS // 1000


@pytest.mark.parametrize(
    ("transcript", "verdict"),
    [
        ("What causes a tsunami?", "complete"),
        ("Tell me about hurricanes.", "complete"),
        ("What does it look like?", "complete"),
        ("What causes the", "unfinished"),
        ("What causes the...", "unfinished"),
        ("What's the...um...", "unfinished"),
        ("Show me the", "unfinished"),
        ("How big is the ozone hole and", "unfinished"),
        ("Um.", "unfinished"),
        ("Where do", "unfinished"),
        ("Where do they come from?", "unsure"),  # a preposition at the end is only a hint
        ("What is that?", "unsure"),
        ("How big is the ozone hole", "unsure"),  # no punctuation, no hint: the silence decides
        ("", "unsure"),
    ],
)
def test_verdicts(transcript: str, verdict: str) -> None:
    assert judge(transcript) == verdict


def test_eagerness_decides_what_a_verdict_does() -> None:
    said = {"complete": "What causes a tsunami?", "unfinished": "What causes the", "unsure": ""}
    expected = {
        "off": {"complete": "silence", "unfinished": "silence", "unsure": "silence"},
        "low": {"complete": "silence", "unfinished": "hold", "unsure": "hold"},
        "medium": {"complete": "end", "unfinished": "hold", "unsure": "silence"},
        "auto": {"complete": "end", "unfinished": "hold", "unsure": "silence"},
        "high": {"complete": "end", "unfinished": "hold", "unsure": "end"},
    }
    for eagerness, actions in expected.items():
        policy = TurnEndPolicy(eagerness)  # type: ignore[arg-type]
        assert {v: policy.action(t) for v, t in said.items()} == actions, eagerness


def test_bad_eagerness_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"vad\.eagerness must be one of"):
        VadConfig(eagerness="eager").validate()


def frames(pcm: bytes) -> list[bytes]:
    return [pcm[i : i + FRAME_BYTES] for i in range(0, len(pcm) - FRAME_BYTES + 1, FRAME_BYTES)]


def test_end_now_ends_the_turn_with_exactly_the_early_audio(tmp_path: Path) -> None:
    pcm, _ = read_pcm16(espeak_wav("What causes a tsunami?", tmp_path / "q.wav"))
    endpointer = Endpointer(VadConfig(), FRAME_MS)
    early: bytes | None = None
    stopped: list[SpeechStopped] = []
    for frame in frames(pcm):
        stopped += [e for e in endpointer.process(frame) if isinstance(e, SpeechStopped)]
        if early is None and (early := endpointer.early_audio()) is not None:
            assert endpointer.silence_ms == 150
            stopped += endpointer.end_now()  # the words sound complete: no 500 ms wait
            break
    (turn,) = stopped
    assert turn.audio == early
    assert endpointer.end_now() == [] and endpointer.silence_ms is None  # nothing open


def test_hold_waits_out_a_pause_the_silence_rule_would_end_on(tmp_path: Path) -> None:
    first = espeak_wav("What causes, um,", tmp_path / "a.wav", trail_s=0.0)
    rest = espeak_wav("a tsunami?", tmp_path / "b.wav", lead_s=0.0)
    pcm, _ = read_pcm16(concat_wavs([first, rest], tmp_path / "both.wav", gap_s=0.9))
    cfg = VadConfig()

    def turns(hold_ms: int | None) -> list[SpeechStopped]:
        endpointer = Endpointer(cfg, FRAME_MS)
        out: list[SpeechStopped] = []
        for frame in frames(pcm):
            out += [e for e in endpointer.process(frame) if isinstance(e, SpeechStopped)]
            if endpointer.early_audio() is not None and hold_ms is not None:
                endpointer.hold(hold_ms)
        return out + endpointer.flush()

    assert len(turns(None)) == 2  # 900 ms of silence: the 500 ms rule cuts the question
    (whole,) = turns(cfg.unfinished_silence_ms)
    assert len(whole.audio) > len(pcm) // 2
    # A hold never shortens the wait below end_silence_ms.
    assert len(turns(100)) == 2
