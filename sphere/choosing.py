"""Which clip of the open playlist a spoken "show me ..." means.

Two readings of the query, the larger score wins: the share of its words in a clip's name or
title (a clip the catalog does not know has only this), and retrieval's score of the clip's
catalog entry (so "show me the northern lights" finds "Aurora"). Kept apart from
:mod:`sphere.control` (which acts on the host within the operator's policy) so the choice can
be measured on its own: ``bench/sphere_commands.py``.
"""

from __future__ import annotations

from collections.abc import Sequence

from catalog.retrieval import Retriever
from catalog.terms import analyze
from sphere.follow import Clip

__all__ = ["ClipChooser", "clip_title"]

NAME_MATCH_MIN = 0.5  # share of the query's words that must be in an unknown clip's name


def clip_title(clip: Clip) -> str:
    """What to call the clip: its catalog title, else its name made readable."""
    return clip.entry.title if clip.entry else clip.name.replace("_", " ")


class ClipChooser:
    """Scores the clips of a playlist against a query; stateless, shared by sessions."""

    def __init__(self, retriever: Retriever | None = None) -> None:
        self.retriever = retriever

    def best(self, query: str, clips: Sequence[Clip]) -> Clip | None:
        """The clip ``query`` means, or None when no clip is a good enough match."""
        words = set(analyze(query))
        if not words:
            return None
        scores = self.retriever.scores(query) if self.retriever is not None else None
        best: tuple[float, Clip] | None = None
        for clip in clips:
            named = set(analyze(f"{clip.name.replace('_', ' ')} {clip_title(clip)}"))
            share = len(words & named) / len(words)
            score = share if share >= NAME_MATCH_MIN else 0.0
            if scores is not None and clip.entry is not None and self.retriever is not None:
                retrieved = self.retriever.score_of(scores, clip.entry)
                if retrieved >= self.retriever.thresholds.weak:
                    score = max(score, retrieved)
            if score > 0 and (best is None or score > best[0]):
                best = (score, clip)
        return best[1] if best else None
