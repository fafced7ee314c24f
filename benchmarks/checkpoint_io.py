"""`nn.save` / `nn.load` against safetensors, in MB/s: a thin entry to ``tapegrad bench --only io``.

python benchmarks/checkpoint_io.py [--io-large] [--io-dir DIR]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # a source checkout without an install

from tapegrad.cli.bench import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["--only", "io", *sys.argv[1:]]))
