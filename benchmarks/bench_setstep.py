"""One SET step's CPU cost per edge, new vs the pre-rewrite code (issue 16 item 6). Same as ``topo bench setstep``.

Run: ``python benchmarks/bench_setstep.py [--edges 1000000 10000000] [--epsilon 5] [--no-reference]``
"""

import sys

from topo.bench.setstep import main

if __name__ == "__main__":
    sys.exit(main())
