"""Does what the visitor has said so far sound finished? Turn-taking on the words, not only
on the silence.

A fixed end-of-turn silence is wrong both ways: 500 ms is a long wait after "What causes a
tsunami?", and too short for "What causes... um... a tsunami?". The session already transcribes
each turn early, 150 ms into its trailing silence (:mod:`voice.pipeline`); this module reads that
transcript and says whether the turn may end now (``complete``), must wait longer
(``unfinished``), or cannot tell (``unsure``: the silence decides, as before).

Why rules and not a model: Pipecat's smart-turn (an audio model) and LiveKit's turn detector (a
small language model over the transcript) both fetch their weights from the Hugging Face hub
at run time, and nothing here may fetch weights; no registry package ships them. What a visitor
leaves unfinished is mostly visible in the last word Whisper heard: a filler ("um"), an
article, a conjunction ("What causes the", "and"), and in Whisper's punctuation: it marks
speech that trails off with "..." and a finished sentence with "?" or ".". A preposition,
auxiliary or question word at the end ("Where do", "come from?") is only a hint.

Eagerness (as in the Realtime API's ``semantic_vad``): ``low`` ends a turn on the silence only
when its words sound complete and otherwise waits longer; ``medium`` (= ``auto``) ends it at
once when they sound complete, waits longer when they sound unfinished and lets the silence
decide when unsure; ``high`` also ends it at once when unsure; ``off`` is the silence alone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from voice.config import VadConfig
    from voice.events import SpeechStopped
    from voice.vad import Endpointer

from voice.config import Eagerness

Verdict = Literal["complete", "unfinished", "unsure"]
Action = Literal["end", "hold", "silence"]
"""End the turn now, hold it open longer, or let the end-of-turn silence decide."""

_FILLER_WORDS = "um umm uh uhh er erm hmm mm ah eh"
FILLERS = frozenset(_FILLER_WORDS.split())
"""Hesitations: the visitor is still looking for the next word."""

_HANGING_WORDS = "a an the my your our their every and or but because whether causes"
HANGING = frozenset(_HANGING_WORDS.split())
"""Last words no finished question ends with: articles, possessives, conjunctions, and
"causes" ("What causes?" is never all a visitor meant)."""

_DANGLING_WORDS = """
    this that these those some any its his her
    of in on at to for from with about into onto over under by than through
    between across around near inside during before after without so if when while
    is are was were do does did can could will would should has have had be
    what where why how which who whose whom show tell explain cause
"""
DANGLING = frozenset(_DANGLING_WORDS.split())
"""Last words that often leave a question hanging ("How big is", "Where do", "Show me
this") but also end finished ones ("Where do they come from?", "What is that?"): without
Whisper's terminal punctuation they mean unfinished, with it the silence decides."""

VERDICT_WAIT_MS = 300
"""How much longer than ``end_silence_ms`` a turn waits for its early transcript's verdict."""

_WORD = re.compile(r"[a-z']+")


def judge(transcript: str) -> Verdict:
    """What the early transcript says about the turn: finished, unfinished, or unclear."""
    text = transcript.strip()
    words = _WORD.findall(text.lower())
    if not words:
        return "unsure"
    if words[-1] in FILLERS or words[-1] in HANGING:
        return "unfinished"
    if text.endswith(("...", "…", ",", "-", "—", ":")):
        return "unfinished"  # Whisper's own mark for speech that trails off
    if not text.endswith(("?", ".", "!")):
        return "unfinished" if words[-1] in DANGLING else "unsure"
    return "unsure" if words[-1] in DANGLING else "complete"


@dataclass(frozen=True)
class TurnEndPolicy:
    """What the session does with a verdict, for one eagerness."""

    eagerness: Eagerness = "auto"

    def ends_now(self, verdict: Verdict) -> bool:
        """End the turn at once, without waiting out the end-of-turn silence."""
        if self.eagerness in ("medium", "auto"):
            return verdict == "complete"
        if self.eagerness == "high":
            return verdict in ("complete", "unsure")
        return False

    def waits_longer(self, verdict: Verdict) -> bool:
        """Hold the turn open for ``vad.unfinished_silence_ms`` instead of ending it: words
        that sound unfinished; with ``low``, also words that do not clearly sound finished."""
        if self.eagerness == "low":
            return verdict in ("unfinished", "unsure")
        return self.eagerness != "off" and verdict == "unfinished"

    def action(self, transcript: str) -> Action:
        """What to do with a turn whose early transcript is ``transcript``."""
        return self.action_for(judge(transcript))

    def action_for(self, verdict: Verdict) -> Action:
        """What to do with a turn judged ``verdict`` (by its words or its sound)."""
        if self.waits_longer(verdict):
            return "hold"
        return "end" if self.ends_now(verdict) else "silence"

    def transcribing(self, endpointer: Endpointer, cfg: VadConfig) -> None:
        """The early transcript has just been started. With ``low`` the silence alone may not
        end the turn until ``VERDICT_WAIT_MS`` after ``end_silence_ms`` (on 2 cores Whisper can
        take longer than the 350 ms left of the silence, and a verdict that comes after the
        turn ended is no use), nor later (a busy machine must not make every turn wait). The
        other eagernesses never wait for a verdict: measured live on 2 cores, that wait cost
        every turn ~100 ms at p50 (bench/README.md), so there a verdict acts only if it comes
        before the silence rule ends the turn (fast speech-to-text)."""
        if self.eagerness == "low":
            endpointer.hold(min(cfg.unfinished_silence_ms, cfg.end_silence_ms + VERDICT_WAIT_MS))

    def heard(self, endpointer: Endpointer, cfg: VadConfig, transcript: str) -> list[SpeechStopped]:
        """Apply the early transcript's verdict to the turn still in its silence; returns the
        end of the turn if it ends now."""
        return self.apply(endpointer, cfg, judge(transcript))

    def apply(
        self, endpointer: Endpointer, cfg: VadConfig, verdict: Verdict
    ) -> list[SpeechStopped]:
        """Apply a verdict (of the early transcript, or of the turn model on the same audio) to
        the turn still in its silence; returns the end of the turn if it ends now."""
        action = self.action_for(verdict)
        if action == "hold":
            endpointer.hold(cfg.unfinished_silence_ms)
            return []
        if action == "silence":
            endpointer.hold(cfg.end_silence_ms)
            silence_ms = endpointer.silence_ms
            if silence_ms is None or silence_ms < cfg.end_silence_ms:
                return []
        return endpointer.end_now()
