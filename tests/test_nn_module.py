"""nn.Module and nn.Parameter: registration, traversal, modes, state dicts, scopes, repr."""

import pytest
import torch

import nn
import tapegrad as tg
from tapegrad.engine import state


def seed_net():
    return nn.Sequential(
        nn.Linear(2, 25), nn.ReLU(), nn.Linear(25, 25), nn.ReLU(), nn.Linear(25, 25), nn.ReLU(), nn.Linear(25, 2)
    )


def torch_seed_net():
    L = torch.nn.Linear
    R = torch.nn.ReLU
    return torch.nn.Sequential(L(2, 25), R(), L(25, 25), R(), L(25, 25), R(), L(25, 2))


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(3, 4), nn.Tanh())
        self.head = nn.Linear(4, 1)
        self.scale = nn.Parameter(torch.ones(1))
        self.note = "plain attribute"

    def forward(self, x):
        return self.head(self.encoder(x)) * self.scale


def test_parameter_is_a_tensor_that_requires_grad():
    p = nn.Parameter(torch.zeros(3))
    assert isinstance(p, tg.Tensor)
    assert p.requires_grad
    assert not nn.Parameter(torch.zeros(3), requires_grad=False).requires_grad
    assert repr(p).startswith("Parameter containing:")


def test_named_parameters_use_torchs_dotted_names():
    ours, ref = seed_net(), torch_seed_net()
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in ref.named_parameters()]
    assert [tuple(p.shape) for p in ours.parameters()] == [tuple(p.shape) for p in ref.parameters()]
    block = Block()
    names = [n for n, _ in block.named_parameters()]
    assert names == ["scale", "encoder.0.weight", "encoder.0.bias", "head.weight", "head.bias"]
    assert block.note == "plain attribute"


def test_shared_parameters_and_modules_are_listed_once():
    lin = nn.Linear(3, 3)
    model = nn.Sequential(lin, nn.Tanh(), lin)
    assert len(list(model.parameters())) == 2
    assert len(list(model.modules())) == 3


def test_modules_children_and_modes():
    block = Block()
    assert [type(m).__name__ for m in block.children()] == ["Sequential", "Linear"]
    assert [n for n, _ in block.named_modules()] == ["", "encoder", "encoder.0", "encoder.1", "head"]
    assert all(m.training for m in block.modules())
    assert block.eval() is block
    assert not any(m.training for m in block.modules())
    block.train()
    assert all(m.training for m in block.modules())


def test_repr_matches_torch():
    assert repr(seed_net()) == repr(torch_seed_net())
    assert repr(nn.Linear(3, 1, bias=False)) == repr(torch.nn.Linear(3, 1, bias=False))


def test_sequential_indexing_len_iteration():
    model = seed_net()
    assert len(model) == 7
    assert isinstance(model[0], nn.Linear) and isinstance(model[-1], nn.Linear)
    assert [type(m).__name__ for m in model][:2] == ["Linear", "ReLU"]
    assert len(model[:3]) == 3
    with pytest.raises(IndexError):
        model[7]


def test_zero_grad_clears_or_zeroes():
    model = nn.Linear(2, 2)
    with tg.Tape() as tape:
        loss = model(torch.ones(1, 2)).sum()
    tape.backward(loss)
    assert model.weight.grad is not None
    model.zero_grad(set_to_none=False)
    assert torch.equal(model.weight.grad.data, torch.zeros(2, 2))
    model.zero_grad()
    assert model.weight.grad is None and model.bias.grad is None


def test_state_dict_round_trip_with_torch():
    ref = torch_seed_net().double()
    ours = seed_net().double()
    ours.load_state_dict(ref.state_dict())
    for (n, p), (m, q) in zip(ours.named_parameters(), ref.named_parameters()):
        assert n == m and torch.equal(p.data, q.detach())
    ref2 = torch_seed_net().double()
    ref2.load_state_dict(ours.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(ref2.state_dict().values(), ref.state_dict().values()))


