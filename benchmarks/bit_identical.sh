#!/usr/bin/env bash
# Is `topo train` bit-identical to an older commit for the same seed and settings?
#   benchmarks/bit_identical.sh REF [PYTHON]
# Trains digits (3 epochs, SET) with the settings that were topo's defaults before the "auto" recipes, once
# with the code of REF (a temporary git worktree) and once with this checkout, and compares metrics.csv and the
# topology's arrays (edges and weights) exactly. Used to show that the package move of issue 13 (9926bc1)
# changed no result: `benchmarks/bit_identical.sh 9926bc1^`.
set -euo pipefail
ref=${1:?usage: benchmarks/bit_identical.sh REF [PYTHON]}
py=${2:-${PYTHON:-.venv/bin/python}}
here=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
trap 'git -C "$here" worktree remove --force "$tmp/old" >/dev/null 2>&1 || true; rm -rf "$tmp"' EXIT
git -C "$here" worktree add -q --detach "$tmp/old" "$ref"
flags=(--dataset digits --hidden 64,32 --epsilon 5 --epochs 3 --rule set --activation relu
       --init kaiming_uniform --regrow-init zeros --seed 0 --quiet)
extra=()
if "$py" -c "import sys; sys.path.insert(0, '$here'); import topo.cli.cmd_train as c; \
    sys.exit(0 if 'standardize' in c.DEFAULTS else 1)" 2>/dev/null; then extra=(--no-standardize); fi
(cd "$tmp/old" && OMP_NUM_THREADS=1 PYTHONPATH="$tmp/old" "$py" -m topo train "${flags[@]}" --out "$tmp/before")
(cd "$here" && OMP_NUM_THREADS=1 PYTHONPATH="$here" "$py" -m topo train "${flags[@]}" "${extra[@]}" --out "$tmp/after")
"$py" - "$tmp" <<'PY'
import sys
import numpy as np
import pandas as pd
tmp = sys.argv[1]
cols = ["epoch", "train_loss", "train_acc", "test_loss", "test_acc", "num_edges"]
a, b = (pd.read_csv(f"{tmp}/{d}/metrics.csv")[cols] for d in ("before", "after"))
za, zb = (np.load(f"{tmp}/{d}/topology.npz") for d in ("before", "after"))
keys = sorted(k for k in za.files if k.startswith("layer"))
same_t = keys == sorted(k for k in zb.files if k.startswith("layer")) and all(np.array_equal(za[k], zb[k]) for k in keys)
print(b.to_string(index=False))
print(f"metrics.csv identical: {a.equals(b)}; topology arrays ({', '.join(keys)}) identical: {same_t}")
sys.exit(0 if a.equals(b) and same_t else 1)
PY
