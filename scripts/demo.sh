#!/usr/bin/env bash
# Quick start 1: set up, run the demo experiment (configs/demo.yaml) and write its report.
# About 15 minutes on 2 CPU cores the first time; a rerun reuses every finished stage.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/loracompose run configs/demo.yaml "$@"
.venv/bin/loracompose report --experiment demo --out runs/experiments/report/demo
echo
echo "report: $(pwd)/runs/experiments/report/demo/report.html (and report.md beside it)"
echo "results: .venv/bin/loracompose results --experiment demo"
