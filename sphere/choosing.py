"""Which clip of the open playlist a spoken "show me ..." means.

Two readings of the query, the larger score wins: the share of its words in a clip's name or
title (a clip the catalog does not know has only this), and retrieval's score of the clip's
catalog entry (so "show me the northern lights" finds "Aurora"). When neither finds a clip, a
third reading listens to the words: Whisper hears a clip's name as words that sound like it
("Show me my vericanes."), so each query word (and word pair) is compared by sound
(:mod:`catalog.sounds`) with the words of every clip's title, and the clip that sounds
clearly closest is taken. Only the open playlist is searched that way, a few dozen clips, so
a sound match cannot wander to a dataset the exhibit is not showing; the thresholds were
chosen on the tuning part of ``bench/sphere_commands.py``.

Kept apart from :mod:`sphere.control` (which acts on the host within the operator's policy)
so the choice can be measured on its own.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence

from catalog.retrieval import Retriever
from catalog.sounds import Pronouncer, sound_similarity
from catalog.terms import STOPWORDS, analyze, fold, normalize_term
from sphere.follow import Clip

__all__ = ["ClipChooser", "clip_title"]

NAME_MATCH_MIN = 0.5  # share of the query's words that must be in an unknown clip's name
SOUNDS_LIKE_MIN = 0.75  # phoneme similarity of the best-sounding clip
SOUNDS_LIKE_MARGIN = 0.1  # ... and how much closer it must sound than the next clip
_WORD = re.compile(r"[a-z]+")
# Words many titles share ("One Year", "Real-time", "to Today"): they say nothing about which
# clip, and "play the CO2 one" must not pick "Shipping Routes - One Year" for its "one".
_GENERIC = frozenset(
    {
        "one",
        "ones",
        "real",
        "time",
        "model",
        "year",
        "years",
        "today",
        "labels",
        "present",
        "colorized",
        "enhanced",
        "colors",
        "movie",
        "still",
        "daily",
        "monthly",
        "hourly",
        "only",
        "version",
    }
)
_GENERIC_TERMS = frozenset(normalize_term(w) for w in _GENERIC)  # as analyze() writes them


def clip_title(clip: Clip) -> str:
    """What to call the clip: its catalog title, else its name made readable."""
    return clip.entry.title if clip.entry else clip.name.replace("_", " ")


def _words(text: str) -> list[str]:
    """The words of ``text`` that could name a clip (not function words, not the words that
    many titles share, not numbers), a plural "s" dropped: "vericanes" and "Hurricane"
    differ in their first sound, not also in their last."""
    return [
        w[:-1] if len(w) > 3 and w.endswith("s") and not w.endswith("ss") else w
        for w in _WORD.findall(fold(text))
        if len(w) >= 3 and w not in STOPWORDS and w not in _GENERIC
    ]


def _spans(words: list[str]) -> list[str]:
    """Each word and each pair of neighbours ("dark ticker" may sound like one title word)."""
    return words + [f"{a} {b}" for a, b in itertools.pairwise(words)]


class ClipChooser:
    """Scores the clips of a playlist against a query; shared by sessions."""

    def __init__(
        self,
        retriever: Retriever | None = None,
        *,
        sounds_like: bool = True,
        pronouncer: Pronouncer | None = None,
    ) -> None:
        self.retriever = retriever
        # "Strong", not "weak": a command plays something at once, and a weak match ("show
        # me Neptune" -> Pluto, "sharks" -> the humpback whale) is not what was asked for.
        # On the tuning part of bench/sphere_commands.py, weak played a clip for 29 of 64
        # spoken commands for things not in the playlist, strong for 6, with 5 of 453 right
        # plays lost.
        self._retrieval_floor = retriever.thresholds.strong if retriever is not None else 1.0
        self.pronouncer = (pronouncer or Pronouncer()) if sounds_like else None

    def best(self, query: str, clips: Sequence[Clip]) -> Clip | None:
        """The clip ``query`` means, or None when no clip is a good enough match.

        Blocking for a few milliseconds the first time a word is heard (espeak-ng)."""
        words = set(analyze(query)) - _GENERIC_TERMS
        if not words:
            return None
        scores = self.retriever.scores(query) if self.retriever is not None else None
        best: tuple[float, Clip] | None = None
        for clip in clips:
            title = f"{clip.name.replace('_', ' ')} {clip_title(clip)}"
            named = set(analyze(title)) - _GENERIC_TERMS
            share = len(words & named) / len(words)
            score = share if share >= NAME_MATCH_MIN else 0.0
            if scores is not None and clip.entry is not None and self.retriever is not None:
                retrieved = self.retriever.score_of(scores, clip.entry)
                if retrieved >= self._retrieval_floor:
                    score = max(score, retrieved)
            if score > 0 and (best is None or score > best[0]):
                best = (score, clip)
        if best is not None:
            return best[1]
        return self._sounds_like(query, clips)

    def sound_scores(self, query: str, clips: Sequence[Clip]) -> list[float]:
        """Per clip, 0..1: how well its title's words account for every heard word, by sound.
        Each heard word counts once, at its best match (alone or with a neighbour), so one
        look-alike word among several unexplained ones does not pick a clip."""
        heard = _words(query)
        if self.pronouncer is None or not heard:
            return [0.0] * len(clips)
        pairs = [f"{a} {b}" for a, b in itertools.pairwise(heard)]
        said = self.pronouncer.phonemes(heard + pairs)
        alone, paired = said[: len(heard)], said[len(heard) :]
        out = []
        for clip in clips:
            sounds = self.pronouncer.phonemes(_spans(_words(f"{clip.name} {clip_title(clip)}")))

            def closest(phonemes: str, sounds: list[str] = sounds) -> float:
                return max((sound_similarity(phonemes, s) for s in sounds), default=0.0)

            pair_best = [closest(p) for p in paired]
            best = [
                max(
                    closest(alone[i]),
                    pair_best[i - 1] if i > 0 else 0.0,
                    pair_best[i] if i < len(pair_best) else 0.0,
                )
                for i in range(len(heard))
            ]
            out.append(sum(best) / len(best))
        return out

    def _sounds_like(self, query: str, clips: Sequence[Clip]) -> Clip | None:
        scores = self.sound_scores(query, clips)
        if not scores:
            return None
        ranked = sorted(range(len(clips)), key=lambda i: scores[i], reverse=True)
        top = scores[ranked[0]]
        runner_up = scores[ranked[1]] if len(ranked) > 1 else 0.0
        if top >= SOUNDS_LIKE_MIN and top - runner_up >= SOUNDS_LIKE_MARGIN:
            return clips[ranked[0]]
        return None
