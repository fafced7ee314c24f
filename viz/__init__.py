"""viz: the tape as a networkx graph and as a graphviz picture, forward and backward.

``viz.to_networkx(tape_or_tensor)`` is the one graph model; ``viz.draw`` turns it into a
``graphviz.Digraph`` (module clusters, parameter names, gradient norms after
``viz.trace_backward``); ``viz.save`` writes .svg/.png/.pdf/.dot by suffix. ``viz.draw_traced``
draws the graph of a `tg.trace` step.
"""

from tapegrad._siblings import adopt as _adopt  # first: `import viz` becomes tapegrad.viz

_adopt(__name__)

from .analysis import dead_nodes, graph_depth, parameter_count, unused_parameters
from .backward import Trace, trace_backward
from .dot import STYLES, draw
from .explanation import Explanation, explain
from .files import save
from .graph import to_networkx
from .model import draw_model
from .render import GraphvizNotFoundError, TapeDigraph
from .summaries import Summary, summary
from .traced import draw_traced

__all__ = [
    "to_networkx", "draw", "save", "draw_model", "summary", "trace_backward", "Trace",
    "graph_depth", "dead_nodes", "unused_parameters", "parameter_count",
    "GraphvizNotFoundError", "TapeDigraph", "STYLES", "explain", "Explanation", "Summary", "draw_traced",
]  # fmt: skip
