#!/usr/bin/env bash
# One night of a data-retention job:
#   unlearn the day's deletion requests from the current checkpoint into a dated one,
#   audit it, promote it, and only then delete the forgotten rows from the data store.
# Usage: nightly_retention.sh DAY REQUESTS.txt DATA.csv
# Layout: models/current.safetensors is a symlink to the checkpoint in production.
# It branches only on exit codes and JSON (0 ok, 1 audit failed, 2 bad input, 130/143 interrupted;
# the audit's "verdict": pass, fail or inconclusive).
set -euo pipefail
day=$1 requests=$2 data=$3
current=models/current.safetensors
out=models/model-$day.safetensors
mkdir -p records

if [ -e "$out" ] && [ "$(readlink "$current")" = "$(basename "$out")" ]; then
  echo "day $day: already promoted; finishing the deletion"
else
  # Ids that match no row (people never in the data) are a normal day: exit 0, an unchanged copy.
  # --fallback retrain: when the rule's own check fails (rows not at their targets, held-out or
  # retained accuracy fallen, this night alone or since the last retrain), unlearn retrains instead.
  rc=0
  iau unlearn "$current" --forget "$requests" --out "$out" --overwrite --allow-missing --fallback retrain \
    --forgotten-ids "records/forgotten-$day.txt" --outcomes "records/outcomes-$day.csv" \
    --json "records/unlearn-$day.json" --quiet || rc=$?
  if [ "$rc" -ne 0 ]; then
    kind=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["error"]["kind"])' "records/unlearn-$day.json")
    echo "day $day: unlearn failed ($kind); see records/unlearn-$day.json" >&2
    exit "$rc"
  fi

  learned=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["ids"]["forgotten_now"])' "records/unlearn-$day.json")
  if [ "$learned" != "0" ]; then
    # Audit before the rows leave the data store: the audit measures the forgotten rows.
    audit() {  # sets $verdict; an audit that could not run (bad input, interrupted) stops the job
      local rc=0
      iau audit "$out" --forget "records/forgotten-$day.txt" --original "$(readlink -f "$current")" \
        --overwrite --json "records/audit-$day.json" --quiet "$@" || rc=$?
      if [ "$rc" -gt 1 ]; then
        echo "day $day: audit could not run (exit $rc); see records/audit-$day.json" >&2
        exit "$rc"
      fi
      verdict=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["verdict"])' "records/audit-$day.json")
    }
    fell_back=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["fell_back"])' "records/unlearn-$day.json")
    if [ "$fell_back" = "True" ]; then
      echo "day $day: the rule's self-check failed; unlearn retrained instead"
      audit --accept-inconclusive  # a retrain's inconclusive checks are accepted; a failed one is not
    else
      audit
    fi
    if [ "$verdict" != "pass" ] && [ "$fell_back" != "True" ]; then
      # The deletion fell short (fail), or the audit cannot tell it from one that did nothing
      # (inconclusive: too few rows, or a model that does not memorize them). Either way redo the
      # night as a retrain — removal by construction — and promote it once no check fails.
      echo "day $day: audit $verdict; retraining instead"
      iau unlearn "$current" --forget "$requests" --method retrain --out "$out" --overwrite --allow-missing \
        --forgotten-ids "records/forgotten-$day.txt" --outcomes "records/outcomes-$day.csv" \
        --json "records/unlearn-$day.json" --quiet
      audit --accept-inconclusive  # a retrain's inconclusive checks are accepted; a failed one is not
    fi
    if [ "$verdict" = "fail" ]; then
      # Nothing was promoted: the rows this night would have erased are pending, not erased.
      python3 -c 'import csv,sys; rows = list(csv.reader(open(sys.argv[1], newline="")))
w = csv.writer(open(sys.argv[1], "w", newline="")); w.writerow(rows[0])
w.writerows([r[0], "pending" if r[1] in ("erased", "test_row") else r[1], r[2]] for r in rows[1:])' \
        "records/outcomes-$day.csv"
      echo "day $day: the audit failed; see records/audit-$day.json (current is unchanged)" >&2
      exit 1
    fi
  fi

  # Promote atomically: a new symlink renamed over the old one.
  ln -sfn "$(basename "$out")" "$current.new"
  mv -T "$current.new" "$current"
fi

# Only now delete the rows this night recorded as forgotten (training and test rows) from the
# data; idempotent, so a rerun after a failure here finishes the job.
iau delete-rows "$data" --forget "records/forgotten-$day.txt" --overwrite --json "records/delete-$day.json" --quiet
# Reply to each requester from records/outcomes-$day.csv (id, outcome: erased, test_row,
# already_forgotten, not_found): the rows are gone from the model and now from the data. A night
# that stops before this line replies nothing yet (its outcomes file is absent, or says pending
# after a failed audit); its rerun answers.
echo "day $day: done ($(readlink "$current"))"
