"""The subcommands of the `tapegrad` command line; `tapegrad.cli` parses and dispatches.

Part of the command line layer: these modules may use nn and viz (imported lazily, so that
``import tapegrad`` never pulls them in).
"""
