#!/usr/bin/env bash
# Issue 4's GPU figures on the GPU machine, in one call (see bench/gpu_bench.py). Prepare here with
# bench/gpu_wheels.sh, then run there with .whl carried, e.g.
#   run(command="bash bench/gpu_run.sh --images 10000", carry=[".whl"], timeout_s=540)
set -euo pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true
python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__, 'cuda', torch.cuda.is_available())"
python3 bench/gpu_bench.py "$@"
