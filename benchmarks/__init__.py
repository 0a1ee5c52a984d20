"""Performance harness: `python -m benchmarks.run [--quick] --out bench.json` (see run.py)."""
