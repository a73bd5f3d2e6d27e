"""Analysis speed (issue 5). Same as ``topo bench analysis``; see topo/bench/analysis.py.

Run: ``python benchmarks/bench_analysis.py [--run DIR | --synthetic] [--edges 10000000] [--bootstrap N]``
"""

import sys

from topo.bench.analysis import main

if __name__ == "__main__":
    sys.exit(main())
