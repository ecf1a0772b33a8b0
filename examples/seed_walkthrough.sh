#!/usr/bin/env bash
# The seed notebook, step by step, with the client: prepare, upload, wait for training and the
# batch transform, look at the error, predict from the endpoint, delete the endpoint.
#
#   examples/seed_walkthrough.sh                  # on the local cloud (started if need be)
#   XGBPIPE_STACK=xgbdev examples/seed_walkthrough.sh   # on a stack deployed with `sam deploy`
set -euo pipefail
cd "$(dirname "$0")/.."
xgbpipe=${XGBPIPE:-.venv/bin/xgbpipe}
model=${MODEL:-abalone-seed}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if [ -z "${XGBPIPE_STACK:-}" ]; then
  "$xgbpipe" local up --parameter-overrides GateThreshold=3.0 >/dev/null
fi

echo "== 1-3. prepare: one-hot sex, label first, no header, 70/30 then 70/30"
"$xgbpipe" prepare examples/abalone.csv "$work/abalone" --label rings --seed 42

echo "== 3. upload (the drop starts training by itself)"
run=$("$xgbpipe" upload "$work/abalone" --model "$model" | tee /dev/stderr | grep -oE 'Run [0-9a-f]{12}' | cut -d' ' -f2)

echo "== 4-6. training, batch transform, RMSE, gate, endpoint"
"$xgbpipe" status "$model" --watch
"$xgbpipe" status "$model"

echo "== 5. the batch transform's error, as pictures"
"$xgbpipe" report "$run" --model "$model" --out "report-$model"

echo "== 6. predict: raw rows, then named features through schema.json"
head -5 "$work/abalone/test.csv" | cut -d, -f2- | "$xgbpipe" predict "$model" -
echo '[{"sex": "M", "length": 0.455, "diameter": 0.365, "height": 0.095, "whole weight": 0.514,
  "shucked weight": 0.2245, "viscera weight": 0.101, "shell weight": 0.15}]' |
  "$xgbpipe" predict "$model" -

echo "== 7. delete the endpoint"
"$xgbpipe" delete "$model" --yes
