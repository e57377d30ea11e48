"""voice.audio on real signals: resampling, framing, WAV files in and out, device errors.

Sound cards are not assumed: the device tests check what a machine without one must do
(clear errors naming `sos-voice --list-devices`), and skip where hardware happens to exist.
The microphone and speaker paths through a real (virtual) device are in test_microphone.py.
"""

from __future__ import annotations

import asyncio
import math
import struct
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest

from tests.speech import espeak_wav, read_pcm16, speech_bounds_ms, write_pcm16
from voice.audio.devices import AudioDeviceError, list_devices, resolve_device
from voice.audio.format import SAMPLE_RATE, AudioFormat
from voice.audio.framing import Framer
from voice.audio.microphone import MicrophoneSource
from voice.audio.resample import Resampler, resample_pcm16, to_pcm16_mono
from voice.audio.speaker import SpeakerSink
from voice.audio.wav import WavSink, WavSource, read_wav

QUESTION = "What causes a tsunami?"


def tone(freq: float, rate: int, seconds: float = 1.0, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def as_float(pcm: bytes) -> np.ndarray:
    return np.frombuffer(pcm, dtype="<i2").astype(np.float64) / 32768.0


def peak_hz(x: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1.0 / rate)[spectrum.argmax()])


def rms_db(x: np.ndarray) -> float:
    return 20.0 * math.log10(max(float(np.sqrt(np.mean(x**2))), 1e-12))


# --------------------------------------------------------------------------- resampling
@pytest.mark.parametrize("rate", [44100, 48000, 22050, 8000])
@pytest.mark.parametrize("freq", [440.0, 1000.0, 3000.0])
def test_resampling_keeps_frequency_amplitude_and_duration(rate: int, freq: float) -> None:
    out = as_float(to_pcm16_mono(tone(freq, rate), rate))
    assert len(out) == SAMPLE_RATE  # one second in, one second out
    middle = out[1000:-1000]  # away from the edges, where the signal starts from silence
    assert abs(peak_hz(middle, SAMPLE_RATE) - freq) <= 1.5
    assert abs(np.sqrt(2 * np.mean(middle**2)) - 0.5) < 0.01  # pass band: amplitude kept


@pytest.mark.parametrize("rate", [44100, 48000])
@pytest.mark.parametrize("freq", [9000.0, 12000.0, 20000.0])
def test_downsampling_does_not_alias(rate: int, freq: float) -> None:
    # Without a low-pass filter, 9 kHz would fold to 7 kHz, 12 kHz to 4 kHz, 20 kHz to 4 kHz.
    out = as_float(to_pcm16_mono(tone(freq, rate), rate))
    assert rms_db(out[1000:-1000]) < rms_db(tone(freq, rate)) - 60


def test_stereo_is_mixed_to_mono() -> None:
    left, right = tone(500, 48000, amp=0.4), tone(1500, 48000, amp=0.4)
    out = as_float(to_pcm16_mono(np.stack([left, right], axis=1), 48000))[1000:-1000]
    spectrum = np.abs(np.fft.rfft(out))
    freqs = np.fft.rfftfreq(len(out), 1.0 / SAMPLE_RATE)
    top_two = sorted(freqs[np.argsort(spectrum)[-2:]])
    assert top_two == pytest.approx([500.0, 1500.0], abs=1.5)
    # Opposite channels cancel: the mix is an average, not one channel.
    cancelled = to_pcm16_mono(np.stack([left, -left], axis=1), 48000)
    assert np.abs(as_float(cancelled)).max() < 1e-3


def test_int16_and_float_inputs_agree() -> None:
    x = tone(1000, 44100)
    as_int16 = np.round(x * 32767).astype(np.int16)
    a = np.frombuffer(to_pcm16_mono(x, 44100), dtype="<i2").astype(int)
    b = np.frombuffer(to_pcm16_mono(as_int16, 44100), dtype="<i2").astype(int)
    assert np.abs(a - b).max() <= 2
    # At the internal rate nothing is resampled: int16 passes through bit-exact.
    assert to_pcm16_mono(as_int16, SAMPLE_RATE) == as_int16.astype("<i2").tobytes()


