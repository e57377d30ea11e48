"""Was that a visitor talking over the answer, or the kiosk hearing itself? The words decide.

An open-speaker kiosk cancels its answer when the end-pointer hears speech while it talks
(barge-in). The echo canceller removes most of its own voice, but not all of it: a reverberant
hall outlasts AEC3's short filter, and the first second of double talk leaks. What leaks is
speech-shaped, so the end-pointer cannot tell it from a visitor; the answer's words can.
With a speaker that can pause (:class:`voice.audio.speaker.PausableSink`), the session pauses
the answer at the speech start (the visitor hears it stop at once, as before), transcribes the
interrupting turn, and only then decides (:func:`judge`):

* ``visitor``: words that are not the kiosk's own: the answer is cancelled and the turn is
  answered, as an immediate barge-in would have done.
* ``nothing``: no words Whisper accepts in a short stretch of sound (residual echo, a cough,
  a hum): the answer resumes where it paused. A longer stretch without words is a visitor
  Whisper could not make out (over the echo it mishears most of them, bench/echo.py): the
  answer is cancelled, as before, and the session asks them to say it again.
* ``echo``: the words are the answer's own (Whisper heard the leak): the answer resumes.
* ``backchannel``: only a listener's acknowledgements ("mm-hmm", "oh, wow", "okay", "yeah"):
  the visitor is listening, not taking the turn; the answer resumes.

This is LiveKit Agents' "false interruption" (pause on speech, resume when no words follow),
with the echo test added because at a kiosk the commonest false interruption is the kiosk's
own voice, and Whisper transcribes that leak as the answer's words. Sessions whose audio goes
to a client (the WebSocket) cancel at once, as the Realtime protocol expects: the client, not
the session, plays that audio.

Why rapidfuzz's ``partial_ratio``: the leak is a stretch of what was said, misheard a little
("hurricanes form over warm water" heard as "hurricane's form over one water"); the best
alignment of the heard words inside the answer's text scores that stretch and nothing else. A
visitor's question scores low even when it shares a word with the answer ("what causes a
tsunami" against "a tsunami is a series of ocean waves": the words around the shared one
differ). The cost, accepted: a visitor who only repeats a few of the answer's words at the
moment it says them ("hurricanes?") is taken for the echo; they are heard when they go on.
"""

from __future__ import annotations

import re
from typing import Literal

from rapidfuzz import fuzz

from catalog.terms import fold

Verdict = Literal["visitor", "nothing", "echo", "backchannel"]

_BACKCHANNEL_WORDS = """
    mm mmm hmm hm mhm huh uh um umm oh ah aha wow whoa ok okay yeah yep yes cool nice right
    sure alright great interesting neat
"""
BACKCHANNEL = frozenset(_BACKCHANNEL_WORDS.split())
"""Words a listener says to show they follow ("uh-huh", "oh wow", "okay, cool"): a turn of
these alone does not take the turn from the answer. "Stop", "wait", "no" are not among them."""
MAX_BACKCHANNEL_WORDS = 3

MAX_WORDLESS_MS = 800
"""Speech (from the end-pointer's start to its last voiced frame) up to this long with no
words Whisper accepts is not a visitor taking the turn; longer is one it could not hear."""

ECHO_SIMILARITY = 85.0
"""``partial_ratio`` (0-100) of the heard words inside the answer's words at which the heard
words are the answer's own. Whisper's misreadings of a leak stay above it (a few letters in a
few words); a visitor's own question with one of the answer's words stays well under it."""

_WORD = re.compile(r"[a-z0-9']+")


def words(text: str) -> str:
    """Lower-case words only, accents folded, single spaces: what both sides are compared as."""
    return " ".join(_WORD.findall(fold(text).lower()))


def judge(heard: str, said: str, speech_ms: int = 0) -> Verdict:
    """What the turn that interrupted an answer was: ``heard`` is its transcript ("" when
    Whisper accepted nothing), ``said`` what the answer has spoken so far, ``speech_ms`` how
    long the end-pointer heard speech in it."""
    heard_words = words(heard)
    if not heard_words:
        return "nothing" if speech_ms <= MAX_WORDLESS_MS else "visitor"
    heard_list = heard_words.split()
    if len(heard_list) <= MAX_BACKCHANNEL_WORDS and all(w in BACKCHANNEL for w in heard_list):
        return "backchannel"
    said_words = words(said)
    # Spaces around both: the heard words align with whole words ("sea" is not in "research").
    similarity = fuzz.partial_ratio(f" {heard_words} ", f" {said_words} ")
    if said_words and similarity >= ECHO_SIMILARITY:
        return "echo"
    return "visitor"
