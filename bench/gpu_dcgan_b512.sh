#!/usr/bin/env bash
# A second, short GPU session: dcgan-mnist from scratch at batch 512 (TF32), where the H200's
# per-step launch overhead (~26 ms/step at any batch size, see bench/README.md) is amortised over
# 4x more images than at batch 128; then the standard evaluation. Inception and data are staged
# into $STAGE by earlier calls, as in bench/gpu_session.sh.
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/aigc_out}; mkdir -p "$OUT"
STAGE=${STAGE:-/tmp/aigc_stage}
PY=${PYTHON:-python3}
DEV=${DEVICE:-cuda}
MIN=${MINUTES:-1.6}
RUN=${RUN:-runs/dcgan-mnist-b512}
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 OMP_NUM_THREADS=2 AIGC_CACHE=${AIGC_CACHE:-/tmp/aigc_cache}
if [ -z "${SMOKE:-}" ]; then
  cat "$STAGE"/inc.* > /tmp/default_1.pt
  echo "$(cat bench/inception.sha256)  /tmp/default_1.pt" | sha256sum -c - || exit 3
  export AIGC_INCEPTION=/tmp/default_1.pt
  mkdir -p data; cp -r "$STAGE"/data/* data/
  $PY -c "from aigc.eval.realstats import real_stats as r; r('mnist', device='$DEV')" || exit 4
fi
$PY -m aigc train --model dcgan --data mnist --out "$RUN" --device "$DEV" --batch-size 512 --epochs 40 \
    --max-minutes "$MIN" --log-every 20 --sample-every 500 --ckpt-every 100000 --no-progress ${SMOKE:+--tiny --max-steps 3} \
    > "$OUT/train.log" 2>&1 || { tail -20 "$OUT/train.log"; exit 5; }
tail -2 "$RUN/stats.jsonl"
M=${SMOKE:+domain_fd,label_acc}; M=${M:-fid,kid,domain_fd,label_acc}
$PY -m aigc eval "$RUN" --metrics "$M" --n ${EVAL_N:-10000} --device "$DEV" --json > "$OUT/eval.json" 2> "$OUT/eval.err"
cat "$OUT/eval.json"; tail -3 "$OUT/eval.err"
tar czf "$OUT/run.tgz" --exclude=state.pt "$RUN"
ls -la "$OUT"
