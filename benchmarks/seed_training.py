"""Thin entry to the benchmark that ships in the package: the same as ``tapegrad bench``.

Run it from a source checkout (``python benchmarks/seed_training.py --help``); the code is in
``tapegrad/cli/bench/``.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # a source checkout without an install

from tapegrad.cli.bench import main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(main())
