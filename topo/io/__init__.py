"""Graph exports: GEXF 1.3 (static, and dynamic for Gephi's timeline), GraphML, edge-list CSV.

Every writer streams or writes into a temporary file beside the target and
renames it into place only when complete, so a failed or interrupted export
never leaves half a file.

>>> import topo, topo.io, tempfile, os
>>> t = topo.erdos_renyi([4, 3, 2], density=0.5, seed=0)
>>> d = tempfile.mkdtemp()
>>> topo.io.write_gexf(t, os.path.join(d, "t.gexf"))
>>> topo.io.read_gexf(os.path.join(d, "t.gexf")) == t
True
"""

from .edgelist import write_edgelist_csv
from .exporters import EXPORTERS, export, register_exporter
from .gexf_dynamic import write_gexf_dynamic
from .gexf_read import read_gexf
from .gexf_static import write_gexf
from .graphml import read_graphml, write_graphml

__all__ = ["write_gexf", "write_gexf_dynamic", "read_gexf", "write_graphml", "read_graphml",
           "write_edgelist_csv", "EXPORTERS", "register_exporter", "export"]