def test_load_state_dict_errors_are_torchs_runtime_errors():
    model, ref = seed_net(), torch_seed_net()
    before = model[0].weight.data.clone()
    sd = dict(model.state_dict())
    missing = {k: v for k, v in sd.items() if k != "2.bias"}
    extra = {**sd, "9.weight": torch.zeros(1)}
    bad = {**sd, "0.weight": torch.zeros(25, 3)}
    for given in (missing, extra, bad, {**bad, "9.weight": torch.zeros(1)}):
        with pytest.raises(RuntimeError) as theirs:
            ref.load_state_dict(given)
        with pytest.raises(RuntimeError) as ours:
            model.load_state_dict(given)
        assert str(ours.value) == str(theirs.value)
    assert torch.equal(model[0].weight.data, before)  # nothing changed on error
    result = model.load_state_dict(missing, strict=False)
    assert result.missing_keys == ["2.bias"] and result.unexpected_keys == []
    assert repr(model.load_state_dict(sd)) == "<All keys matched successfully>"
    with pytest.raises(TypeError, match="dict-like"):
        model.load_state_dict([1, 2])


def test_records_carry_module_scopes():
    model = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Sequential(nn.Linear(3, 3), nn.Tanh()))
    with tg.Tape() as tape:
        model(torch.randn(4, 2))
    scopes = [(r.primitive.name, r.scope.path, r.scope.type_name) for r in tape]
    assert scopes == [
        ("linear", "0", "Linear"),
        ("relu", "1", "ReLU"),
        ("linear", "2.0", "Linear"),
        ("tanh", "2.1", "Tanh"),
    ]
    assert tape.records[2].scope.parent.path == "2"
    block = Block()
    with tg.Tape() as tape:
        block(torch.randn(2, 3))
    paths = [r.scope.path for r in tape]
    assert paths[:3] == ["encoder.0", "encoder.1", "head"] and set(paths[3:]) == {""}  # "" is the root


class Doubler(nn.Module):
    def __init__(self):
        super().__init__()
        self.inner = nn.Linear(2, 2)

    def forward(self, x):
        h = self.inner(x)  # Doubler-inner
        return h * 2  # Doubler-mul


class ScaledLinear(nn.Linear):  # a user's subclass: its own lines, not the caller's
    def forward(self, x):
        return super().forward(x) * 3  # ScaledLinear-mul


def _line(marker):
    return next(i for i, text in enumerate(open(__file__).read().splitlines(), 1) if text.endswith(f"# {marker}"))


def test_records_name_the_users_line_through_library_and_user_modules():
    overridden = nn.Linear(2, 2)
    overridden.forward = lambda x: tg.tanh(x)  # instance-forward
    model = nn.Sequential(nn.Linear(2, 2), nn.Sequential(nn.ReLU(), Doubler()), ScaledLinear(2, 2), overridden)
    with tg.Tape() as tape:
        loss = model(torch.randn(3, 2)).sum()  # the-call
    sites = [(r.primitive.name, int(r.call_site.split(":")[1].split()[0])) for r in tape]
    assert all("test_nn_module.py" in r.call_site for r in tape)
    assert sites == [
        ("linear", _line("the-call")),  # library modules: the user's line that called the model
        ("relu", _line("the-call")),
        ("linear", _line("Doubler-inner")),  # a library module inside a user's forward: that line
        ("mul", _line("Doubler-mul")),
        ("linear", _line("ScaledLinear-mul")),  # a user's subclass of a library module
        ("mul", _line("ScaledLinear-mul")),
        ("tanh", _line("instance-forward")),  # a forward replaced on a library instance
        ("sum", _line("the-call")),
    ]
    assert loss.shape == ()


def test_wrong_width_names_module_path_and_widths():
    model = seed_net()
    with pytest.raises(ValueError, match=r"0 \(Linear\) expects inputs with 2 features.* got 3"):
        model(torch.randn(5, 3))
    deep = nn.Sequential(nn.Linear(2, 4), nn.Sequential(nn.ReLU(), nn.Linear(5, 1)))
    with pytest.raises(ValueError, match=r"1\.1 \(Linear\) expects inputs with 5 features.* got 4"):
        deep(torch.randn(1, 2))
    assert state.current().scope is None  # the scope is restored after the error


def test_assignment_before_super_init_is_explained():
    class Broken(nn.Module):
        def __init__(self):
            self.lin = nn.Linear(1, 1)

    with pytest.raises(AttributeError, match="super"):
        Broken()


def test_to_double_keeps_parameter_identity():
    model = nn.Linear(2, 2)
    weight = model.weight
    model.double()
    assert model.weight is weight and weight.dtype == torch.float64
