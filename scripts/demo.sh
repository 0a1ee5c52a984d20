#!/usr/bin/env bash
# Quick start 1: set up, then run the end-to-end demo on the packaged SmolLM2 and IMDb.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/loracompose demo "$@"
