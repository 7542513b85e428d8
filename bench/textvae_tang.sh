#!/usr/bin/env bash
# textvae-tang: train the sentence VAE on single Tang-poem lines on the CPU (15-minute budget),
# then ship it to weights/textvae-tang: weights + tokenizer, principal directions, measured
# diagnostics (metrics.json) and samples.txt. The model card (README.md) is written by hand from
# the printed figures.
#
#   bash bench/textvae_tang.sh [train|ship|all]      # env: PYTHON (default .venv/bin/python)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
RUN=${RUN:-runs/cpu/textvae-tang}
OUT=${OUT:-weights/textvae-tang}
MIN=${MINUTES:-15}
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
what=${1:-all}

if [ "$what" = train ] || [ "$what" = all ]; then
  $PY -m aigc train --model text-vae --data tang-lines --out "$RUN" --batch-size 128 --lr 2e-3 --warmup 100 \
      --max-minutes "$MIN" --eval-every 500 --log-every 50 --sample-every 500 \
      --ckpt-every 500 --seed 0 --set kl_anneal_steps=${KL_ANNEAL:-400} --no-progress
fi

if [ "$what" = ship ] || [ "$what" = all ]; then
  mkdir -p "$OUT"
  cp "$RUN/model/config.json" "$RUN/model/model.safetensors" "$RUN/model/tokenizer.json" "$OUT/"
  echo '{}' > "$OUT/metrics.json"
  rm -f "$OUT/directions.safetensors" "$OUT/directions.json"
  # principal directions of the posterior means of 10,000 training lines (seeded choice)
  $PY -m aigc directions "$OUT" --n 10000
  # diagnostics on 5,000 held-out lines -> metrics.json
  $PY -m aigc eval "$OUT" --n 5000 --seed 0 --json --save
  {
    echo "# textvae-tang samples (greedy decodes unless marked; made by bench/textvae_tang.sh ship)"
    echo
    echo "## python -m aigc sample textvae-tang --n 16 --seed 0 --temperature 0   (z ~ N(0, I), greedy)"
    $PY -m aigc sample "$OUT" --n 16 --seed 0 --temperature 0
    echo
    echo "## python -m aigc sample textvae-tang --n 16 --seed 0   (z ~ N(0, I), characters sampled at temperature 1)"
    $PY -m aigc sample "$OUT" --n 16 --seed 0
    for pair in "床前明月光 低头思故乡" "白日依山尽 黄河入海流" "两个黄鹂鸣翠柳 一行白鹭上青天" "春眠不觉晓 处处闻啼鸟" "国破山河在 城春草木深" "孤帆远影碧空尽 唯见长江天际流"; do
      set -- $pair
      echo
      echo "## python -m aigc sample textvae-tang --interpolate $1 $2 --steps 8"
      $PY -m aigc sample "$OUT" --interpolate "$1" "$2" --steps 8
    done
  } > "$OUT/samples.txt"
  cat "$OUT/samples.txt"
fi
