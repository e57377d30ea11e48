"""The microphone and speaker paths through a real, virtual sound device.

There is no sound card here, so the test makes one: a private PulseAudio server with a null
sink. Whatever is played into the sink comes out of its monitor source, and PortAudio reaches
that server through ALSA's ``pulse`` plugin (apt libasound2-plugins, which the pulseaudio
package pulls in). So MicrophoneSource records what ``paplay`` plays, and ``parec`` records
what SpeakerSink plays: the whole sounddevice/PortAudio/ALSA path runs, with real espeak-ng
speech, and only the air between speaker and microphone is missing.

The server is started by the test itself (private socket, runtime dir and home, no pid file),
so it neither needs nor disturbs a desktop's PulseAudio, and it is stopped afterwards. Without
pulseaudio or PortAudio on the machine, these tests skip and say why.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from tests.speech import espeak_wav, read_pcm16, speech_bounds_ms
from voice.audio.devices import AudioDeviceError, list_devices, resolve_device
from voice.audio.microphone import MicrophoneSource
from voice.audio.speaker import SpeakerSink
from voice.config import VadConfig
from voice.events import SpeechStarted, SpeechStopped
from voice.vad import Endpointer

SINK = "sos_test_sink"
QUESTION = "What causes a tsunami?"
LONG_QUESTION = "How big is the ozone hole over Antarctica today?"
BYTES_PER_MS = 32


@dataclass(frozen=True)
class VirtualAudio:
    """A running private PulseAudio server and how to reach it."""

    env: dict[str, str]  # for pulseaudio-utils subprocesses
    device: str  # the PortAudio device (ALSA "pulse" plugin) that reaches it
    server_pid: int


def _portaudio() -> ModuleType:
    try:
        import sounddevice
    except (OSError, ImportError) as exc:
        pytest.skip(f"PortAudio/sounddevice not available: {exc}")
    return sounddevice


def _rescan(sd: ModuleType) -> None:
    """Make PortAudio enumerate devices again (it lists them once, at initialization).

    sounddevice documents ``_terminate``/``_initialize`` for exactly this; no stream is open
    at these points.
    """
    sd._terminate()
    sd._initialize()


@pytest.fixture(scope="module")
def virtual_audio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VirtualAudio]:
    names = ("pulseaudio", "pactl", "pacat", "paplay", "parec")
    tools = {name: shutil.which(name) for name in names}
    missing = [name for name, path in tools.items() if path is None]
    if missing:
        pytest.skip(f"PulseAudio not installed (missing {', '.join(missing)}; apt pulseaudio)")
    sd = _portaudio()
    home = tmp_path_factory.mktemp("pulse")
    runtime = home / "run"
    runtime.mkdir(mode=0o700)
    socket = home / "native"
    env = {
        **os.environ,
        "HOME": str(home),
        "XDG_RUNTIME_DIR": str(runtime),
        "XDG_CONFIG_HOME": str(home / "config"),
        "PULSE_STATE_PATH": str(home / "state"),
        "PULSE_RUNTIME_PATH": str(runtime),
        "PULSE_SERVER": f"unix:{socket}",
    }
    log_path = home / "pulseaudio.log"
    log_file = log_path.open("w")
    server = subprocess.Popen(
        [
            str(tools["pulseaudio"]),
            "--daemonize=no",
            "-n",  # no default.pa: only the modules below
            "--exit-idle-time=-1",
            "--disallow-exit",
            "--use-pid-file=no",
            "--realtime=no",
            "--high-priority=no",
            "--log-target=stderr",
            "-L",
            f"module-native-protocol-unix socket={socket} auth-anonymous=1",
            "-L",
            f"module-null-sink sink_name={SINK} rate=48000",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log_file,  # a file, not a pipe: nobody reads a pipe while the tests run
    )
    log_file.close()
    feeder: subprocess.Popen[bytes] | None = None
    try:
        deadline = time.monotonic() + 15
        while True:
            ready = subprocess.run(
                [str(tools["pactl"]), "info"], env=env, capture_output=True, check=False
            )
            if ready.returncode == 0:
                break
            if server.poll() is not None or time.monotonic() > deadline:
                log = log_path.read_text(errors="replace").strip()[-500:]
                pytest.skip(f"could not start a private PulseAudio server: {log}")
            time.sleep(0.1)
        subprocess.run(
            [str(tools["pactl"]), "set-default-source", f"{SINK}.monitor"], env=env, check=True
        )
        # A null sink renders only while something plays into it; a real microphone never
        # stops delivering. Endless silence keeps the monitor source running like one.
        feeder = subprocess.Popen(
            [
                *(str(tools["pacat"]), "--playback", f"--device={SINK}", "--raw"),
                *("--format=s16le", "--rate=48000", "--channels=1", "/dev/zero"),
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(0.2)
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("PULSE_SERVER", env["PULSE_SERVER"])  # read by ALSA's pulse plugin
            _rescan(sd)
            try:
                names = [d["name"] for d in sd.query_devices()]
                if "pulse" not in names:
                    pytest.skip(
                        f"PortAudio does not see the PulseAudio server (devices: {names}); "
                        "ALSA's pulse plugin comes with apt libasound2-plugins"
                    )
                yield VirtualAudio(env=env, device="pulse", server_pid=server.pid)
            finally:
                mp.delenv("PULSE_SERVER")
                _rescan(sd)
    finally:
        for proc in (feeder, server):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=5)


def aligned_correlation(reference: bytes, recorded: bytes) -> float:
    """Peak normalized cross-correlation: ~1.0 when `recorded` holds `reference` undistorted.

    A wrong sample rate, dropped blocks or clipping anywhere in the chain pull it far down.
    """
    a = np.frombuffer(reference, dtype="<i2").astype(np.float64)
    b = np.frombuffer(recorded, dtype="<i2").astype(np.float64)
    n = len(a) + len(b)
    size = 1 << (n - 1).bit_length()
    xcorr = np.fft.irfft(np.fft.rfft(b, size) * np.conj(np.fft.rfft(a, size)), size)
    lag = int(np.argmax(xcorr[: len(b)]))
    segment = b[lag : lag + len(a)]
    a = a[: len(segment)]
    return float(np.dot(a, segment) / (np.linalg.norm(a) * np.linalg.norm(segment) + 1e-9))


async def _play(audio: VirtualAudio, wav: Path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        "paplay", f"--device={SINK}", str(wav), env=audio.env
    )


class Recorder:
    """``parec`` on the sink's monitor: what a microphone in front of the speaker would hear."""

    def __init__(self, audio: VirtualAudio, path: Path) -> None:
        self._audio, self._path = audio, path
        self._proc: asyncio.subprocess.Process | None = None

    async def __aenter__(self) -> Recorder:
        out = self._path.open("wb")
        self._proc = await asyncio.create_subprocess_exec(
            "parec",
            f"--device={SINK}.monitor",
            "--rate=16000",
            "--channels=1",
            "--format=s16le",
            "--raw",
            "--latency-msec=20",
            stdout=out,
            env=self._audio.env,
        )
        out.close()
        await asyncio.sleep(0.3)  # parec is connected and recording
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._proc is not None
        await asyncio.sleep(0.3)
        self._proc.terminate()
        await self._proc.wait()

    def pcm(self) -> bytes:
        data = self._path.read_bytes()
        return data[: len(data) // 2 * 2]


def run_vad(pcm: bytes) -> list[SpeechStarted | SpeechStopped]:
    endpointer = Endpointer(VadConfig(), 30)
    events: list[SpeechStarted | SpeechStopped] = []
    for i in range(0, len(pcm) - 960 + 1, 960):
        events += endpointer.process(pcm[i : i + 960])
    return events + endpointer.flush()


async def _take(frames: AsyncIterator[bytes], seconds: float) -> list[bytes]:
    """Frames for `seconds` of wall-clock time."""
    out: list[bytes] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while loop.time() < deadline:
        try:
            out.append(await asyncio.wait_for(anext(frames), deadline - loop.time()))
        except TimeoutError:
            break
    return out


async def test_microphone_hears_speech_played_into_the_virtual_device(
    virtual_audio: VirtualAudio, tmp_path: Path
) -> None:
    wav = espeak_wav(QUESTION, tmp_path / "q.wav", lead_s=0.3, trail_s=1.0)
    source_pcm, _ = read_pcm16(wav)
    speech_start, speech_end = speech_bounds_ms(source_pcm, 16000)
    async with MicrophoneSource(virtual_audio.device, frame_ms=30) as mic:
        assert mic.sample_rate and mic.sample_rate != 16000  # the resampling path runs
        frames = mic.frames()
        player = await _play(virtual_audio, wav)
        captured = await _take(frames, len(source_pcm) / 32000 + 1.0)
        await frames.aclose()
        assert await player.wait() == 0
        assert mic.dropped_frames == 0
    assert all(len(f) == 960 for f in captured)
    pcm = b"".join(captured)
    events = run_vad(pcm)
    assert [type(e).__name__ for e in events] == ["SpeechStarted", "SpeechStopped"]
    stopped = events[1]
    assert isinstance(stopped, SpeechStopped)
    turn_start, turn_end = speech_bounds_ms(stopped.audio, 16000)
    assert abs((turn_end - turn_start) - (speech_end - speech_start)) <= 150
    # The recording is the played speech, sample for sample (through 48 kHz, 44.1 kHz, 16 kHz).
    assert aligned_correlation(source_pcm[speech_start * BYTES_PER_MS :], pcm) > 0.9


async def test_speaker_plays_speech_and_drain_waits_for_it(
    virtual_audio: VirtualAudio, tmp_path: Path
) -> None:
    voice22 = espeak_wav(QUESTION, tmp_path / "q22.wav", lead_s=0.0, trail_s=0.2, rate=22050)
    voice16 = espeak_wav(QUESTION, tmp_path / "q16.wav", lead_s=0.0, trail_s=0.2, rate=16000)
    pcm22, _ = read_pcm16(voice22)
    reference, _ = read_pcm16(voice16)
    seconds = len(pcm22) / 2 / 22050
    sink = SpeakerSink(virtual_audio.device)
    try:
        async with Recorder(virtual_audio, tmp_path / "rec.raw") as recorder:
            loop = asyncio.get_running_loop()
            start = loop.time()
            await sink.write(pcm22, 22050)  # Piper's rate; the device runs at its own
            assert loop.time() - start < 0.2  # write queues, it does not play synchronously
            await sink.drain()
            assert loop.time() - start >= seconds * 0.9
    finally:
        await sink.aclose()
    recorded = recorder.pcm()
    assert [type(e).__name__ for e in run_vad(recorded)] == ["SpeechStarted", "SpeechStopped"]
    assert aligned_correlation(reference, recorded) > 0.9


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait for progress that depends on the audio server keeping time.

    Fixed sleeps would make these tests fail on a loaded machine, where a PulseAudio server
    without real-time priority runs behind the wall clock; waiting for what must happen (with
    a generous limit) keeps the assertions meaningful and the test stable.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, "the virtual audio device made no progress"
        await asyncio.sleep(0.02)


async def test_speaker_stop_silences_at_once(virtual_audio: VirtualAudio, tmp_path: Path) -> None:
    wav = espeak_wav(f"{LONG_QUESTION} {QUESTION}", tmp_path / "l.wav", lead_s=0.0, trail_s=0.0)
    pcm, _ = read_pcm16(wav)
    sink = SpeakerSink(virtual_audio.device)
    try:
        async with Recorder(virtual_audio, tmp_path / "rec.raw") as recorder:
            await sink.write(pcm, 16000)  # ~5 s
            await until(lambda: sink.played_s >= 0.8)
            sink.stop()  # barge-in
            played_at_stop = sink.played_s
            loop = asyncio.get_running_loop()
            start = loop.time()
            await sink.drain()  # nothing left to play: returns at once
            assert loop.time() - start < 0.5
            await asyncio.sleep(1.0)
            assert sink.played_s == played_at_stop  # nothing more went out after the stop
    finally:
        await sink.aclose()

    def loud_seconds(data: bytes) -> float:
        x = np.frombuffer(data, dtype="<i2").astype(np.float64)
        windows = x[: len(x) // 160 * 160].reshape(-1, 160)
        level = 20 * np.log10(np.sqrt(np.mean(windows**2, axis=1)) / 32768 + 1e-9)
        return float(np.sum(level > -45.0)) * 0.01

    assert loud_seconds(pcm) > 3.0
    heard = loud_seconds(recorder.pcm())
    # What was heard is what had been handed to the device when stop() came (its pauses
    # between words are not counted as loud), plus at most one device buffer.
    assert 0.3 < heard <= played_at_stop + 0.15


async def test_microphone_queue_is_bounded_and_counts_drops(virtual_audio: VirtualAudio) -> None:
    async with MicrophoneSource(virtual_audio.device, frame_ms=30, queue_frames=5) as mic:
        await until(lambda: mic.dropped_frames >= 10)  # nobody consumes: 5 fit, the rest drop
        frames = mic.frames()
        backlog = 0
        while True:  # what is already queued comes without waiting for the device
            try:
                await asyncio.wait_for(anext(frames), 0.005)
            except TimeoutError:
                break
            backlog += 1
        assert 1 <= backlog <= 6  # the bound (plus at most one frame that just arrived)
        await frames.aclose()


async def test_closing_the_microphone_ends_its_frames(virtual_audio: VirtualAudio) -> None:
    mic = MicrophoneSource(virtual_audio.device, frame_ms=10)
    await mic.__aenter__()
    count = 0

    async def consume() -> None:
        nonlocal count
        async for _ in mic.frames():
            count += 1

    task = asyncio.create_task(consume())
    await until(lambda: count >= 5)
    await mic.aclose()
    await asyncio.wait_for(task, 2.0)  # ends cleanly, no exception
    assert task.exception() is None


def test_device_selection_by_index_and_name(virtual_audio: VirtualAudio) -> None:
    index = resolve_device("pulse", "input")
    assert isinstance(index, int)
    assert resolve_device("PULSE", "output") == index  # case-insensitive
    assert resolve_device(str(index), "input") == index
    assert resolve_device("", "input") is None  # the system default exists
    with pytest.raises(AudioDeviceError, match="several") as err:
        resolve_device("e", "input")  # "pulse" and "default"
    assert "sos-voice --list-devices" in str(err.value)
    table = list_devices()
    assert "pulse" in table and "* = default input" in table


async def test_a_hung_sound_server_is_a_clear_error(
    virtual_audio: VirtualAudio, tmp_path: Path
) -> None:
    """The sound server freezes (SIGSTOP): no endless wait, an error that says what to do.

    Runs last: it pauses the module's server, and resumes it before closing the streams.
    """
    pcm, _ = read_pcm16(espeak_wav(QUESTION, tmp_path / "q.wav"))
    async with MicrophoneSource(virtual_audio.device, stall_timeout_s=1.0) as mic:
        frames = mic.frames()
        await anext(frames)  # working
        os.kill(virtual_audio.server_pid, signal.SIGSTOP)
        try:
            with pytest.raises(AudioDeviceError, match="delivered no audio") as err:
                while True:  # what was queued still comes out, then nothing
                    await anext(frames)
            assert "sos-voice --list-devices" in str(err.value)
        finally:
            os.kill(virtual_audio.server_pid, signal.SIGCONT)
        await frames.aclose()
    await _until_responsive(virtual_audio)  # a resumed server catches up before the next part
    # A looser stall bound than the microphone's: on a loaded 2-core box a healthy server can
    # fall a second behind, and "working" must not be mistaken for "stalled".
    sink = SpeakerSink(virtual_audio.device, stall_timeout_s=3.0)
    try:
        await sink.write(pcm[: 16000 * 2 // 5], 16000)
        await sink.drain()  # working
        os.kill(virtual_audio.server_pid, signal.SIGSTOP)
        try:
            await sink.write(pcm, 16000)
            with pytest.raises(AudioDeviceError, match="stopped playing"):
                await asyncio.wait_for(sink.drain(), 20.0)
        finally:
            os.kill(virtual_audio.server_pid, signal.SIGCONT)
    finally:
        await sink.aclose()


async def _until_responsive(audio: VirtualAudio, timeout: float = 15.0) -> None:
    """Wait until the sound server answers a request again (``pactl info``)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        probe = await asyncio.create_subprocess_exec(
            "pactl",
            "info",
            env=audio.env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        if await probe.wait() == 0:
            return
        await asyncio.sleep(0.1)
    raise AssertionError("the sound server did not answer after SIGCONT")
