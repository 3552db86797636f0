#!/usr/bin/env bash
# GPU timings: train, unlearn and a small bench for LeNet-5 and the small ResNet-18 on one CUDA
# device, plus the CUDA tests. Prints each step's wall time and the card's name.
#   bash benchmarks/gpu.sh [OUT_DIR]
set -euo pipefail
OUT=${1:-bench-out/gpu}
mkdir -p "$OUT"
export HF_HUB_OFFLINE=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name(0))"

cat > "$OUT/resnet.yaml" <<'YAML'
data:
  train: builtin:digits
  scale: 0.0625
  shape: [1, 8, 8]
  resize: [32, 32]
  mean: 0.5
  std: 0.5
model:
  name: resnet18
  args: {width: 16}
train:
  epochs: 30
  gr_alpha: 0.005
YAML
python3 - "$OUT" <<'PY'
import random, sys
import pyarrow.parquet as pq
from iau_cli.io.data import BUILTIN_DATASETS
ids = pq.read_table(BUILTIN_DATASETS["digits"]["train"], columns=["id"]).column("id").to_pylist()
open(f"{sys.argv[1]}/forget.txt", "w").write("\n".join(random.Random(0).sample(ids, 72)) + "\n")
PY

timed() {
  local label=$1; shift
  local start=$EPOCHREALTIME
  "$@" > /dev/null
  awk -v a="$start" -v b="$EPOCHREALTIME" -v l="$label" 'BEGIN { printf "%-28s %8.2f s\n", l, b - a }'
}

for model in lenet resnet; do
  config=sample_configs/digits_lenet.yaml
  [ "$model" = resnet ] && config="$OUT/resnet.yaml"
  rm -f "$OUT/$model"*.safetensors
  timed "$model train (cuda)" iau train "$config" --out "$OUT/$model.safetensors" --device cuda -q
  timed "$model unlearn iau (cuda)" iau unlearn "$OUT/$model.safetensors" -f "$OUT/forget.txt" -o "$OUT/$model.u.safetensors" --device cuda -q
  timed "$model retrain (cuda)" iau unlearn "$OUT/$model.safetensors" -f "$OUT/forget.txt" -m retrain -o "$OUT/$model.r.safetensors" --device cuda -q
  timed "$model audit (cuda)" iau audit "$OUT/$model.u.safetensors" -f "$OUT/forget.txt" --reference "$OUT/$model.r.safetensors" --device cuda -q || true
done
iau unlearn "$OUT/lenet.safetensors" -f "$OUT/forget.txt" -o "$OUT/lenet.json.safetensors" --device cuda --json - -q --overwrite | python3 -c "import json,sys; d=json.load(sys.stdin); print('lenet unlearn time split (s):', {k: round(v, 3) for k, v in d['seconds'].items()})"
timed "bench lenet 1 seed (cuda)" iau bench benchmarks/bench_lenet.yaml --seeds 1 --ratios 0.05 --out "$OUT/bench" --device cuda --markdown "$OUT/bench.md" -q \
  --methods "original (no unlearning),retrain,iau,iau adam-sign,finetune,gradient-ascent,influence cg,fisher"
cat "$OUT/bench.md"
python3 -m pytest -m gpu -q tests/test_gpu.py
