#!/usr/bin/env bash
# GPU check: on one NVIDIA GPU, train dcgan-mnist to its FID target and the English char model to
# its loss target, in parallel, then print time-to-target, throughput, model-FLOPs utilisation and
# peak memory (bench/gpu_report.py). Budget: under 8 minutes on one H200. Works with torch 2.11+.
#
#   bash bench/gpu_train.sh [RUNS_DIR]        # env: PYTHON (default python3), MINUTES (default 3)
#
# Both runs keep training to their budget after the target is reached (the first time the target
# is met is what is reported), so their results can be shipped as models.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
RUNS=${1:-runs/gpu}
MIN=${MINUTES:-3}
DEV=${DEVICE:-cuda}          # DEVICE=cpu SMOKE=1 EVAL_N=200 runs the same script as a quick CPU check
N=${EVAL_N:-10000}
SMOKE_ARGS=${SMOKE:+--tiny --max-steps 6}
FID=${SMOKE:+domain_fd}; FID=${FID:-fid}   # the smoke run cannot afford Inception on a CPU
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
mkdir -p "$RUNS"
# the real-image Inception statistics are computed once, before the clocks start
[ -n "${SMOKE:-}" ] || $PY -c "from aigc.eval.realstats import real_stats; real_stats('mnist', device='$DEV')"
$PY -m aigc train --model dcgan --data mnist --out "$RUNS/dcgan-mnist" --device "$DEV" --epochs 40 \
    --max-minutes "$MIN" --eval-every ${EVAL_EVERY:-2345} --eval-metric $FID --eval-n "$N" --target 5 $SMOKE_ARGS \
    --log-every 100 --sample-every 2345 --ckpt-every 5000 --no-progress > "$RUNS/dcgan-mnist.log" 2>&1 &
P1=$!
$PY -m aigc train --model char-lm --data shakespeare --out "$RUNS/char-shakespeare" --device "$DEV" \
    --set preset=gpu --batch-size 128 --lr 2e-3 --warmup 200 --max-steps 5000 --max-minutes "$MIN" \
    --eval-every ${TEXT_EVAL_EVERY:-250} $SMOKE_ARGS \
    --eval-metric nats_per_char --target 1.45 --log-every 50 --sample-every 1000 --ckpt-every 5000 \
    --no-progress > "$RUNS/char-shakespeare.log" 2>&1 &
P2=$!
rc=0
wait $P1 || { echo "dcgan-mnist run failed:"; tail -20 "$RUNS/dcgan-mnist.log"; rc=1; }
wait $P2 || { echo "char-shakespeare run failed:"; tail -20 "$RUNS/char-shakespeare.log"; rc=1; }
$PY bench/gpu_report.py "$RUNS/dcgan-mnist" "$RUNS/char-shakespeare"
exit $rc
