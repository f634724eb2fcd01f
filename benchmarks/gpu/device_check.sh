#!/usr/bin/env bash
# The GPU check in one device call (about 7 minutes on one H200), results in $OUT:
#   1. the `cuda` tests, then the whole default suite in parallel (pytest-xdist, 8 workers of 2 threads:
#      workers of 16 threads each would oversubscribe the 16 cores), on the GPU machine;
#   2. benchmarks/gpu/bench_gpu.py: segnext vs MMSegmentation 1.2.2 on the GPU (latency, throughput,
#      training steps, the CamVid loader; a profile of the T training step), JSON in $OUT/gpu_bench.json;
#   3. torch.compile against eager, if time is left (gpu_compile.json).
# Prepare with benchmarks/gpu/prepare.sh and carry [".whl", ".device-data"]. Record what it prints in
# BENCHMARKS.md (the GPU table) and set segnext/devices.py's table from it.
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp/segnext-device}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH=src
if compgen -G ".whl/*.whl" > /dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=src:/tmp/site
fi
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())" | tee "$OUT/device.txt"
timeout 150 python3 -m pytest -q -rs -m cuda -p no:cacheprovider tests 2>&1 | tee "$OUT/cuda_tests.txt"
OMP_NUM_THREADS=2 timeout 180 python3 -m pytest -q -n 8 -p no:cacheprovider --durations=10 tests 2>&1 | tail -60 | tee "$OUT/suite.txt"
timeout 220 python3 benchmarks/gpu/bench_gpu.py --profile --out "$OUT/gpu_bench.json" 2>&1 | tee "$OUT/gpu_bench.txt"
# 3. With the time left of 8 minutes: torch.compile against eager (T's training step and batched
#    forward), the candidate for fusing the elementwise chains; compiling takes minutes, so last.
left=$((470 - SECONDS))
if [ "$left" -gt 120 ]; then
  timeout "$left" python3 benchmarks/gpu/bench_gpu.py --compile-only --out "$OUT/gpu_compile.json" 2>&1 \
    | tee "$OUT/gpu_compile.txt"
else
  echo "torch.compile comparison skipped: $left s left of the 8 minutes" | tee "$OUT/gpu_compile.txt"
fi
