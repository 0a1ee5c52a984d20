#!/usr/bin/env bash
# GPU check: the CUDA correctness checks and the study-shape benchmark (Llama-3-8B, Llama-3.2-3B and
# Mistral-7B shapes, random bf16 weights) in at most 8 minutes on one GPU; see benchmarks/gpu_check.py.
#
#   bash scripts/gpu-check.sh [--dry-run] [--out DIR] [--budget SECONDS]
#
#   --dry-run   the same code on CPU with tiny shapes (well under a minute; tests/test_gpu_check.py runs it)
#   --out DIR   where bench.json, bench.md and gpu-check.log go (default gpu-check-<UTC time>/)
#
# On a fresh GPU machine that cannot reach the internet: it needs Python >= 3.11, a CUDA build of
# torch, transformers, peft and accelerate (and optionally bitsandbytes with CUDA support, for the
# NF4 training step). Carry them as wheels, built on a machine with the same Python and platform:
#
#   (online)   pip download -d wheels torch --index-url https://download.pytorch.org/whl/cu124
#              pip download -d wheels "transformers>=5,<6" "peft>=0.21,<0.22" accelerate bitsandbytes
#   (GPU box)  python -m venv .venv && .venv/bin/pip install --no-index --find-links wheels \
#                  torch transformers peft accelerate bitsandbytes
#              .venv/bin/pip install --no-deps --no-build-isolation -e .
#              bash scripts/gpu-check.sh --out gpu-check
#
# (--no-build-isolation: setuptools comes from the venv instead of being downloaded.) Only the
# modules the check imports are needed: loracompose's other dependencies (pandas, datasets,
# scikit-learn, ...) are not (tests/test_gpu_check.py runs the dry run with them hidden). Python is
# .venv/bin/python when present, else python3 ($PYTHON wins). In a copy without .git, set
# GIT_COMMIT=<hash> so bench.json names the code it measured.
set -euo pipefail
caller="$PWD"
cd "$(dirname "$0")/.."

out="gpu-check-$(date -u +%Y%m%dT%H%M%SZ)"
args=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --out) [[ $# -ge 2 ]] || { echo "gpu-check.sh: --out needs a folder" >&2; exit 2; }; out="$2"; shift 2 ;;
    --dry-run) args+=("$1"); shift ;;
    --budget) [[ $# -ge 2 ]] || { echo "gpu-check.sh: --budget needs seconds" >&2; exit 2; }; args+=("$1" "$2"); shift 2 ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "gpu-check.sh: unknown option '$1' (accepted: --dry-run, --out DIR, --budget SECONDS)" >&2; exit 2 ;;
  esac
done

python="${PYTHON:-}"
if [[ -z "$python" ]]; then
  if [[ -x .venv/bin/python ]]; then python=.venv/bin/python; else python=python3; fi
fi
[[ "$out" = /* ]] || out="$caller/$out"  # relative to where it was called from, not the repository
created=0
[[ -e "$out" ]] || created=1
mkdir -p "$out"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"  # the dry run shares small CPUs; the GPU run barely uses them
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"  # works installed or not
start=$(date +%s)
status=0
"$python" -m benchmarks.gpu_check --out "$out" "${args[@]}" 2>&1 | tee "$out/gpu-check.log" || status=$?
if [[ $status -eq 2 && $created -eq 1 ]]; then  # refused before running (bad option, no GPU): leave nothing behind
  rm -r -- "$out"
  exit 2
fi
echo "[gpu-check] wall time $(( $(date +%s) - start )) s; results in $out/ (exit $status)" | tee -a "$out/gpu-check.log"
exit "$status"
