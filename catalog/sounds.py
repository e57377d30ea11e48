"""How words sound, so that a word Whisper misheard can still find the catalog word it was.

Whisper hears rare names as common words that sound like them: "hurricanes" as "vericanes",
"Saturn" as "Satan", "loggerhead" as "lager head". Spelling similarity misses many of these
(the letters differ where the sounds agree), so words are compared by their phonemes: the
IPA that espeak-ng gives (the same phonemizer Piper speaks with, so it is installed wherever
the kiosk talks; the Dockerfile and ``make setup`` install it), stress marks and vowel length
removed, by normalized Levenshtein distance (rapidfuzz).

Why a short-lived ``espeak-ng`` process and not Piper's in-process bridge: the bridge keeps
its voice in C globals that the synthesizer's threads use while they speak; a process per
batch of words costs about 15 ms and shares nothing. Pronunciations are cached, so a
playlist's words cost one call. Without espeak-ng on the PATH (a pip-only install) the
spelling stands in for the sound, and that is logged once.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import threading
from collections.abc import Sequence

from rapidfuzz.distance import Levenshtein

log = logging.getLogger(__name__)

__all__ = ["Pronouncer", "sound_similarity"]

# Marks that say how, not what, is pronounced; and symbols espeak uses for one sound in two
# spellings ("ᵻ" is its reduced "ɪ", "ɾ" the American flap of "t"/"d", "ɚ" an r-coloured "ə").
_DROP = str.maketrans("", "", "ˈˌː ‿-")
_SAME = {"ᵻ": "ɪ", "ɾ": "t", "ɚ": "əɹ", "ɝ": "ɜɹ", "ɐ": "ə", "ɫ": "l", "ʔ": ""}
_MAX_CACHE = 20_000


def _canonical(ipa: str) -> str:
    ipa = ipa.translate(_DROP)
    for symbol, same in _SAME.items():
        ipa = ipa.replace(symbol, same)
    return ipa


class Pronouncer:
    """Words -> canonical phoneme strings (espeak-ng IPA), cached; thread-safe."""

    def __init__(self, voice: str = "en-us", executable: str | None = None) -> None:
        self.voice = voice
        self.executable = executable if executable is not None else shutil.which("espeak-ng")
        if self.executable is None:
            log.warning("espeak-ng is not installed: sounds-like matching compares spellings")
        self._cache: dict[str, str] = {}
        self._lock = threading.Lock()

    def phonemes(self, words: Sequence[str]) -> list[str]:
        """The canonical phonemes of each word (or short phrase), in order."""
        wanted = [w.strip().lower() for w in words]
        with self._lock:
            missing = sorted({w for w in wanted if w and w not in self._cache})
        if missing:
            said = self._espeak(missing)
            with self._lock:
                if len(self._cache) + len(said) > _MAX_CACHE:
                    self._cache.clear()
                self._cache.update(said)
        with self._lock:
            return [self._cache.get(w, w) if w else "" for w in wanted]

    def _espeak(self, words: list[str]) -> dict[str, str]:
        """One espeak-ng call for all ``words``: one sentence per line in, one IPA line out."""
        if self.executable is None:
            return {w: w for w in words}
        clean = [" ".join(w.replace(".", " ").split()) for w in words]
        try:
            done = subprocess.run(
                [self.executable, "-q", "--ipa", "-v", self.voice],
                input="".join(f"{w}.\n" for w in clean),
                capture_output=True,
                text=True,
                timeout=10,
                check=True,
            )
        except (OSError, subprocess.SubprocessError) as exc:
            log.warning("espeak-ng failed (%s): comparing spellings for %d words", exc, len(words))
            return {w: w for w in words}
        lines = [line for line in done.stdout.splitlines() if line.strip()]
        if len(lines) != len(words):  # a word espeak split or joined: say each on its own
            if len(words) == 1:
                return {words[0]: _canonical("".join(lines)) or words[0]}
            out: dict[str, str] = {}
            for w in words:
                out.update(self._espeak([w]))
            return out
        return {w: _canonical(line) for w, line in zip(words, lines, strict=True)}


def sound_similarity(a: str, b: str) -> float:
    """0..1: how alike two canonical phoneme strings are (1 - normalized edit distance)."""
    if not a or not b:
        return 0.0
    return float(Levenshtein.normalized_similarity(a, b))
