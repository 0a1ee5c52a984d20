#!/usr/bin/env bash
# The steering measurements of the README's "Steering" section: every target of the
# steering issue on the authors' protocol (the 35 PPLM prompts × 3 seeds, both
# directions, the sentiment panel's majority vote, perplexity under gemma3-270m).
#
#   bash scripts/measure_steering.sh [OUT] [MODULES] [MODEL]
#
# OUT      where generations and metrics go (default runs/steering); finished files are reused
# MODULES  modules directory (default: starter, the modules shipped for MODEL)
# MODEL    base model (default smollm2-135m)
# About 25 minutes on 2 CPU cores for SmolLM2. Prints the comparisons against the base.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-runs/steering}
MODULES=${2:-starter}
MODEL=${3:-smollm2-135m}
REFERENCE=${REFERENCE:-gemma3-270m}
LC=.venv/bin/loracompose
PROTOCOL=(--prompts pplm35 --seeds 1,2,3 --samples 1 --max-new-tokens 40)
mkdir -p "$OUT"

gen() {  # gen NAME [generate flags...]: one generations file, skipped when it exists
  local name=$1; shift
  [ -f "$OUT/$name.jsonl" ] || $LC generate --model "$MODEL" --modules "$MODULES" "${PROTOCOL[@]}" \
    --out "$OUT/$name.jsonl" "$@"
}

gen base
for strategy in contrast expert logit-contrast; do
  gen "$strategy-positive" --steer sentiment=positive --strategy "$strategy"
  gen "$strategy-negative" --steer sentiment=negative --strategy "$strategy"
done
for topic in sport business politics tech entertainment; do
  gen "topic-$topic" --steer "topic=$topic"
done
gen positive+sport --steer sentiment=positive,topic=sport

ev() {  # ev NAME [evaluate flags...]: one metrics file, skipped when it exists
  local name=$1; shift
  [ -f "$OUT/$name.json" ] || $LC evaluate --reference "$REFERENCE" --no-progress --out "$OUT/$name.json" "$@"
}

ev base-sentiment --positive "$OUT/base.jsonl" --negative "$OUT/base.jsonl"
for strategy in contrast expert logit-contrast; do
  ev "$strategy-sentiment" --positive "$OUT/$strategy-positive.jsonl" --negative "$OUT/$strategy-negative.jsonl" \
    --baseline "$OUT/base.jsonl"
done
for topic in sport business politics tech entertainment; do
  REFERENCE=none ev "base-topic-$topic" "$OUT/base.jsonl" --target "topic=$topic"  # base perplexity: above
  ev "topic-$topic" "$OUT/topic-$topic.jsonl" --target "topic=$topic"
done
REFERENCE=none ev base-positive+sport "$OUT/base.jsonl" --target sentiment=positive,topic=sport
ev positive+sport "$OUT/positive+sport.jsonl" --target sentiment=positive,topic=sport

echo "== sentiment, both directions, against the base"
$LC compare "$OUT/base-sentiment.json" "$OUT"/{contrast,expert,logit-contrast}-sentiment.json
for topic in sport business politics tech entertainment; do
  echo "== topic=$topic against the base"
  $LC compare "$OUT/base-topic-$topic.json" "$OUT/topic-$topic.json"
done
echo "== sentiment=positive + topic=sport against the base"
$LC compare "$OUT/base-positive+sport.json" "$OUT/positive+sport.json"
