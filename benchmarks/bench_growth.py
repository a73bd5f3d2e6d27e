"""Growth search recall/time/memory (issue 15 item 4). Same as ``topo bench growth``; see topo/bench/growth.py.

Run: ``nice python benchmarks/bench_growth.py [--n 20000] [--samples 4096] [--epsilon 1 20] [--threads 2] [--quick]``
"""

import sys

from topo.bench.growth import main

if __name__ == "__main__":
    sys.exit(main())
