#!/usr/bin/env bash
# Every benchmark on one CUDA GPU (benchmarks/gpu.py; its docstring says what runs and writes).
# Run from anywhere: bash benchmarks/gpu.sh [--out benchmarks/out/gpu] [--budget 420] [...]
# Python: $PYTHON if set, else the repository's .venv, else python3. Without CUDA: exits 0.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-$repo/.venv/bin/python}"
[ -x "$python" ] || python=python3
exec "$python" "$repo/benchmarks/gpu.py" "$@"
