"""Sphinx configuration: furo theme, MyST Markdown pages, API reference from the docstrings.

Build with ``make docs`` (``sphinx-build -W -b html docs docs/_build/html``): warnings are errors.
The graph pictures are drawn by `viz` from real tapes at build time (see ``figures.py``).
"""

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # the repository root: tapegrad, nn, viz
sys.path.insert(0, str(HERE))  # figures.py

import figures  # noqa: E402

project = "tapegrad"
author = "the tapegrad authors"
copyright = "2025, the tapegrad authors"
release = "0.1.0"

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
exclude_patterns = ["_build", "_figures", "Thumbs.db", ".DS_Store"]
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

html_theme = "furo"
html_title = "tapegrad"

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "undoc-members": False, "show-inheritance": False}
napoleon_google_docstring = True
napoleon_numpy_docstring = False
default_role = "py:obj"  # `name` in docstrings links when it can
nitpicky = False
# Docstrings cite names of other layers (`Tape`, `nn.Module`) that do not always resolve.
suppress_warnings = ["ref.python"]


def _primitive_docstring(app, what, name, obj, options, lines):
    """A primitive is an instance: show its own ``doc``, not the docstring of `tapegrad.Primitive`."""
    from tapegrad import Primitive

    if isinstance(obj, Primitive):
        text = obj.doc.replace("|", "\\|")  # |x| is not a substitution
        lines[:] = text.splitlines() + ["", f"The registered primitive ``{obj.name}``: recorded on open tapes."]


def setup(app):
    """Draw the figures before Sphinx reads the pages, so every picture comes from the code."""
    app.connect("builder-inited", lambda app: figures.build(HERE / "_figures"))
    app.connect("autodoc-process-docstring", _primitive_docstring)
