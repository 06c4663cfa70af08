#!/usr/bin/env bash
# Builds bench/.venv-dj: upstream Data-Juicer (py-data-juicer 1.6.1) for side-by-side benchmarks.
# Everything DJ would otherwise install at run time (with uv) is pre-installed here, so a benchmark
# never measures package installation. torch comes first from the pinned CPU wheel so that no later
# requirement pulls a CUDA build. Idempotent: a stamp file records a finished build of this script.
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3
VENV=.venv-dj
stamp=$VENV/.installed-$(sha1sum "$(basename "$0")" | cut -c1-12)
if [ -f "$stamp" ]; then
  echo "$VENV already built ($stamp)"
  exit 0
fi
[ -x $VENV/bin/python ] || "$PY" -m venv $VENV
$VENV/bin/python -m pip install -q --upgrade pip
$VENV/bin/python -m pip install -q "torch==2.13.0"
# aiohttp: imported by DJ 1.6.1 but missing from its declared dependencies.
# ftfy .. fasttext-predict: OP dependencies DJ would otherwise install lazily at run time.
# ray: DJ 1.6.1 touches its lazy `ray` module during config setup even with the default
# (non-Ray) executor and installs it with uv on first use.
# av 13.1: DJ's vision extra pin; with av 18 its close_video raises and every video sample is dropped.
$VENV/bin/python -m pip install -q "py-data-juicer==1.6.1" aiohttp \
  ftfy selectolax scipy simhash-pybind fasttext-predict ray "av==13.1.0"
# Image OPs need transformers 4.57 (DJ's pin) and simple-aesthetics-predictor, but transformers
# 4.57 wants huggingface-hub<1 while the datasets 5.x above wants >=1.31. They go to an overlay
# (first on PYTHONPATH for image benchmarks only) with datasets 4.8.5 (DJ needs >=4.7) so that the
# text benchmarks keep the environment above. --no-deps: torch stays the pinned CPU wheel.
$VENV/bin/python -m pip install -q --no-deps --target $VENV/vision-overlay "transformers==4.57.1" \
  "huggingface_hub==0.36.2" "datasets==4.8.5" "tokenizers==0.22.2" "safetensors==0.8.0" \
  "simple-aesthetics-predictor==0.1.2"
$VENV/bin/dj-process --help >/dev/null
touch "$stamp"
echo "$VENV built"
