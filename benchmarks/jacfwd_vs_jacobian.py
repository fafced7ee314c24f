"""Forward against reverse mode for a Jacobian: `tg.jacfwd` vs `tg.jacobian` (torch.func as reference).

``tg.jacobian`` takes one reverse pass per output element, ``tg.jacfwd`` one pass per input
element (after recording the VJP once), so forward mode should win on a function with few inputs
and many outputs, and lose on the opposite shape. Both shapes are timed (best of ``--repeat``),
and the two Jacobians are checked to agree.

    python benchmarks/jacfwd_vs_jacobian.py [--few 4] [--many 1000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # a source checkout without an install

import tapegrad as tg  # noqa: E402


def best_of(repeat: int, fn: Callable[[], object]) -> tuple[float, object]:
    """The fastest of ``repeat`` runs in seconds (after one untimed warm-up run), and the last result."""
    fn()
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def problem(n_in: int, n_out: int) -> tuple[Callable, Callable, torch.Tensor]:
    """f: R^n_in -> R^n_out, a small two-layer map written once for tapegrad and once for torch."""
    gen = torch.Generator().manual_seed(0)
    w1 = torch.randn(16, n_in, generator=gen, dtype=torch.float64) / n_in**0.5
    w2 = torch.randn(n_out, 16, generator=gen, dtype=torch.float64) / 4
    x = torch.randn(n_in, generator=gen, dtype=torch.float64)

    def f_tg(v):
        return (tg.Tensor(w2) @ (tg.Tensor(w1) @ v).tanh()).sin()

    def f_torch(v):
        return (w2 @ (w1 @ v).tanh()).sin()

    return f_tg, f_torch, x


def compare(n_in: int, n_out: int, repeat: int) -> dict[str, float]:
    """Time the four Jacobians of one shape and check that tapegrad's two agree with torch's."""
    f_tg, f_torch, x = problem(n_in, n_out)
    xt = tg.Tensor(x)
    times = {}
    times["tg.jacfwd"], fwd = best_of(repeat, lambda: tg.jacfwd(f_tg)(xt))
    times["tg.jacobian"], rev = best_of(repeat, lambda: tg.jacobian(f_tg, xt))
    times["torch.func.jacfwd"], ref = best_of(repeat, lambda: torch.func.jacfwd(f_torch)(x))
    times["torch.func.jacrev"], _ = best_of(repeat, lambda: torch.func.jacrev(f_torch)(x))
    torch.testing.assert_close(fwd.data, ref, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(rev.data, ref, rtol=1e-10, atol=1e-10)
    return times


def main(argv: list[str] | None = None) -> int:
    """Print both shapes' timings; exit 1 if jacfwd is not faster on the few-inputs shape."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--few", type=int, default=4, help="the small side (default 4)")
    parser.add_argument("--many", type=int, default=1000, help="the large side (default 1000)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore", category=DeprecationWarning)  # torch.func's import of torch.jit
    verdict = True
    for n_in, n_out in ((args.few, args.many), (args.many, args.few)):
        times = compare(n_in, n_out, args.repeat)
        print(f"f: R^{n_in} -> R^{n_out} (float64, Jacobians agree to 1e-10)")
        for name, seconds in times.items():
            print(f"  {name:<18} {seconds * 1e3:10.2f} ms")
        ratio = times["tg.jacobian"] / times["tg.jacfwd"]
        speed = f"{ratio:.1f}x faster" if ratio >= 1 else f"{1 / ratio:.1f}x slower"
        print(f"  tg.jacfwd is {speed} than tg.jacobian")
        if n_in < n_out:
            verdict = ratio > 1
    print(f"goal (jacfwd faster than jacobian for few inputs, many outputs): {'pass' if verdict else 'FAIL'}")
    return 0 if verdict else 1


if __name__ == "__main__":
    raise SystemExit(main())
