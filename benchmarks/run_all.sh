#!/usr/bin/env bash
# Every CPU benchmark recorded in BENCHMARKS.md, one after another (so none disturbs another's
# timings). About 40 minutes on 2 cores. Results land in benchmarks/results/.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1
mkdir -p benchmarks/results
python benchmarks/throughput.py 2>&1 | tee benchmarks/results/throughput.txt
iau bench benchmarks/choose_rule.yaml --out bench-out/choose-rule --markdown benchmarks/results/choose_rule.md -q
iau bench --out bench-out/mlp --json bench-out/mlp.json --markdown benchmarks/results/bench_mlp.md --plot benchmarks/results/bench_mlp.png -q
iau bench benchmarks/bench_lenet.yaml --out bench-out/lenet --json bench-out/lenet.json --markdown benchmarks/results/bench_lenet.md --plot benchmarks/results/bench_lenet.png -q
python benchmarks/scaling.py 2>&1 | tee benchmarks/results/scaling.txt
python benchmarks/audit_cost.py 2>&1 | tee benchmarks/results/audit.txt
