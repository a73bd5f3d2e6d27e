"""``examples/set_rbm.py --smoke``: SET-RBM vs static vs dense on digits, AIS log-likelihood, degree heat map."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

import topo

SCRIPT = Path(__file__).resolve().parents[1] / "examples" / "set_rbm.py"


def test_set_rbm_smoke(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    out = tmp_path / "set_rbm"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--smoke", "--out", str(out)], check=False, capture_output=True,
                          text=True, env=env, timeout=900)
    assert proc.returncode == 0, proc.stderr
    df = pd.read_csv(out / "results.csv")
    assert list(df.variant) == ["set", "static", "dense"]
    # A binary 64-pixel image has log-likelihood in (-64 log 2, 0); the trained RBMs beat the uniform model.
    assert ((df.test_ll < 0) & (df.test_ll > -64 * np.log(2))).all()
    assert (df.test_ll_low <= df.test_ll).all() and (df.test_ll <= df.test_ll_high).all()
    for _, row in df.iterrows():
        t = topo.load(out / "digits" / f"{row.variant}-seed0" / "topology.npz")
        assert t.num_edges == row.edges
    assert df.set_index("variant").loc["dense", "edges"] == 64 * 16
    assert (out / "digits" / "visible_degree.png").stat().st_size > 1000
    assert "AIS 500 temperatures" in proc.stdout
    # Re-running reuses the finished runs.
    again = subprocess.run([sys.executable, str(SCRIPT), "--smoke", "--out", str(out)], check=False,
                           capture_output=True, text=True, env=env, timeout=900)
    assert again.returncode == 0 and pd.read_csv(out / "results.csv").equals(df)
