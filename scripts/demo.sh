#!/usr/bin/env bash
# Quick start 1: set up, then steer the packaged SmolLM2 with its starter modules (positive,
# negative, sport, positive + sport), judge every continuation against the base's and write
# the report. About 10 minutes on 2 CPU cores from scratch; a rerun reuses the generations.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/loracompose demo --out runs/demo "$@"
