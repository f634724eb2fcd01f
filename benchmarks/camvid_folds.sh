#!/usr/bin/env bash
# Cross-validation by drive on CamVid's train split (three drives: 0001TP, 0006R0, 0016E5): one
# SegNeXt-T from scratch a fold (camvid/segnext_t_camvid_cpu_60min for MINUTES of this machine), each
# scored on the drive it did not train on, then `segnext pool` scores all 367 frames as one split.
#
#   benchmarks/camvid_folds.sh [MINUTES] [key=value ...]
#
# CamVid comes from $CAMVID (the layout of `segnext data prepare camvid`), copied into $WORK (default
# /tmp/segnext-camvid-folds), where `segnext data split --folds 3` writes its splits; the runs go to
# $WORK/runs, the pooled results to $WORK/pooled.json (and a copy to benchmarks/results/ when $KEEP is
# set). Extra key=value arguments override the config of every fold.
set -euo pipefail
cd "$(dirname "$0")/.."
MINUTES=${1:-6}
shift || true
CAMVID=${CAMVID:?set CAMVID to a CamVid folder (segnext data prepare camvid)}
WORK=${WORK:-/tmp/segnext-camvid-folds}
mkdir -p "$WORK"
[ -d "$WORK/camvid" ] || cp -r "$CAMVID" "$WORK/camvid"
[ -d "$WORK/camvid/images/train_fit_fold1" ] || segnext data split camvid "$WORK/camvid" --folds 3
for fold in 1 2 3; do
  # the test at the image's own size, no flip: the 367 frames are scored in minutes, not an hour
  segnext train camvid/segnext_t_camvid_cpu_60min data.root="$WORK/camvid" \
    data.train_split=train_fit_fold$fold data.val_split=train_heldout_fold$fold \
    train.max_time_minutes="$MINUTES" train.eval_interval=0 "evaluation.scales=[1.0]" evaluation.flip=false "$@" \
    --work-dir "$WORK/runs/fold$fold" --no-progress > "$WORK/fold$fold.log" 2>&1
  echo "fold $fold: $(grep -E '^\[iter [0-9]+\] val mIoU' "$WORK/fold$fold.log" | tail -n 1)"
done
segnext pool "$WORK/runs/fold1" "$WORK/runs/fold2" "$WORK/runs/fold3" --out "$WORK/pooled.json"
if [ -n "${KEEP:-}" ]; then cp "$WORK/pooled.json" benchmarks/results/camvid_folds_pooled.json; fi
