"""The GPU section of `tapegrad bench`: the seed network and compute-bound MLPs on one CUDA device.

Contenders per case: tapegrad eager, ``tg.trace`` with the optimizer (the Python graph), the same with
``cuda_graph=True``, torch eager autograd, ``torch.compile`` (default mode; and
``reduce-overhead`` on the seed network), and a whole torch step hand-captured into a
``torch.cuda.CUDAGraph`` (the floor a graph can reach). Each is timed over a block of steps
between two ``torch.cuda.synchronize()``; the blocks are interleaved round by round, medians
reported in ms per step with the ratio to torch eager, and the arithmetic rate the time implies
(6 x batch x the weights' elements per step: forward and backward matrix products; a rate above
the device's peak means skipped work or a missing synchronize). With torch.compile, the traced
step is also timed with ``executor="inductor"`` (Triton kernels). A contender that fails (no Triton for
``torch.compile``, say) is reported with its error instead of a time. Without CUDA the section
prints one line and returns.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import torch

import tapegrad as tg
import tapegrad.nn as nn

# (name, layer sizes, batch, dtype, steps per timed block, torch.compile modes: compiling takes long)
CASES = {
    "seed": (
        "seed 2-25-25-25-2, batch 10, fp32",
        (2, 25, 25, 25, 2),
        10,
        torch.float32,
        100,
        ("default", "reduce-overhead"),
    ),
    "mlp4": ("MLP 4x4096, batch 4096, fp32", (4096,) * 5, 4096, torch.float32, 10, ("default",)),
    "mlp4bf16": ("MLP 4x4096, batch 4096, bf16", (4096,) * 5, 4096, torch.bfloat16, 10, ()),
    "mlp8": ("MLP 8x1024, batch 256, fp32", (1024,) * 9, 256, torch.float32, 30, ()),
}


def _weights(sizes: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> list[torch.Tensor]:
    torch.manual_seed(0)
    out = []
    for a, b in zip(sizes, sizes[1:]):
        bound = 1 / a**0.5
        out += [torch.empty(b, a).uniform_(-bound, bound), torch.empty(b).uniform_(-bound, bound)]
    return [w.to(device=device, dtype=dtype) for w in out]


def _tapegrad(weights: list[torch.Tensor], lr: float) -> tuple[nn.Sequential, nn.SGD, nn.MSELoss]:
    layers: list[nn.Module] = []
    n = len(weights) // 2
    for i in range(n):
        w, b = weights[2 * i], weights[2 * i + 1]
        lin = nn.Linear(w.shape[1], w.shape[0])
        lin.weight.data, lin.bias.data = w.clone(), b.clone()
        layers += [lin, nn.ReLU() if i < n - 1 else nn.Tanh()]
    model = nn.Sequential(*layers)
    return model, nn.SGD(model.parameters(), lr=lr), nn.MSELoss()


def _torch(weights: list[torch.Tensor], lr: float) -> tuple[torch.nn.Sequential, torch.optim.SGD, torch.nn.MSELoss]:
    layers: list[torch.nn.Module] = []
    n = len(weights) // 2
    for i in range(n):
        w, b = weights[2 * i], weights[2 * i + 1]
        lin = torch.nn.Linear(w.shape[1], w.shape[0], device=w.device, dtype=w.dtype)
        with torch.no_grad():
            lin.weight.copy_(w)
            lin.bias.copy_(b)
        layers += [lin, torch.nn.ReLU() if i < n - 1 else torch.nn.Tanh()]
    model = torch.nn.Sequential(*layers)
    return model, torch.optim.SGD(model.parameters(), lr=lr), torch.nn.MSELoss()


def contenders(
    weights: list[torch.Tensor], x: torch.Tensor, y: torch.Tensor, lr: float, compile_modes: tuple[str, ...]
) -> dict[str, Callable[[], Any]]:
    """One training step per contender, each on its own copy of the weights."""
    made: dict[str, Callable[[], Any]] = {}
    tx, ty = tg.Tensor(x), tg.Tensor(y)

    model, opt, loss_fn = _tapegrad(weights, lr)

    def eager() -> None:
        with tg.Tape() as tape:
            loss = loss_fn(model(tx), ty)
        tape.backward(loss)
        opt.step()
        opt.zero_grad()

    made["tapegrad"] = eager
    variants: tuple[tuple[str, dict[str, Any]], ...] = (("traced", {"executor": "python"}),)
    variants += (("cuda graph", {"cuda_graph": True}),)
    if compile_modes:
        variants += (("traced inductor", {"executor": "inductor"}),)
    for name, options in variants:
        m, o, lf = _tapegrad(weights, lr)
        made[name] = _bind(tg.trace(lambda a, b, m=m, lf=lf: lf(m(a), b), optimizer=o, **options), tx, ty)
    tmodel, topt, tloss = _torch(weights, lr)

    def torch_eager() -> None:
        topt.zero_grad()
        tloss(tmodel(x), y).backward()
        topt.step()

    made["torch"] = torch_eager
    for mode in compile_modes:
        cm, co, cl = _torch(weights, lr)
        compiled = torch.compile(cm, mode=None if mode == "default" else mode)

        def compiled_step(
            compiled: Callable[..., Any] = compiled, co: torch.optim.Optimizer = co, cl: torch.nn.Module = cl
        ) -> None:
            co.zero_grad()
            cl(compiled(x), y).backward()
            co.step()

        made[f"compile {mode}"] = compiled_step
    made["torch graph"] = _lazy(lambda: _hand_captured(weights, x, y, lr))
    return made


def _lazy(build: Callable[[], Callable[[], Any]]) -> Callable[[], Any]:
    """A contender built on its first call (its errors are then reported like a failed step)."""
    built: list[Callable[[], Any]] = []

    def call() -> Any:
        if not built:
            built.append(build())
        return built[0]()

    return call


def _bind(step: Callable[[Any, Any], Any], a: Any, b: Any) -> Callable[[], Any]:
    return lambda: step(a, b)


def _hand_captured(weights: list[torch.Tensor], x: torch.Tensor, y: torch.Tensor, lr: float) -> Callable[[], None]:
    """A whole torch step (zero_grad, forward, backward, SGD) captured by hand: the graph floor."""
    model, opt, loss_fn = _torch(weights, lr)
    sx, sy = x.clone(), y.clone()
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(3):
            opt.zero_grad(set_to_none=True)
            loss_fn(model(sx), sy).backward()
            opt.step()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    opt.zero_grad(set_to_none=True)
    with torch.cuda.graph(graph):
        loss_fn(model(sx), sy).backward()
        opt.step()

    def replay() -> None:
        sx.copy_(x)
        sy.copy_(y)
        graph.replay()

    return replay


def time_case(made: dict[str, Callable[[], Any]], steps: int, rounds: int) -> tuple[dict[str, float], dict[str, str]]:
    """Median ms/step of each contender over ``rounds`` interleaved blocks; errors by name."""
    errors: dict[str, str] = {}
    for name in list(made):
        try:
            for _ in range(6):  # warm up: trace, check, compile or capture, check the graph, fold
                made[name]()
            torch.cuda.synchronize()
        except Exception as err:  # noqa: BLE001  (a contender that cannot run here is reported)
            errors[name] = f"{type(err).__name__}: {str(err).strip().splitlines()[0][:150] if str(err).strip() else ''}"
            del made[name]
    times: dict[str, list[float]] = {k: [] for k in made}
    names = list(made)
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            for _ in range(steps):
                made[name]()
            torch.cuda.synchronize()
            times[name].append((time.perf_counter() - t0) / steps)
    return {k: statistics.median(v) * 1e3 for k, v in times.items()}, errors


def gpu_benchmark(
    rounds: int = 5, cases: tuple[str, ...] = tuple(CASES), compile: bool = True, out: Callable[[str], None] = print
) -> dict[str, Any] | None:
    """Run and print the GPU section; None (and one line) when there is no CUDA device."""
    if not torch.cuda.is_available():
        out("\nGPU: skipped (no CUDA device here: torch.cuda.is_available() is False)")
        return None
    device = torch.device("cuda")
    name = torch.cuda.get_device_name(device)
    out(f"\nGPU: {name}, torch {torch.__version__}, CUDA {torch.version.cuda}")
    results = []
    for label, sizes, batch, dtype, steps, modes in (CASES[c] for c in cases):
        out(f"\n  {label}")
        weights = _weights(sizes, dtype, device)
        g = torch.Generator(device="cpu").manual_seed(1)
        x = torch.rand(batch, sizes[0], generator=g).to(device=device, dtype=dtype)
        y = (torch.rand(batch, sizes[-1], generator=g) * 2 - 1).to(device=device, dtype=dtype)
        try:
            made = contenders(weights, x, y, 0.01, modes if compile else ())
        except Exception as err:  # noqa: BLE001
            out(f"    could not set up: {type(err).__name__}: {err}")
            continue
        ms, errors = time_case(made, steps, rounds)
        base, floor = ms.get("torch"), ms.get("torch graph")
        flops = 6 * batch * sum(a * b for a, b in zip(sizes, sizes[1:]))
        out(f"    median ms/step of {rounds} blocks of {steps} steps; {flops / 1e9:.3g} GFLOP a step")
        out(f"    {'contender':<24} {'ms/step':>9} {'x torch':>8} {'x torch graph':>14} {'TFLOP/s':>8}")
        for k, v in ms.items():
            ratio = f"{v / base:8.3f}" if base else "       -"
            ratio2 = f"{v / floor:14.3f}" if floor else "             -"
            out(f"    {k:<24} {v:9.4f} {ratio} {ratio2} {flops / (v * 1e-3) / 1e12:8.2f}")
        for k, e in errors.items():
            out(f"    {k:<24} failed: {e}")
        results.append({"case": label, "ms": ms, "errors": errors})
    return {"device": name, "cases": results}


def weights_agree(steps: int = 100, out: Callable[[str], None] = print) -> float | None:
    """Largest weight difference between eager and the CUDA-graph step after ``steps`` SGD steps."""
    if not torch.cuda.is_available():
        return None
    weights = _weights((2, 25, 25, 25, 2), torch.float32, torch.device("cuda"))
    g = torch.Generator().manual_seed(2)
    data = [
        (tg.Tensor(torch.rand(10, 2, generator=g).cuda()), tg.Tensor(torch.rand(10, 2, generator=g).cuda()))
        for _ in range(steps)
    ]
    m1, o1, l1 = _tapegrad(weights, 0.05)
    m2, o2, l2 = _tapegrad(weights, 0.05)
    step = tg.trace(lambda a, b: l2(m2(a), b), optimizer=o2, cuda_graph=True)
    for x, y in data:
        with tg.Tape() as tape:
            loss = l1(m1(x), y)
        tape.backward(loss)
        o1.step()
        o1.zero_grad()
        step(x, y)
    diff = max(float((p.data - q.data).abs().max()) for p, q in zip(m1.parameters(), m2.parameters()))
    out(f"  weights after {steps} steps, eager vs CUDA graph: max |difference| {diff:.2e}")
    return diff
