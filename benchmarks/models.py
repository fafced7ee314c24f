"""Thin entry to the models benchmark that ships in the package: ``tapegrad bench --only models``.

Run it from a source checkout (``python benchmarks/models.py``); the code is in
``tapegrad/cli/bench/models*.py``. Arguments are those of ``tapegrad bench``.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # a source checkout without an install

from tapegrad.cli.bench import main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(main(["--only", "models", *sys.argv[1:]]))
