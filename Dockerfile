# sos-voice server image. CPU by default: the offline default models (catalog answerer,
# Whisper tiny.en, the Piper voice) come inside pip packages, so nothing is downloaded at run
# time. CUDA variant: see deploy/README.md ("Docker") for the build arguments.
#
#   docker build -t sos-voice .
#   docker run --rm -p 8765:8765 -e SOS_VOICE__SERVER__TOKEN=change-me sos-voice
ARG BASE=python:3.11-slim-bookworm
FROM ${BASE}

# TORCH: a torch requirement for the GPU build ("" = none: the CPU set needs no torch).
# EXTRAS: project extras, e.g. "gpu" or "gpu,openai".
ARG TORCH=""
ARG EXTRAS=""

ENV DEBIAN_FRONTEND=noninteractive PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# espeak-ng: Piper's phonemes; libportaudio2: sounddevice imports it; curl: the health check.
# A CUDA base image brings no Python 3.11: take it from apt there.
RUN apt-get update \
 && apt-get install -y --no-install-recommends espeak-ng libportaudio2 curl ca-certificates \
    $(command -v python3.11 >/dev/null 2>&1 || echo python3.11 python3.11-venv) \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --create-home --uid 10001 sos

WORKDIR /opt/sos-voice
RUN python3.11 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

# The project is installed editable, as `make setup` does: it serves web/ and reads
# config/default.toml from its own tree, so the tree is copied first.
COPY pyproject.toml README.md ./
COPY settings settings
COPY catalog catalog
COPY llm llm
COPY voice voice
COPY curator curator
COPY sphere sphere
COPY server server
COPY cli cli
COPY training training
COPY config config
COPY web web
RUN pip install --upgrade pip setuptools \
 && if [ -n "$TORCH" ]; then pip install $TORCH; fi \
 && pip install -e ".${EXTRAS:+[$EXTRAS]}" \
 && sos-voice --version

USER sos
EXPOSE 8765
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s \
  CMD curl -fsS http://127.0.0.1:8765/healthz >/dev/null || exit 1
# A token is required to listen beyond loopback: set SOS_VOICE__SERVER__TOKEN at `docker run`.
CMD ["sos-voice", "--serve", "--host", "0.0.0.0", "--port", "8765"]
