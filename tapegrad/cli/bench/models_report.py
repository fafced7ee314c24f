"""The table and the goals of `tapegrad bench --only models` (`models.models_benchmark`'s results)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["report_models"]

GOALS = {"eager CPU time / torch": 0.9, "bytes kept for backward / torch": 1.0, "heap growth per step / torch": 1.0}


def report_models(results: list[dict[str, Any]], out: Callable[[str], None] = print) -> bool:
    """Print the models table and the goals of issue 22; True when every goal is met."""
    ok = True
    out("\nchar-level models, batch 32, AdamW, float32: median per training step, interleaved with torch")
    out(
        f"  {'model':<18} {'contender':<9} {'CPU ms':>8} {'x torch':>8} {'wall ms':>8} {'x torch':>8}"
        f" {'heap MB':>8} {'kept MB':>8} {'aten ops':>8}  |loss - torch's|"
    )
    for res in results:
        for k in res["cpu_ms"]:
            mem = res["memory"].get(k)
            cells = (
                f"{mem['heap_growth'] / 1e6:8.2f} {mem['kept_bytes'] / 1e6:8.2f} {mem['ops']:8d}" if mem else " " * 26
            )
            ratio = res["cpu_ratio"].get(k, 1.0), res["wall_ratio"].get(k, 1.0)
            drift = f"{res['loss_drift'][k]:.1e}" if k in res["loss_drift"] else ""
            out(
                f"  {res['model']:<18} {k:<9} {res['cpu_ms'][k]:8.2f} {ratio[0]:8.3f} {res['wall_ms'][k]:8.2f}"
                f" {ratio[1]:8.3f} {cells}  {drift}"
            )
        if res["traced_skipped"]:
            out(f"  {res['model']:<18} traced    not traced: {res['traced_skipped']}")
    if results and "traced" in results[0]["cpu_ms"]:
        out(f"  (traced: tg.trace(..., optimizer=AdamW, executor={results[0].get('executor', 'auto')!r}))")
    out("\nmodels goals (issue 22):")
    for res in results:
        mem = res["memory"]
        checks = [
            ("eager CPU time / torch", res["cpu_ratio"]["tapegrad"]),
            ("bytes kept for backward / torch", mem["tapegrad"]["kept_bytes"] / mem["torch"]["kept_bytes"]),
            ("heap growth per step / torch", mem["tapegrad"]["heap_growth"] / max(mem["torch"]["heap_growth"], 1)),
        ]
        for text, value in checks:
            limit = GOALS[text]
            met = value <= limit
            ok = ok and met
            out(f"  {'PASS' if met else 'FAIL'}  {res['model'] + ': ' + text:<52} {value:7.3f}  (goal <= {limit})")
    return ok
