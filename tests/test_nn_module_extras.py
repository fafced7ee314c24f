"""nn.Module buffers, hooks, moves and traversal helpers, compared with torch.nn.Module's behaviour."""

import pytest
import torch

import nn
import tapegrad as tg


class WithBuffers(nn.Module):
    def __init__(self, lib=nn):
        super().__init__()
        self.lin = lib.Linear(3, 2)
        self.register_buffer("mask", torch.tril(torch.ones(3, 3)))
        self.register_buffer("steps", torch.tensor(0))
        self.register_buffer("scratch", torch.zeros(2), persistent=False)

    def forward(self, x):
        return self.lin(x @ self.mask)


class TorchWithBuffers(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(3, 2)
        self.register_buffer("mask", torch.tril(torch.ones(3, 3)))
        self.register_buffer("steps", torch.tensor(0))
        self.register_buffer("scratch", torch.zeros(2), persistent=False)


def test_buffers_are_state_but_not_parameters():
    ours, ref = WithBuffers(), TorchWithBuffers()
    assert list(ours.state_dict()) == list(ref.state_dict()) == ["mask", "steps", "lin.weight", "lin.bias"]
    assert [n for n, _ in ours.named_buffers()] == [n for n, _ in ref.named_buffers()]
    assert [n for n, _ in ours.named_parameters()] == ["lin.weight", "lin.bias"]
    assert len(list(ours.buffers())) == 3 and ours.get_buffer("mask") is ours.mask
    ref.mask.fill_(2.0)
    ours.load_state_dict(ref.state_dict())  # strict, both ways
    ref.load_state_dict(ours.state_dict())
    assert torch.equal(ours.mask, ref.mask) and ours(torch.ones(1, 3)).shape == (1, 2)
    ours.steps = torch.tensor(5)  # assigning to a buffer's name replaces the buffer
    assert ours.state_dict()["steps"].item() == 5 and ours.steps is ours._buffers["steps"]
    ours.mask = None
    assert "mask" not in ours.state_dict()
    del ours.scratch
    assert [n for n, _ in ours.named_buffers()] == ["steps"]


def test_register_buffer_rejects_what_torch_rejects():
    m = nn.Module()
    m.plain = 1
    with pytest.raises(KeyError, match="already exists"):
        m.register_buffer("plain", torch.zeros(1))
    with pytest.raises(KeyError, match="contain"):
        m.register_buffer("a.b", torch.zeros(1))
    with pytest.raises(TypeError, match="buffer"):
        m.register_buffer("x", [1.0])
    m.register_buffer("x", torch.zeros(1))
    with pytest.raises(TypeError, match="buffer 'x'"):
        m.x = 3.0


def test_to_moves_parameters_and_buffers_and_casts_only_floats():
    m = WithBuffers()
    weight = m.lin.weight
    for cast, dtype in ((m.double, torch.float64), (m.half, torch.float16), (m.bfloat16, torch.bfloat16)):
        assert cast() is m
        assert m.lin.weight.dtype == m.mask.dtype == m.scratch.dtype == dtype
        assert m.steps.dtype == torch.int64 and m.lin.weight is weight
    m.float().to("cpu")
    assert m.mask.dtype == torch.float32 and m.cpu().mask.device.type == "cpu"
    m.to(torch.zeros(1, dtype=torch.float64))
    assert m.lin.bias.dtype == torch.float64
    with pytest.raises(TypeError, match="floating point"):
        m.to(torch.int32)


def test_apply_requires_grad_and_submodules():
    model = nn.Sequential(nn.Linear(2, 3), nn.Sequential(nn.ReLU(), nn.Linear(3, 1)))
    ref = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.Sequential(torch.nn.ReLU(), torch.nn.Linear(3, 1)))
    seen, seen_ref = [], []
    assert model.apply(lambda m: seen.append(type(m).__name__)) is model
    ref.apply(lambda m: seen_ref.append(type(m).__name__))
    assert seen == seen_ref
    model.apply(lambda m: nn.init.zeros_(m.weight) if isinstance(m, nn.Linear) else None)
    assert model[1][1].weight.data.abs().sum() == 0
    assert model.get_submodule("1.1") is model[1][1] and model.get_submodule("") is model
    assert model.get_parameter("1.1.bias") is model[1][1].bias
    with pytest.raises(AttributeError, match="Sequential has no attribute `7`"):
        model.get_submodule("1.7")
    assert not any(p.requires_grad for p in model.requires_grad_(False).parameters())
    names = [n for n, _ in model.named_modules(prefix="net")]
    assert names == ["net", "net.0", "net.1", "net.1.0", "net.1.1"]
    shared = nn.Linear(1, 1)
    twice = nn.Sequential(shared, shared)
    assert len(list(twice.named_modules(remove_duplicate=False))) == 3
    assert list(twice.state_dict()) == list(torch.nn.Sequential(*[torch.nn.Linear(1, 1)] * 2).state_dict())


def test_forward_hooks_and_pre_hooks_with_removable_handles():
    lin = nn.Linear(2, 2)
    calls = []
    pre = lin.register_forward_pre_hook(lambda m, args: (args[0] * 2,))
    post = lin.register_forward_hook(lambda m, args, out: calls.append(tuple(args[0].shape)) or out * 0)
    x = tg.tensor([[1.0, 2.0]])
    assert lin(x).data.abs().sum() == 0 and calls == [(1, 2)]
    post.remove()
    assert torch.allclose(lin(x).data, lin.forward(x * 2).data)
    pre.remove()
    pre.remove()  # a second remove does nothing
    assert torch.allclose(lin(x).data, lin.forward(x).data) and not lin._hooked
    order = []
    lin.register_forward_hook(lambda m, a, o: order.append("a"))
    lin.register_forward_hook(lambda m, a, o: order.append("b"), prepend=True)
    with lin.register_forward_pre_hook(lambda m, a, kw: ((a[0] + 1,), kw), with_kwargs=True):
        lin.register_forward_hook(lambda m, a, kw, o: order.append(kw), with_kwargs=True)
        lin(x)
    assert order == ["b", "a", {}]


def test_forward_hook_gradients_flow_through_the_replaced_output():
    lin = nn.Linear(2, 1)
    lin.register_forward_hook(lambda m, args, out: out * 3)
    with tg.Tape() as tape:
        y = lin(tg.tensor([[1.0, 2.0]])).sum()
    tape.backward(y)
    assert torch.allclose(lin.bias.grad.data, torch.tensor([3.0]))


def test_always_call_hook_runs_when_forward_raises():
    seen = []
    lin = nn.Linear(2, 1)
    lin.register_forward_hook(lambda m, a, o: seen.append(o), always_call=True)
    with pytest.raises(tg.ShapeError):
        lin(tg.tensor([[1.0, 2.0, 3.0]]))
    assert seen == [None]


def test_checkpoint_saves_and_verifies_buffers(tmp_path):
    m = WithBuffers()
    m.mask.mul_(3)
    m.steps += 4
    nn.save(m, tmp_path / "m.safetensors")
    fresh = WithBuffers()
    nn.load(fresh, tmp_path / "m.safetensors")
    assert torch.equal(fresh.mask, m.mask) and fresh.steps.item() == 4
    assert "scratch" not in nn.inspect(tmp_path / "m.safetensors").tensors
