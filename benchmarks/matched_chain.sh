#!/usr/bin/env bash
# The matched rule (a checkpoint without reference targets) on a chain of small requests: an
# original trained with train.references=0, then N requests of ROWS training rows each, every one
# unlearned from the previous output with the default method; the final model is audited against
# the original with every id forgotten so far. Prints one JSON line per workload.
#   bash benchmarks/matched_chain.sh sample_configs/mixed_mlp.yaml 10 15
#   bash benchmarks/matched_chain.sh sample_configs/noisyimages_lenet.yaml 10 15
set -euo pipefail
config=$(realpath "$1") n=$2 rows=$3
work=$(mktemp -d)
cd "$work"  # outside any checkout: python -m imports the installed (or PYTHONPATH) iau_cli
export HF_HUB_OFFLINE=1
iau() { python -m iau_cli "$@"; }
iau train "$config" --out m0.safetensors --set train.references=0 --json train.json -q
python - "$n" "$rows" <<'EOF'
import sys
import numpy as np
from iau_cli.recipes.train import restore
n, rows = int(sys.argv[1]), int(sys.argv[2])
r = restore("m0.safetensors")
ids = [r.data.train.ids[i] for i in r.partition().learn]
chosen = np.random.default_rng(7).choice(len(ids), size=n * rows, replace=False)
for k in range(n):
    open(f"req{k + 1}.txt", "w").write("".join(f"{ids[i]}\n" for i in chosen[k * rows:(k + 1) * rows]))
EOF
for k in $(seq 1 "$n"); do
  iau unlearn "m$((k - 1)).safetensors" --forget "req$k.txt" --out "m$k.safetensors" --json "u$k.json" -q
  cat "req$k.txt" >> all.txt
done
iau audit "m$n.safetensors" --forget all.txt --original m0.safetensors --json audit.json -q || true
python - "$n" "$1" <<'EOF'
import json, sys
n = int(sys.argv[1])
steps = [json.load(open(f"u{k}.json")) for k in range(1, n + 1)]
audit = json.load(open("audit.json"))
checks = {c["id"]: c for c in audit["checks"]}
print(json.dumps({
    "config": sys.argv[2], "requests": n, "rules": sorted({s["details"].get("rule") for s in steps}),
    "test_before": steps[0]["before"]["test_accuracy"], "test_after": steps[-1]["after"]["test_accuracy"],
    "worst_step_drop": max(s["before"]["test_accuracy"] - s["after"]["test_accuracy"] for s in steps),
    "self_check_failed": sum(any(w["code"] == "self_check_failed" for w in s["warnings"]) for s in steps),
    "verdict": audit["verdict"], "failed": [c for c, v in checks.items() if v["status"] == "fail"],
    "membership_auc": checks["membership_auc"]["value"], "original_distance": checks["membership_auc"].get("noop_distance"),
}))
EOF
rm -rf "$work"
