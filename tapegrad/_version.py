"""The version of tapegrad, nn and viz: the one place it is written (pyproject.toml reads it)."""

__version__ = "0.1.0"
