"""The README's snippets run: its Python blocks, in order, in one interpreter, after the ``topo train`` /
``topo predict`` commands on digits that come before them (the runs they read), in a fresh directory.

Blocks that need the large datasets (MNIST, Fashion-MNIST, COIL20), a GPU or several processes are left out
(they are the same API on other data); everything else must run as printed.
"""

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
HEAVY = ("mnist", "fashion", "coil20", "cuda", "init_process_group", "torchrun", "--nproc")


def snippets() -> list[tuple[str, str]]:
    """``(kind, text)`` in README order: ``("python", block)`` and ``("sh", command)`` on digits."""
    out = []
    for m in re.finditer(r"```(python|sh)\n(.*?)```", README.read_text(encoding="utf-8"), re.S):
        kind, body = m.groups()
        if any(w in body for w in HEAVY) and kind == "python":
            continue
        if kind == "python":
            out.append(("python", body))
            continue
        for line in body.replace("\\\n", " ").splitlines():
            cmd = line.split("#")[0].strip()
            digits = "--dataset digits" in cmd and not any(w in cmd for w in HEAVY)
            if re.match(r"topo (train|predict) ", cmd) and digits:
                out.append(("sh", cmd))
    return out


def test_readme_has_the_snippets_this_test_runs():
    kinds = [k for k, _ in snippets()]
    assert kinds.count("python") >= 20 and kinds.count("sh") >= 5


def test_readme_snippets_run(tmp_path):
    steps = snippets()
    script = ["import subprocess, sys", "ns = {}"]
    for i, (kind, text) in enumerate(steps):
        if kind == "sh":
            args = text.split()[1:]
            script.append(f"print('--- sh {i}', flush=True); "
                          f"subprocess.run([sys.executable, '-m', 'topo', *{args!r}], check=True)")
        else:
            script.append(f"print('--- python {i}', flush=True); "
                          f"exec(compile({text!r}, 'README snippet {i}', 'exec'), ns)")
    (tmp_path / "readme.py").write_text("\n".join(script) + "\n", encoding="utf-8")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg",
           "PYTHONPATH": os.pathsep.join([str(README.parent), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, str(tmp_path / "readme.py")], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, textwrap.shorten(proc.stdout[-2000:], 2000) + "\n" + proc.stderr[-4000:]
