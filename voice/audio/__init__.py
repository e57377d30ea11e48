"""Audio in and out: everything downstream speaks 16 kHz mono PCM16, and only this package
knows about other rates, channel counts, sample encodings, WAV files and sound cards.

One module per concern, imported by their own paths (nothing is re-exported here, so a reader
sees where each name lives): ``format`` (the one format, the one PCM16 <-> float converter),
``framing`` (fixed-size frames), ``resample``, ``wav`` (files in and out), ``devices`` (finding
a sound card), ``microphone`` and ``speaker``.
"""
