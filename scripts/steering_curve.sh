#!/usr/bin/env bash
# Judged accuracy against training steps, both directions, each module alone (no anti-expert):
# the snapshots the starter build saves (runs/starter/snapshots/<module>/step-N) and the
# finished module, on the 35 PPLM prompts × 2 seeds.
#
#   bash scripts/steering_curve.sh MODULES_DIR DATASETS [OUT]
#   e.g. bash scripts/steering_curve.sh src/loracompose/starter/smollm2-135m rotten_tomatoes
#        bash scripts/steering_curve.sh runs/starter/candidates rotten_tomatoes+imdb+tweets
#
# Prints one line per (direction, steps): share judged on target, with its 95% interval.
set -euo pipefail
cd "$(dirname "$0")/.."
MODULES=$1
DATASETS=$2
OUT=${3:-runs/steering-curve/$DATASETS}
SNAPSHOTS=${SNAPSHOTS:-runs/starter/snapshots}
LC=.venv/bin/loracompose
PROTOCOL=(--prompts pplm35 --seeds 1,2 --samples 1 --max-new-tokens 40)
mkdir -p "$OUT"
for label in positive negative; do
  name="$label@$DATASETS"
  for dir in "$SNAPSHOTS/$name"/step-* "$MODULES/$name"; do
    steps=$(basename "$dir"); [ "$steps" = "$name" ] && steps=final
    file="$OUT/$label-$steps"
    [ -f "$file.jsonl" ] || $LC generate --modules "$dir" --compose "$(basename "$dir")=1" "${PROTOCOL[@]}" \
      --out "$file.jsonl" 2>/dev/null
    [ -f "$file.json" ] || $LC evaluate "$file.jsonl" --target "sentiment=$label" --reference none --no-calibration \
      --no-progress --out "$file.json" > /dev/null
    .venv/bin/python - "$file.json" "$label" "$steps" <<'EOF'
import json, sys
m = json.load(open(sys.argv[1]))
a = m["attributes"]["sentiment"]
hard = a.get("hard_accuracy") or a.get("hard")
value, ci = (hard["value"], hard.get("ci")) if isinstance(hard, dict) else (hard, None)
print(f"{sys.argv[2]:8} {sys.argv[3]:8} judged {sys.argv[2]}: {value:.3f}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else ""))
EOF
  done
done
