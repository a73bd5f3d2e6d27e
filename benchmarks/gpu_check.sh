#!/usr/bin/env bash
# One-GPU check of topo (issue 16 item 7): the CUDA tests, then csr vs cuBLAS dense over densities
# 0.1 %–5 % with peak CUDA memory (`topo bench layers --device cuda`). Runs in under 4 minutes on one
# GPU (each part has its own time limit). Run from anywhere: `bash benchmarks/gpu_check.sh`;
# PYTHON=... picks the interpreter (default: python); OUT=dir also keeps the JSON of the bench.
# Exit status: 0 when every part passed, 2 without a visible CUDA GPU, else 1.
set -u
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if ! "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
    echo "gpu_check: torch sees no CUDA GPU here; nothing to check" >&2
    exit 2
fi
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
"$PY" -c 'import torch, topo; print("torch", torch.__version__, "CUDA", torch.version.cuda, "topo", topo.__version__)'

echo "== CUDA tests (pytest -m cuda) =="
timeout 120 "$PY" -m pytest -q -m cuda -p no:cacheprovider -rs tests
tests_rc=$?

echo "== topo bench layers --device cuda (csr vs cuBLAS dense, densities 0.1 %-5 %) =="
json=${OUT:+$OUT/gpu_bench_layers.json}
timeout 90 "$PY" -m topo bench layers --device cuda --sizes 4000 20000 --repeat 10 ${json:+--json "$json"}
bench_rc=$?

echo "gpu_check: tests exit $tests_rc, bench exit $bench_rc"
[ "$tests_rc" -eq 0 ] && [ "$bench_rc" -eq 0 ]