def test_streaming_resampler_equals_one_shot() -> None:
    """A microphone delivers odd-sized blocks; the result must not depend on them."""
    rng = np.random.default_rng(7)
    x = tone(700, 44100, 1.3).astype(np.float64) + 0.05 * rng.standard_normal(int(44100 * 1.3))
    one = Resampler(44100, SAMPLE_RATE)
    whole = np.concatenate([one.process(x), one.flush()])
    streamed = Resampler(44100, SAMPLE_RATE)
    parts, i = [], 0
    while i < len(x):
        n = int(rng.integers(1, 2000))
        parts.append(streamed.process(x[i : i + n]))
        i += n
    parts.append(streamed.flush())
    assert np.allclose(np.concatenate(parts), whole, atol=1e-9)


def test_resample_pcm16_round_trip_on_speech(tmp_path: Path) -> None:
    pcm, rate = read_pcm16(espeak_wav(QUESTION, tmp_path / "q.wav"))
    back = resample_pcm16(resample_pcm16(pcm, rate, 48000), 48000, rate)
    assert len(back) == len(pcm)
    a, b = as_float(pcm), as_float(back)
    snr = 10 * math.log10(np.sum(a**2) / np.sum((a - b) ** 2))
    assert snr > 20  # only what is above the pass band (7.4 kHz at 16 kHz) is lost
    assert resample_pcm16(pcm, rate, rate) == pcm
    with pytest.raises(ValueError, match="even number of bytes"):
        resample_pcm16(b"\x00\x01\x02", 16000, 8000)


def test_bad_sample_shapes_and_types_are_errors() -> None:
    with pytest.raises(ValueError, match="shape"):
        to_pcm16_mono(np.zeros((2, 2, 2), dtype=np.float32), 16000)
    with pytest.raises(ValueError, match="unsupported sample type"):
        to_pcm16_mono(np.zeros(10, dtype=np.complex64), 16000)


# --------------------------------------------------------------------------- framing
@pytest.mark.parametrize(("frame_ms", "size"), [(10, 320), (20, 640), (30, 960)])
def test_framer_cuts_exact_frames_from_odd_chunks(frame_ms: int, size: int) -> None:
    rng = np.random.default_rng(frame_ms)
    data = rng.integers(0, 256, size=10_001, dtype=np.uint8).tobytes()  # odd: half a sample
    framer = Framer(frame_ms)
    frames: list[bytes] = []
    pos = 0
    while pos < len(data):
        n = int(rng.integers(1, 700))  # odd and even sizes, smaller and larger than a frame
        frames += framer.push(data[pos : pos + n])
        pos += n
    assert all(len(f) == size for f in frames)
    assert len(frames) == len(data) // size
    assert b"".join(frames) == data[: len(frames) * size]
    tail = framer.flush()
    assert tail is not None and len(tail) == size
    rest = data[len(frames) * size :]
    assert tail == rest + bytes(size - len(rest))
    assert framer.flush() is None


def test_framer_exact_multiple_has_no_tail() -> None:
    framer = Framer(30)
    assert len(framer.push(bytes(960 * 3))) == 3
    assert framer.flush() is None
    with pytest.raises(ValueError):
        Framer(0)


# --------------------------------------------------------------------------- WAV input
def test_wav_source_converts_22k_stereo_espeak(tmp_path: Path) -> None:
    path = espeak_wav(QUESTION, tmp_path / "q.wav", rate=22050, channels=2, lead_s=0.4)
    with wave.open(str(path)) as w:
        assert (w.getframerate(), w.getnchannels()) == (22050, 2)
        file_seconds = w.getnframes() / 22050
    source = WavSource(path, frame_ms=30)
    assert source.duration_s == pytest.approx(file_seconds, abs=1e-3)

    async def collect() -> list[bytes]:
        return [frame async for frame in source.frames()]

    frames = asyncio.run(collect())
    assert len(frames) == math.ceil(file_seconds * 1000 / 30) == source.frame_count()
    assert all(len(f) == 960 for f in frames)
    # Same speech as sox's own conversion of the file: aligned and nearly identical.
    ref_path = tmp_path / "ref.wav"
    subprocess.run(["sox", str(path), "-r", "16000", "-c", "1", str(ref_path)], check=True)
    ref, _ = read_pcm16(ref_path)
    ours = b"".join(frames)[: len(ref)]
    assert speech_bounds_ms(ours, SAMPLE_RATE) == pytest.approx(
        speech_bounds_ms(ref, SAMPLE_RATE), abs=20
    )
    a, b = as_float(ref), as_float(ours)
    assert np.corrcoef(a, b)[0, 1] > 0.98


