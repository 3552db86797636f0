#!/usr/bin/env bash
# Every figure of BENCHMARKS.md §1 (issue 19), one run after another (2 cores: never in parallel).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f .venv/bin/activate ] && . .venv/bin/activate
R=benchmarks/results; O=bench-out; mkdir -p "$R" "$O"
pe() {  # per-example test: workload, name, seeds
  python benchmarks/per_example.py --workload "$1" --seeds "$3" --ratio 0.05 \
    --methods iau 'iau matched (previous default)=iau:{"rule":"matched"}' finetune \
    --out "$O/pe-$2" --cache "$O/pe-cache"
  cp "$O/pe-$2/per_example.md" "$R/per_example_$2.md"
}
[ "${SKIP_PE_PURCHASE:-}" ] || pe builtin:purchase-mlp purchase 8
iau bench benchmarks/bench_generalize.yaml --out "$O/generalize" --json "$O/generalize.json" \
  --markdown "$R/bench_generalize.md" -q --overwrite
iau bench benchmarks/bench_chains.yaml --chain 10 --out "$O/chains" --json "$O/chains10.json" \
  --markdown "$R/bench_chains10.md" -q --overwrite
iau bench benchmarks/bench_chains30.yaml --out "$O/chains" --json "$O/chains30.json" \
  --markdown "$R/bench_chains30.md" -q --overwrite
# stopped for time in the issue-19 session (BENCHMARKS §1, Cleanup):
iau bench benchmarks/bench_cleanup.yaml --out "$O/cleanup" --json "$O/cleanup.json" \
  --markdown "$R/bench_cleanup.md" -q --overwrite
pe builtin:mixed-mlp mixed 4   # 4 seeds (session time); purchase has 8
# Not run in the issue-19 session (time); the next figure to add:
# pe builtin:noisyimages-lenet noisyimages 4
python benchmarks/request_cost.py --sizes 2000,20000 --repeats 3
