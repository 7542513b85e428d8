#!/bin/bash
# A quick screen of dcgan-mnist recipes on this CPU: each variant trains for MINUTES (default 8) of
# wall clock on ONE thread at batch 64 (its cosine learning-rate schedule follows the clock), then
# its final EMA generator is measured on 10,000 samples with the domain metrics (domain FD, label
# accuracy, within-class diversity; seconds each). One line per variant is appended to runs/screen/results.txt:
#   NAME STEPS EPOCHS DOMAIN_FD LABEL_ACC DIVERSITY
# Usage: bash bench/dcgan_recipe_screen.sh [MINUTES] [NAME ...]   (default: every variant, in turn)
# STEPS=N in the environment trains for N steps instead (MINUTES is then ignored): a budget that other
# load on the machine cannot shrink (8 minutes of a quiet core were 710 steps for v7-dense).
# Two variants may run at once on the two cores (start a second copy with other names); the
# figures in bench/README.md came from runs of 8 minutes, mostly one at a time.
set -euo pipefail
cd "$(dirname "$0")/.."
MINUTES=${1:-8}
shift || true
# v0-v5 use the discriminator head that was the default when they ran ("sum"); v7/v8 the "dense"
# head that is the default since (aigc/models/gan.py). v9-v18 ran with STEPS=710 (v7's step count);
# v13-v18 change one thing of v12 (mode seeking 0.2, the default since) each.
# v10's recorded figure predates class grouping: its minibatch-std groups mixed classes; a
# conditional D now groups one class (objectives.group_by_class), as v11 (groups of 2) ran.
declare -A FLAGS=(
  [v0-sum]="--set d_head=sum"
  [v1-sum-noaug]="--set d_head=sum --no-diffaug"
  [v2-sum-ns-noaug]="--set d_head=sum --no-diffaug --gan-loss ns --adam-beta1 0.5"
  [v4-sum-ns-noaug-r1]="--set d_head=sum --no-diffaug --gan-loss ns --adam-beta1 0.5 --r1 1"
  [v5-sum-ns-noaug-noise]="--set d_head=sum --no-diffaug --gan-loss ns --adam-beta1 0.5 --instance-noise 0.1"
  [v7-dense]="--set d_head=dense"
  [v8-dense-ns-noaug-r1]="--set d_head=dense --no-diffaug --gan-loss ns --adam-beta1 0.5 --r1 1"
  [v9-dense-ms]="--set d_head=dense --mode-seeking 1"
  [v10-dense-mbstd]="--set d_head=dense --set d_mbstd=4"
  [v11-dense-pairs]="--set d_head=dense --set d_mbstd=2"
  [v12-dense-ms0.2]="--set d_head=dense --mode-seeking 0.2"
  [v13-ms0.2-trans]="--set d_head=dense --mode-seeking 0.2 --diffaug-policy translation"
  [v14-ms0.2-trans-color]="--set d_head=dense --mode-seeking 0.2 --diffaug-policy color,translation"
  [v15-ms0.1]="--set d_head=dense --mode-seeking 0.1"
  [v16-ms0.2-lr4e-4]="--set d_head=dense --mode-seeking 0.2 --lr 4e-4"
  [v17-ms0.2-ttur]="--set d_head=dense --mode-seeking 0.2 --lr 1e-4 --lr-d 4e-4"
  [v18-ms0.2-ngf64]="--set d_head=dense --mode-seeking 0.2 --set ngf=64"
)
NAMES=("$@")
[ ${#NAMES[@]} -eq 0 ] && NAMES=(v0-sum v1-sum-noaug v2-sum-ns-noaug v4-sum-ns-noaug-r1 v5-sum-ns-noaug-noise v7-dense v8-dense-ns-noaug-r1)
PY=${PY:-.venv/bin/python}
mkdir -p runs/screen
if [ -n "${STEPS:-}" ]; then BUDGET="--max-steps $STEPS"; else BUDGET="--max-steps 100000 --max-minutes $MINUTES"; fi
for name in "${NAMES[@]}"; do
  out=runs/screen/$name
  rm -rf "$out"
  # shellcheck disable=SC2086
  OMP_NUM_THREADS=1 PYTHONPATH=. $PY -m aigc train --model dcgan --data mnist --out "$out" --batch-size 64 \
    $BUDGET --precision fp32 --no-progress --log-every 100 \
    --sample-every 100000 --ckpt-every 100000 ${FLAGS[$name]} > "$out.log" 2>&1
  OMP_NUM_THREADS=1 PYTHONPATH=. $PY -m aigc eval "$out/model" --metrics domain_fd,label_acc,diversity --n 10000 --json > "$out.json"
  $PY - "$name" "$out" >> runs/screen/results.txt <<'EOF'
import json, sys
name, out = sys.argv[1], sys.argv[2]
last = json.loads(open(f"{out}/stats.jsonl").read().splitlines()[-1])
ev = json.load(open(f"{out}.json"))
print(name, last["step"], last["epoch"], round(ev["domain_fd"], 1), ev["label_acc"], round(ev["diversity"], 3))
EOF
  tail -1 runs/screen/results.txt
done