@pytest.mark.parametrize(
    "sox_args",
    [["-b", "24"], ["-e", "floating-point", "-b", "32"], ["-b", "8"], ["-b", "32"]],
    ids=["int24", "float32", "uint8", "int32"],
)
def test_wav_source_reads_other_sample_formats(tmp_path: Path, sox_args: list[str]) -> None:
    src = espeak_wav(QUESTION, tmp_path / "q.wav", rate=16000)
    other = tmp_path / "other.wav"
    subprocess.run(["sox", str(src), *sox_args, str(other)], check=True)
    reference = as_float(read_pcm16(src)[0])
    decoded = as_float(WavSource(other).pcm)
    assert len(decoded) == len(reference)
    tolerance = 2 / 128 if sox_args == ["-b", "8"] else 2 / 32768
    assert np.abs(decoded - reference).max() <= tolerance


async def test_wav_source_fast_mode_yields_to_the_loop(tmp_path: Path) -> None:
    source = WavSource(espeak_wav(QUESTION, tmp_path / "q.wav"))
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    loop = asyncio.get_running_loop()
    start = loop.time()
    count = 0
    async for _ in source.frames():
        count += 1
    elapsed = loop.time() - start
    task.cancel()
    assert count == source.frame_count()
    assert elapsed < source.duration_s / 2  # not paced
    assert ticks >= count // 2  # other tasks ran while frames were produced


async def test_wav_source_realtime_never_delivers_a_frame_early(tmp_path: Path) -> None:
    path = espeak_wav("Hi.", tmp_path / "hi.wav", lead_s=0.1, trail_s=0.1)
    source = WavSource(path, frame_ms=20, realtime=True)
    loop = asyncio.get_running_loop()
    start = loop.time()
    arrivals = [loop.time() - start async for _ in source.frames()]
    period = 0.020
    # Frame k is released once a microphone would have captured it: at (k + 1) periods.
    for k, t in enumerate(arrivals):
        assert t >= (k + 1) * period - 0.002
    # Loose upper bound only: a shared CI machine may be slow, but not seconds slow.
    assert arrivals[-1] < len(arrivals) * period + 1.0


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"this is not audio at all", "not a WAV file"),
        (b"", "not a WAV file"),
        (b"RIFF\x24\x00\x00\x00WAVEfmt \x10\x00\x00\x00", "fmt chunk too short"),
        (
            b"RIFF\x24\x00\x00\x00WAVEfmt \x10\x00\x00\x00"
            + bytes.fromhex("0100010080bb000000770100020010 00".replace(" ", "")),
            "missing fmt or data chunk",
        ),
    ],
    ids=["text", "empty", "truncated-fmt", "no-data"],
)
def test_bad_wav_files_give_clear_errors(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "broken.wav"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=message) as err:
        WavSource(path)
    assert "broken.wav" in str(err.value)


def wav_with_header(tag: int, channels: int, rate: int, bits: int) -> bytes:
    """A WAV file whose fmt chunk says exactly this, whatever it means, and 0.1 s of data."""
    fmt = struct.pack("<HHIIHH", tag, channels, rate, 0, 0, bits)
    data = bytes(3200)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
    body += b"data" + struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", len(body)) + body


