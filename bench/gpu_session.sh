#!/usr/bin/env bash
# One prepared GPU session (run through the device tool): the issue-6 check (bench/gpu_train.sh),
# then training and evaluating the other shipped image models, then the throughput bench.
# Outputs go to $OUT (at most 8 files back): tarballs of the run folders (weights, stats, grids;
# no optimiser state), the evaluation JSONs and the logs. Every phase packs what it has, so a
# failure or a timeout late in the session still returns the earlier phases' results.
#
# Staging: the Inception TorchScript (87 MB) and the datasets do not fit in one transfer; earlier
# calls copy them into $STAGE (inc.* parts, data/), which this script reassembles and checks.
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/aigc_out}; mkdir -p "$OUT"
STAGE=${STAGE:-/tmp/aigc_stage}
PY=${PYTHON:-python3}
DEV=${DEVICE:-cuda}          # DEVICE=cpu SMOKE=1 EVAL_N=200 STAGE=... : a quick CPU rehearsal
N=${EVAL_N:-10000}
SMOKE_ARGS=${SMOKE:+--tiny --max-steps 6}
FID=${SMOKE:+domain_fd}; FID=${FID:-fid}; KID=${SMOKE:+domain_fd}; KID=${KID:-kid}
RUNS=runs/gpu
LOG=$OUT/session.log
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 AIGC_CACHE=${AIGC_CACHE:-/tmp/aigc_cache} OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
exec > >(tee -a "$LOG") 2>&1
t0=$(date +%s); stamp() { echo "[$(( $(date +%s) - t0 ))s] $*"; }

stamp "setup"
if [ -z "${SMOKE:-}" ]; then
  cat "$STAGE"/inc.* > /tmp/default_1.pt
  echo "$(cat bench/inception.sha256)  /tmp/default_1.pt" | sha256sum -c - || { echo "inception file corrupt"; exit 3; }
  export AIGC_INCEPTION=/tmp/default_1.pt
fi
mkdir -p data; cp -rn "$STAGE"/data/* data/ ; ls -la data data/* | head -30
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true
$PY -c "import torch, scipy, safetensors; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
[ -n "${SMOKE:-}" ] || $PY -c "from aigc.eval.realstats import real_stats as r; r('mnist', device='$DEV'); r('fashion-mnist', device='$DEV')" || exit 4

pack() { # name, paths...
  local name=$1; shift
  tar czf "$OUT/$name.tgz" --exclude=state.pt "$@" 2>/dev/null
  ls -la "$OUT/$name.tgz"
}

stamp "phase 1: bench/gpu_train.sh (dcgan-mnist to FID<=5, char model to 1.45 nats/char)"
MINUTES=${MINUTES:-2.5} bash bench/gpu_train.sh $RUNS > "$OUT/gpu_train.txt" 2>&1
echo "gpu_train.sh exit $?"; cat "$OUT/gpu_train.txt" | tail -5
pack p1 $RUNS/dcgan-mnist $RUNS/dcgan-mnist.log $RUNS/char-shakespeare/stats.jsonl $RUNS/char-shakespeare/summary.json \
     $RUNS/char-shakespeare/options.json $RUNS/char-shakespeare/samples $RUNS/char-shakespeare.log

stamp "phase 1b: training-step throughput on the otherwise idle GPU"
$PY bench/train_throughput.py --device "$DEV" --steps ${TP_STEPS:-50} > "$RUNS/throughput_gpu.json" 2>&1; cat "$RUNS/throughput_gpu.json"
$PY bench/train_throughput.py --device "$DEV" --steps ${TP_STEPS:-30} --batch-size 1024 >> "$RUNS/throughput_gpu.json" 2>&1; tail -3 "$RUNS/throughput_gpu.json"
cp "$RUNS/throughput_gpu.json" "$OUT/" 2>/dev/null

stamp "phase 2: the other shipped image models, in parallel on the one GPU"
M2=${MINUTES2:-2.5}
tr() { # name kind data extra...
  local name=$1 kind=$2 data=$3; shift 3
  $PY -m aigc train --model "$kind" --data "$data" --out "$RUNS/$name" --device "$DEV" --max-minutes "$M2" $SMOKE_ARGS \
      --log-every 100 --sample-every 2000 --ckpt-every 10000 --no-progress "$@" > "$RUNS/$name.log" 2>&1 \
      || { echo "$name failed"; tail -5 "$RUNS/$name.log"; }
}
# (explicit pids: a bare `wait` would also wait for the tee process substitution above, forever)
pids=()
tr dcgan-fashion dcgan fashion-mnist --epochs 40 --eval-every 4690 --eval-metric $FID --eval-n $N --target 15 & pids+=($!)
tr vae-mnist vae mnist --epochs 80 & pids+=($!)
tr vae-fashion vae fashion-mnist --epochs 80 & pids+=($!)
tr seed-gan-mnist seed-gan mnist --epochs 100 & pids+=($!)
tr seed-gan-fashion seed-gan fashion-mnist --epochs 100 & pids+=($!)
wait "${pids[@]}"
pack p2 $RUNS/dcgan-fashion $RUNS/vae-mnist $RUNS/vae-fashion $RUNS/seed-gan-mnist $RUNS/seed-gan-fashion $RUNS/*.log
split -b 15m -d "$OUT/p2.tgz" "$OUT/p2.tgz." && rm "$OUT/p2.tgz"; ls -la $OUT

stamp "phase 3: evaluation (python -m aigc eval, the commands in the model cards)"
ev() { # name metrics
  $PY -m aigc eval "$RUNS/$1" --metrics "$2" --n $N --device "$DEV" --json > "$RUNS/eval-$1.json" 2> "$RUNS/eval-$1.err" \
      || { echo "eval $1 failed"; tail -3 "$RUNS/eval-$1.err"; }
}
pids=()
ev dcgan-mnist $FID,$KID,domain_fd,label_acc & pids+=($!)
ev dcgan-fashion $FID,$KID,domain_fd,label_acc & pids+=($!)
ev seed-gan-mnist $FID,$KID,domain_fd & pids+=($!)
ev seed-gan-fashion $FID,$KID,domain_fd & pids+=($!)
wait "${pids[@]}"
pids=()
ev vae-mnist $FID,$KID,domain_fd,nll & pids+=($!)
ev vae-fashion $FID,$KID,domain_fd,nll & pids+=($!)
wait "${pids[@]}"
cat $RUNS/eval-*.json

stamp "phase 4: the text model's held-out score, the report"
$PY -m aigc eval "$RUNS/char-shakespeare" --heldout --device "$DEV" --json > "$RUNS/eval-char-shakespeare.json" 2>&1; cat "$RUNS/eval-char-shakespeare.json"
$PY bench/gpu_report.py $RUNS/dcgan-mnist $RUNS/char-shakespeare $RUNS/dcgan-fashion $RUNS/vae-mnist $RUNS/vae-fashion $RUNS/seed-gan-mnist $RUNS/seed-gan-fashion > "$RUNS/report.jsonl"; cat "$RUNS/report.jsonl"
pack results $RUNS/eval-*.json $RUNS/eval-*.err $RUNS/throughput_gpu.json $RUNS/report.jsonl $RUNS/*/summary.json $RUNS/*/stats.jsonl
stamp "done"
