"""Export speed and memory (issue 6). Same as ``topo bench export``; see topo/bench/export.py.

Run: ``python benchmarks/bench_export.py [--edges 1000000] [--epochs 10] [--seed 0] [--keep DIR]``
"""

import sys

from topo.bench.export import main

if __name__ == "__main__":
    sys.exit(main())