@pytest.mark.parametrize(
    ("tag", "channels", "rate", "bits", "message"),
    [
        (1, 1, 4_000_000_000, 16, "impossible sample rate 4000000000 Hz"),
        (1, 1, 1000, 16, "impossible sample rate 1000 Hz"),
        (1, 1, 400_000, 16, "impossible sample rate 400000 Hz"),
        (1, 0, 16000, 16, "impossible channel count 0"),
        (1, 65535, 16000, 16, "impossible channel count 65535"),
        (1, 1, 16000, 12, "unsupported WAV encoding: integer PCM, 12-bit"),
        (1, 1, 16000, 0, "unsupported sample encoding: integer PCM, 0-bit"),
        (1, 1, 16000, 64, "unsupported sample encoding: integer PCM, 64-bit"),
        (3, 1, 16000, 16, "unsupported sample encoding: float, 16-bit"),
    ],
    ids=[
        "4GHz",
        "1kHz",
        "400kHz",
        "no-channels",
        "65535-channels",
        "12-bit",
        "0-bit",
        "int64",
        "float16",
    ],
)
def test_impossible_wav_formats_are_rejected(
    tmp_path: Path, tag: int, channels: int, rate: int, bits: int, message: str
) -> None:
    """A header no recording has is an error naming the file, before anything is resampled
    (a 4 GHz rate would otherwise build a resampling filter of millions of taps)."""
    path = tmp_path / "absurd.wav"
    path.write_bytes(wav_with_header(tag, channels, rate, bits))
    with pytest.raises(ValueError, match=message) as err:
        read_wav(path)
    assert "absurd.wav" in str(err.value)
    with pytest.raises(ValueError, match=message):
        WavSource(path)


def test_extreme_but_real_wav_rates_are_read(tmp_path: Path) -> None:
    for rate in (8000, 192000):
        path = tmp_path / f"r{rate}.wav"
        path.write_bytes(wav_with_header(1, 2, rate, 16))
        assert read_wav(path).format == AudioFormat(rate, 2, 2)
        assert WavSource(path).pcm == bytes(2 * round(800 * 16000 / rate))


def test_missing_and_unsupported_wav_files(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"nothing\.wav: cannot read"):
        WavSource(tmp_path / "nothing.wav")
    alaw = tmp_path / "alaw.wav"
    src = espeak_wav("Hi.", tmp_path / "hi.wav")
    subprocess.run(["sox", str(src), "-e", "a-law", str(alaw)], check=True)
    with pytest.raises(ValueError, match=r"alaw\.wav: unsupported WAV encoding"):
        read_wav(alaw)


# --------------------------------------------------------------------------- WAV output
async def test_wav_sink_round_trip_with_rate_change(tmp_path: Path) -> None:
    speech, _ = read_pcm16(espeak_wav(QUESTION, tmp_path / "q.wav", rate=22050))
    extra = to_pcm16_mono(tone(440, 16000, 0.5), 16000)
    sink = WavSink(tmp_path / "out.wav")
    await sink.write(speech, 22050)
    await sink.write(extra, 16000)  # a later chunk at another rate is resampled
    sink.stop()  # nothing is queued in a non-realtime sink: nothing is lost
    await sink.drain()
    await sink.aclose()
    pcm, rate = read_pcm16(tmp_path / "out.wav")
    assert rate == 22050
    assert pcm[: len(speech)] == speech
    tail = as_float(pcm[len(speech) :])
    assert len(tail) == round(0.5 * 22050)
    assert abs(peak_hz(tail[500:-500], 22050) - 440) < 2


async def test_wav_sink_realtime_stop_drops_unplayed_audio(tmp_path: Path) -> None:
    speech, _ = read_pcm16(espeak_wav(QUESTION, tmp_path / "q.wav", lead_s=0, trail_s=1.0))
    sink = WavSink(tmp_path / "out.wav", realtime=True)
    await sink.write(speech, 16000)  # ~2.6 s of audio
    await asyncio.sleep(0.3)
    sink.stop()  # barge-in
    await sink.aclose()
    pcm, _ = read_pcm16(tmp_path / "out.wav")
    written = len(pcm) / 2 / 16000
    assert 0.25 <= written < 1.5  # what had "played" by the stop, not the whole answer
    assert pcm == speech[: len(pcm)]
    assert sink.dropped_samples == (len(speech) - len(pcm)) // 2


