#!/usr/bin/env bash
# Fetches, here, the wheels the GPU machine lacks for bench/gpu_run.sh into .whl/ (git-ignored
# through .git/info/exclude; the device call carries it). That machine's python3 (3.12) has torch,
# numpy, pyarrow, pillow, regex, pyyaml, psutil and transformers 5; the engine needs the packages
# below and transformers < 5 (with the tokenizers and huggingface-hub versions it accepts).
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
rm -rf .whl && mkdir .whl
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl \
    orjson==3.13.0 pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5 \
    ftfy==6.3.1 wcwidth==0.9.4 selectolax==1.0.2 transformers==4.57.6 huggingface-hub==0.36.2 tokenizers==0.22.2
ls -1 .whl
du -sh .whl
