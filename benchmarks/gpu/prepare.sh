#!/usr/bin/env bash
# Run on the CPU machine before a device call: puts what the GPU machine lacks into ignored folders of
# the checkout, to be named in the call's `carry`:
#   .whl/          wheels of MMSegmentation 1.2.2 on mmcv-lite (pure Python) for the side-by-side timing
#   .device-data/  CamVid (from $CAMVID, in the layout of `segnext data prepare camvid`, else
#                  $SEGNEXT_SHARED/datasets/camvid) for the loader timing and camvid_gpu.sh
# Then: device run, carry [".whl", ".device-data"], command "bash benchmarks/gpu/device_check.sh"
# (or "bash benchmarks/gpu/camvid_gpu.sh heldout").
set -euo pipefail
cd "$(dirname "$0")/../.."
for path in /.whl/ /.device-data/; do
  grep -qxF "$path" .git/info/exclude 2>/dev/null || echo "$path" >> .git/info/exclude
done
mkdir -p .whl .device-data
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 -d .whl \
  mmcv-lite==2.1.0 mmengine==0.10.7 mmsegmentation==1.2.2 addict yapf termcolor ftfy wcwidth prettytable \
  platformdirs
CAMVID=${CAMVID:-${SEGNEXT_SHARED:-$(dirname "$PWD")/shared}/datasets/camvid}
if [ -d "$CAMVID" ]; then
  rm -rf .device-data/camvid && cp -r "$CAMVID" .device-data/camvid
else
  echo "no CamVid at $CAMVID: set CAMVID=DIR for the loader timing and camvid_gpu.sh"
fi
du -sh .whl .device-data
# The device scripts, tried whole on the CPU first: minutes of the GPU are not spent on a renamed option.
python3 -m pytest -q -p no:cacheprovider -m slow tests/benchmarks