async def test_wav_sink_realtime_drain_waits_for_playback(tmp_path: Path) -> None:
    sink = WavSink(tmp_path / "out.wav", realtime=True)
    chunk = to_pcm16_mono(tone(300, 16000, 0.4), 16000)
    loop = asyncio.get_running_loop()
    start = loop.time()
    await sink.write(chunk, 16000)
    await sink.drain()
    assert loop.time() - start >= 0.38
    await sink.aclose()
    assert read_pcm16(tmp_path / "out.wav")[0] == chunk


async def test_wav_sink_without_audio_writes_an_empty_wav(tmp_path: Path) -> None:
    sink = WavSink(tmp_path / "empty.wav")
    await sink.aclose()
    assert read_pcm16(tmp_path / "empty.wav") == (b"", SAMPLE_RATE)
    with pytest.raises(RuntimeError, match="closed"):
        await sink.write(b"\x00\x00", 16000)


def test_write_helpers_agree_with_reader(tmp_path: Path) -> None:
    pcm = to_pcm16_mono(tone(200, 16000, 0.1), 16000)
    chunk = read_wav(write_pcm16(tmp_path / "t.wav", pcm, 16000))
    samples = chunk.samples()
    assert chunk.format == AudioFormat(16000, 2, 1) and samples.shape == (1600, 1)
    assert samples[:, 0].astype("<i2").tobytes() == pcm


# --------------------------------------------------------------------------- devices
def _device_count() -> int | None:
    """How many devices PortAudio sees here, or None without PortAudio."""
    try:
        import sounddevice
    except (OSError, ImportError):
        return None
    return len(sounddevice.query_devices())


def test_unknown_device_names_list_devices() -> None:
    # Holds on any machine: with or without sound cards, and without PortAudio.
    for kind in ("input", "output"):
        with pytest.raises(AudioDeviceError, match="sos-voice --list-devices"):
            resolve_device("no-such-device-xyz", kind)  # type: ignore[arg-type]
        with pytest.raises(AudioDeviceError, match="sos-voice --list-devices"):
            resolve_device("9999", kind)  # type: ignore[arg-type]


def test_without_sound_card_errors_are_clear() -> None:
    if _device_count():
        pytest.skip("this machine has audio devices; the no-hardware path cannot be seen here")
    text = list_devices()
    assert "No audio devices" in text and "Traceback" not in text
    for kind in ("input", "output"):
        with pytest.raises(AudioDeviceError, match=f"no audio {kind} device found") as err:
            resolve_device("", kind)  # type: ignore[arg-type]
        assert "sos-voice --list-devices" in str(err.value)
    with pytest.raises(AudioDeviceError, match="sos-voice --list-devices"):
        SpeakerSink()

    async def open_mic() -> None:
        async with MicrophoneSource():
            pass

    with pytest.raises(AudioDeviceError, match="no audio input device found"):
        asyncio.run(open_mic())


def test_without_portaudio_errors_are_clear(tmp_path: Path) -> None:
    """The kiosk without libportaudio2: sounddevice's import fails the way it really does."""
    script = tmp_path / "no_portaudio.py"
    script.write_text(
        "import sys\n"
        "class NoPortAudio:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'sounddevice':\n"
        "            raise OSError('PortAudio library not found')\n"
        "sys.meta_path.insert(0, NoPortAudio())\n"
        "from voice.audio.devices import AudioDeviceError, list_devices, resolve_device\n"
        "print(list_devices())\n"
        "try:\n"
        "    resolve_device('', 'input')\n"
        "except AudioDeviceError as exc:\n"
        "    print('ERROR:', exc)\n"
    )
    root = Path(__file__).resolve().parents[1]
    result = subprocess.run(
        [sys.executable, str(script)], cwd=root, capture_output=True, text=True, check=True
    )
    assert "PortAudio library is not installed" in result.stdout
    assert "libportaudio2" in result.stdout
    assert "ERROR:" in result.stdout and "sos-voice --list-devices" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


async def test_microphone_frames_need_an_open_stream() -> None:
    with pytest.raises(RuntimeError, match="async with"):
        async for _ in MicrophoneSource().frames():
            pass
