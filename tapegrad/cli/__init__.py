"""The `tapegrad` command line: the application layer on top of tapegrad, nn and viz.

`main` parses (`tapegrad.cli.parser`) and dispatches (`tapegrad.cli.dispatch`); each
subcommand is a module here (`train`, `cv`, `compare`, `graph`, and the `bench` package). This is the only part of
tapegrad that imports nn or viz.
"""

from .dispatch import main
from .parser import TABLE_I_LRS, build_parser

__all__ = ["main", "build_parser", "TABLE_I_LRS"]
