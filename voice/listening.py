"""The kiosk's microphone into a Session without the kiosk hearing itself.

An open speaker a metre from the microphone: the assistant's own answer reaches the
microphone, and with barge-in on, the session would take it for a visitor and cancel its own
answer. :class:`KioskListener` puts the echo canceller between the microphone and the session
and decides, from what the canceller measures, whether the session may listen while it talks
(full duplex, barge-in) or must ignore the microphone then (half duplex):

- ``webrtc``: cancel, and listen while talking once the echo is shown removed (or the
  microphone turns out not to hear the speaker); half duplex until then, and again whenever
  the canceller loses it. Every switch is logged, with the numbers.
- ``off``: no cancelling, so half duplex whenever a speaker plays.
- ``headset``: the microphone cannot hear the speaker; nothing to do.

``[pipeline] half_duplex = true`` always wins (the operator said so). The canceller keeps
processing the microphone in half duplex too: it must hear its echo to learn it.
"""

from __future__ import annotations

import logging

from voice.audio.echo import EchoCanceller, EchoReference
from voice.audio.noise import NoiseSuppressor
from voice.audio.webrtc_apm import AudioProcessingUnavailable
from voice.pipeline import Session

log = logging.getLogger(__name__)


class KioskListener:
    """Feeds microphone frames (16 kHz PCM16) to ``session``, cancelling the speaker's echo.

    Build it with :meth:`create`, which also makes the :class:`EchoReference` the speaker must
    be given. ``speaker`` says whether answers play on a loudspeaker at all (a WAV file or no
    output cannot echo).
    """

    def __init__(
        self,
        session: Session,
        mode: str,
        canceller: EchoCanceller | None,
        *,
        forced_half_duplex: bool = False,
        suppressor: NoiseSuppressor | None = None,
    ) -> None:
        self.session = session
        self.mode = mode
        self.canceller = canceller
        self.suppressor = suppressor  # noise suppression where no canceller does it
        self._forced = forced_half_duplex
        self._listening_while_talking: bool | None = None
        if canceller is not None:
            self._set(False, "until the echo canceller has shown it removes the kiosk's voice")
        elif mode == "headset":
            self._set(True, "the microphone cannot hear a loudspeaker")
        else:
            self._set(False, "echo cancellation is off")

    @staticmethod
    def reference_for(mode: str, *, speaker: bool) -> EchoReference | None:
        """The reference the speaker must fill, when this mode cancels echo on a speaker."""
        return EchoReference() if mode == "webrtc" and speaker else None

    @classmethod
    def create(
        cls,
        session: Session,
        mode: str,
        reference: EchoReference | None,
        *,
        speaker: bool,
        delay_ms: int = 0,
        noise_suppression: bool = False,
    ) -> KioskListener:
        """The listener for ``mode``, with the ``reference`` :meth:`reference_for` gave the
        speaker. Answers that do not play on a loudspeaker (``speaker`` false) cannot echo.

        Without WebRTC's library the kiosk still runs, in half duplex, and says why.
        """
        forced = session.settings.half_duplex
        if speaker and mode == "webrtc" and reference is not None:
            try:
                canceller = EchoCanceller(
                    reference, delay_ms=delay_ms, noise_suppression=noise_suppression
                )
                return cls(session, mode, canceller, forced_half_duplex=forced)
            except AudioProcessingUnavailable as exc:
                log.warning("%s", exc)
                mode = "off"
        suppressor = None
        if noise_suppression:
            try:
                suppressor = NoiseSuppressor()
            except AudioProcessingUnavailable as exc:
                log.warning("no noise suppression: %s", exc)
        # No canceller: nothing to hear (headset, no speaker), or a loudspeaker: half duplex.
        mode = "headset" if not speaker or mode == "headset" else "off"
        return cls(session, mode, None, forced_half_duplex=forced, suppressor=suppressor)

    @property
    def listening_while_talking(self) -> bool:
        """Whether a visitor can interrupt an answer right now (full duplex)."""
        return bool(self._listening_while_talking)

    def feed(self, frame: bytes, captured_at: float | None = None) -> None:
        """One microphone frame, echo removed, to the session (which ignores it while
        answering in half duplex). ``captured_at``: see :meth:`EchoCanceller.process`."""
        if self.suppressor is not None:
            frame = self.suppressor.process(frame)
        if self.canceller is not None:
            frame = self.canceller.process(frame, captured_at)
            converged = self.canceller.converged
            if converged != self._listening_while_talking:
                health = self.canceller.health
                why = (
                    f"echo level {health.echo_db:.0f} dB over the room, "
                    f"{health.erle_db:.0f} dB of it removed"
                )
                self._set(converged, why)
        if frame:
            self.session.feed_audio(frame)

    def _set(self, full_duplex: bool, why: str) -> None:
        full_duplex = full_duplex and not self._forced
        if full_duplex == self._listening_while_talking:
            return
        self._listening_while_talking = full_duplex
        self.session.update(half_duplex=not full_duplex)
        if self._forced:
            log.info("listening only while not speaking ([pipeline] half_duplex = true)")
        elif full_duplex:
            log.info("listening while speaking: a visitor can interrupt (%s)", why)
        else:
            log.info("listening only while not speaking (half duplex): %s", why)
