#!/usr/bin/env bash
# Every CPU benchmark recorded in BENCHMARKS.md, one after another (so none disturbs another's
# timings). Several hours on 2 cores (the full removal grid dominates). Results land in
# benchmarks/results/. BEFORE=/path/to/old/checkout adds the before/after command timings.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1
mkdir -p benchmarks/results
python benchmarks/throughput.py 2>&1 | tee benchmarks/results/throughput.txt
python benchmarks/data_path.py --out benchmarks/results/data_path.json 2>&1 | tee benchmarks/results/data_path.txt
python benchmarks/data_path.py --memory-budget 1M --workloads wide,images --out benchmarks/results/data_path_mapped.json 2>&1 | tee benchmarks/results/data_path_mapped.txt
if [ -n "${BEFORE:-}" ]; then python benchmarks/commands.py --before "$BEFORE" 2>&1 | tee benchmarks/results/commands.txt; fi
iau bench benchmarks/bench_removal.yaml --out bench-out/removal --json bench-out/removal.json --markdown benchmarks/results/bench_removal.md --plot benchmarks/results/bench_removal.png -q
iau bench benchmarks/bench_lenet.yaml --out bench-out/lenet --json bench-out/lenet.json --markdown benchmarks/results/bench_lenet.md --plot benchmarks/results/bench_lenet.png -q
python benchmarks/scaling.py 2>&1 | tee benchmarks/results/scaling.txt
python benchmarks/audit_cost.py 2>&1 | tee benchmarks/results/audit.txt
