#!/usr/bin/env bash
# CamVid from scratch in 8 minutes of one GPU (camvid/segnext_t_camvid_gpu_8min), in one device call of
# about 10 minutes, results in $OUT:
#
#   benchmarks/gpu/camvid_gpu.sh heldout [key=value ...]   train without drive 0006R0, evaluate on it and
#                                                          on val: for choosing the recipe
#   benchmarks/gpu/camvid_gpu.sh final [key=value ...]     train on train + val (468 images), evaluate on
#                                                          val, write the float16 model folder for shipping
#
# CamVid travels in .device-data/camvid (benchmarks/gpu/prepare.sh puts it there; carry ".device-data"),
# or comes from $CAMVID.
# Extra key=value arguments override the config (the ablation rows). Back in $OUT: train.log, the run's
# results.json and log.jsonl, eval_*.json, and for `final` the model folder segnext_t_camvid/ (config.json,
# model.safetensors in float16, README.md with the command, data, hardware and scores).
set -uo pipefail
cd "$(dirname "$0")/../.."
MODE=${1:?usage: camvid_gpu.sh heldout|final [key=value ...]}
shift
OUT=${OUT:-/tmp/segnext-camvid}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH=src${PYTHONPATH:+:$PYTHONPATH}
DATA=${CAMVID:-.device-data/camvid}
SCRATCH=${SCRATCH:-/tmp}  # the data copy and the run's folder
ROOT=$SCRATCH/camvid
RUN=$SCRATCH/camvid-run
rm -rf "$ROOT" "$RUN"
cp -r "$DATA" "$ROOT" || { echo "no CamVid at $DATA (run benchmarks/gpu/prepare.sh and carry .device-data)"; exit 2; }
segnext() { python3 -m segnext.cli.main "$@"; }
# (a trial on the CPU, with train.device=cpu and a short train.max_time_minutes, names the CPU)
{ nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null || echo "CPU ($(nproc) cores)"; } \
  | tee "$OUT/device.txt"
case "$MODE" in
  heldout)
    segnext data split camvid "$ROOT" --hold-out 0006R0 || exit 1
    SPLITS=(data.train_split=train_fit data.val_split=train_heldout)
    ;;
  final)
    SPLITS=(data.train_split=train+val data.val_split=val)  # all of CamVid's labelled frames
    ;;
  *) echo "MODE must be heldout or final, not $MODE"; exit 2 ;;
esac
START=$(date +%s)
segnext train camvid/segnext_t_camvid_gpu_8min "data.root=$ROOT" "${SPLITS[@]}" "$@" --work-dir "$RUN" \
  --no-progress 2>&1 | tee "$OUT/train.log"
STATUS=${PIPESTATUS[0]}  # the call's exit status: training's, then evaluation's or packaging's
echo "train wall seconds: $(( $(date +%s) - START ))" | tee -a "$OUT/train.log"
cp "$RUN/results.json" "$OUT/results_${MODE}.json" 2>/dev/null
cp "$RUN/log.jsonl" "$OUT/log_${MODE}.jsonl" 2>/dev/null
if [ "$STATUS" != 0 ]; then
  echo "training failed (exit status $STATUS): see $OUT/train.log"
elif [ "$MODE" = heldout ]; then  # the held-out model on val too (frames of drives it trained on)
  segnext eval camvid/segnext_t_camvid_gpu_8min "data.root=$ROOT" "$@" --checkpoint "$RUN/final_model" --split val \
    --out "$OUT/eval_heldout_model_on_val.json" --no-progress || STATUS=$?
else
  HELDOUT=()  # the heldout call's results, once committed under this name, go into the model card
  [ -f benchmarks/results/camvid_gpu_8min_heldout.json ] && HELDOUT=(--heldout benchmarks/results/camvid_gpu_8min_heldout.json)
  python3 benchmarks/package_camvid.py "$RUN" "$OUT/segnext_t_camvid" --command "benchmarks/gpu/camvid_gpu.sh final $*" \
    --device "$(head -1 "$OUT/device.txt")" "${HELDOUT[@]}" || STATUS=$?
fi
ls -la "$OUT"
exit "$STATUS"
