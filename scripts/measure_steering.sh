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
# About 60 minutes on 2 CPU cores for SmolLM2 (generation ~45, evaluation ~15). Prints the comparisons against the base.
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
for S in 1 2; do
  for strategy in contrast expert; do
    gen "$strategy-s$S-positive" --steer sentiment=positive --strategy "$strategy" --strength "$S"
    gen "$strategy-s$S-negative" --steer sentiment=negative --strategy "$strategy" --strength "$S"
  done
done
gen contrast-s3-positive --steer sentiment=positive --strength 3
gen contrast-s3-negative --steer sentiment=negative --strength 3
gen logit-contrast-s1-positive --steer sentiment=positive --strategy logit-contrast --strength 1
gen logit-contrast-s1-negative --steer sentiment=negative --strategy logit-contrast --strength 1
for topic in sport business politics tech entertainment; do
  gen "topic-$topic" --steer "topic=$topic"                     # the defaults: strength 2, the expert alone
done
gen positive+sport --steer sentiment=positive,topic=sport

ev() {  # ev NAME [evaluate flags...]: one metrics file, skipped when it exists
  local name=$1; shift
  [ -f "$OUT/$name.json" ] || $LC evaluate --reference "$REFERENCE" --no-progress --out "$OUT/$name.json" "$@"
}

ev base-sentiment --positive "$OUT/base.jsonl" --negative "$OUT/base.jsonl"
SENTIMENT=(contrast-s1 contrast-s2 contrast-s3 expert-s1 expert-s2 logit-contrast-s1)
for system in "${SENTIMENT[@]}"; do
  ev "$system-sentiment" --positive "$OUT/$system-positive.jsonl" --negative "$OUT/$system-negative.jsonl" \
    --baseline "$OUT/base.jsonl"
done
for topic in sport business politics tech entertainment; do
  REFERENCE=none ev "base-topic-$topic" "$OUT/base.jsonl" --target "topic=$topic"  # base perplexity: above
  ev "topic-$topic" "$OUT/topic-$topic.jsonl" --target "topic=$topic"
done
REFERENCE=none ev base-positive+sport "$OUT/base.jsonl" --target sentiment=positive,topic=sport
ev positive+sport "$OUT/positive+sport.jsonl" --target sentiment=positive,topic=sport

echo "== sentiment, both directions, against the base"
files=(); for system in "${SENTIMENT[@]}"; do files+=("$OUT/$system-sentiment.json"); done
$LC compare "$OUT/base-sentiment.json" "${files[@]}"
for topic in sport business politics tech entertainment; do
  echo "== topic=$topic against the base"
  $LC compare "$OUT/base-topic-$topic.json" "$OUT/topic-$topic.json"
done
echo "== sentiment=positive + topic=sport against the base"
$LC compare "$OUT/base-positive+sport.json" "$OUT/positive+sport.json"
