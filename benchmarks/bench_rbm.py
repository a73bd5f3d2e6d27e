"""CD-1 epoch of a 784->1000 SET-RBM vs a dense torch RBM (issue 17). Same as ``topo bench rbm``; see topo/bench/rbm.py.

Run: ``python benchmarks/bench_rbm.py [--samples N] [--rounds R]``
"""

import sys

from topo.bench.rbm import main

if __name__ == "__main__":
    sys.exit(main())
