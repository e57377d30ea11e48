"""Turn-taking on the words: the verdict rules, the policy per eagerness, and the endpointer's
hooks (end now, hold longer) on real espeak-ng speech."""

from __future__ import annotations

from pathlib import Path

import pytest

from settings import ConfigError
from tests.speech import concat_wavs, espeak_wav, longest_gap_ms, read_pcm16, speech_bounds_ms
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


def test_a_verdict_acts_the_same_whoever_gave_it() -> None:
    """The policy takes verdicts from the early transcript or from another judge of the same
    audio (bench/turn_taking.py replays an audio turn model through it)."""
    said = {"complete": "What causes a tsunami?", "unfinished": "What causes the", "unsure": ""}
    for eagerness in ("off", "low", "medium", "high"):
        policy = TurnEndPolicy(eagerness)  # type: ignore[arg-type]
        for verdict, transcript in said.items():
            assert policy.action_for(verdict) == policy.action(transcript)  # type: ignore[arg-type]


def test_a_pause_inside_one_utterance_is_found(tmp_path: Path) -> None:
    """The turn-taking bench's paused questions: one espeak-ng utterance with an SSML break,
    so the voice carries on across the pause; the helper finds where the pause lies."""
    ssml = '<speak>Why do hurricanes <break time="600ms"/> spin around?</speak>'
    pcm, rate = read_pcm16(espeak_wav(ssml, tmp_path / "p.wav", ssml=True))
    start, end = speech_bounds_ms(pcm, rate)
    gap_from, gap_to = longest_gap_ms(pcm, rate)
    assert start < gap_from < gap_to < end
    assert 550 <= gap_to - gap_from <= 800  # the break, plus the silence of its word edges
    whole, _ = read_pcm16(espeak_wav("Why do hurricanes spin around?", tmp_path / "w.wav"))
    assert len(pcm) - len(whole) >= 2 * rate * 500 // 1000  # the SSML break was spoken


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
