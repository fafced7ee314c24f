"""`tapegrad bench --only models` runs on tiny settings and its numbers are consistent (no timing assertions)."""

from __future__ import annotations

import pytest
import torch

from tapegrad.cli.bench import models, models_report


@pytest.mark.slow
def test_models_numbers_are_consistent():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        (res,) = models.models_benchmark(rounds=1, steps=1, names=["mlp"], executor="python")
    finally:
        torch.set_num_threads(threads)
    assert set(res["cpu_ms"]) == {"torch", "tapegrad", "traced"} and not res["traced_skipped"]
    for k in ("tapegrad", "traced"):
        assert res["cpu_ratio"][k] == pytest.approx(res["cpu_ms"][k] / res["cpu_ms"]["torch"])
        assert res["wall_ratio"][k] == pytest.approx(res["wall_ms"][k] / res["wall_ms"]["torch"])
        assert res["loss_drift"][k] < 1e-5  # the same weights and batches: the same losses up to rounding
    for side in ("torch", "tapegrad"):
        mem = res["memory"][side]
        assert mem["kept_bytes"] > 0 and mem["ops"] > 0
    lines: list[str] = []
    met = models_report.report_models([res], out=lines.append)
    text = "\n".join(lines)
    assert "mlp" in text and "bytes kept for backward" in text and met == ("FAIL" not in text)


def test_the_timed_rounds_never_include_the_traced_step_s_compiling_or_checking_calls(monkeypatch, quick_inductor):
    from tapegrad.tracing.executors import Entry

    general, timed, slow = Entry._general, models._timed, []  # _general: compiling or checking calls

    def counting_general(self, args):
        slow.append(1)
        return general(self, args)

    def counting_timed(fn):
        before = len(slow)
        result = timed(fn)
        per_call.append(len(slow) - before)
        return result

    per_call: list[int] = []
    monkeypatch.setattr(Entry, "_general", counting_general)
    monkeypatch.setattr(models, "_timed", counting_timed)
    (res,) = models.models_benchmark(rounds=1, steps=1, names=["mlp"], executor="inductor")
    assert not res["traced_skipped"] and len(per_call) == 6  # the warm-up round, then one timed round
    assert sum(per_call[:3]) >= 2 and per_call[3:] == [0, 0, 0]  # compiled and checked while warming up


def test_every_model_has_equal_weights_on_both_sides_and_agrees_on_the_first_loss():
    for name in models.MODELS:
        if name == "transformer-large":
            continue  # the same classes as "transformer", larger
        eager, traced, theirs = models.build(name)
        ours = dict(eager.named_parameters())
        for k, p in theirs.named_parameters():
            assert torch.equal(p.detach(), ours[k].data), (name, k)
        _, _, _, context, per_position = models.MODELS[name]
        (x, y), *_ = models.batches(context, per_position, 1)
        a = models.tapegrad_contender(eager).step(x, y)
        b = models.torch_contender(theirs).step(x, y)
        assert abs(a - b) < 1e-5, name


def test_tape_bytes_counts_each_storage_once():
    import tapegrad as tg
    from tapegrad.engine.release import Released

    x = tg.tensor(torch.randn(100), requires_grad=True)
    with tg.Tape(persistent=True) as tape:
        y = (x * x).exp()  # mul saves x twice (one storage); exp saves its output, not its input
    assert isinstance(tape.records[0].output.data, Released)  # x * x: released when the tape closed
    assert models.tape_bytes(tape) == 2 * 100 * 4 and y.data.numel() == 100
