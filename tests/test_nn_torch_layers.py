"""The layers, containers and losses torch users reach for, against torch in float64: same weights
(ported with ``load_state_dict(torch_module.state_dict())``), same outputs and gradients."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from strategies import F64, examples, seeds

import nn
import tapegrad as tg
from tapegrad.engine.errors import IndexShapeError, ShapeError

TOL = dict(rtol=1e-10, atol=1e-10)
TNN = torch.nn


def rand(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=F64)


def ported(ours: nn.Module, ref: TNN.Module) -> nn.Module:
    """``ours`` with ``ref``'s weights, loaded through torch's own state_dict (keys must agree)."""
    ref.double()
    ours.double()
    assert list(ours.state_dict()) == [k for k, v in ref.state_dict().items() if v.is_floating_point()]
    ours.load_state_dict({k: v for k, v in ref.state_dict().items() if k in ours.state_dict()})
    return ours


def assert_parity(ours: nn.Module, ref: TNN.Module, *inputs: torch.Tensor, seed: int = 0) -> None:
    """Outputs and gradients for the float inputs and every parameter agree with torch's."""
    xs = [tg.Tensor(x.clone(), requires_grad=x.is_floating_point()) for x in inputs]
    params = list(ours.parameters())
    with tg.Tape() as tape:
        out = ours(*xs)
    g = torch.randn(out.shape, generator=torch.Generator().manual_seed(seed), dtype=F64)
    float_xs = [x for x in xs if x.requires_grad]
    grads = tape.gradient(out, float_xs + params, grad_output=tg.Tensor(g), allow_unused=True)
    refs = [x.clone().requires_grad_(x.is_floating_point()) for x in inputs]
    ref_out = ref(*refs)
    torch.testing.assert_close(out.data, ref_out.detach(), **TOL)
    ref_sources = [r for r in refs if r.requires_grad] + list(ref.parameters())
    ref_grads = torch.autograd.grad(ref_out, ref_sources, g, allow_unused=True)
    for ours_g, ref_g, src in zip(grads, ref_grads, ref_sources):
        ours_g = torch.zeros_like(src) if ours_g is None else ours_g.data
        ref_g = torch.zeros_like(src) if ref_g is None else ref_g
        torch.testing.assert_close(ours_g, ref_g, **TOL)


LAYERS = {
    "Conv2d": (lambda: nn.Conv2d(3, 4, 3), lambda: TNN.Conv2d(3, 4, 3), (2, 3, 7, 6)),
    "Conv2d strided grouped": (
        lambda: nn.Conv2d(4, 6, (3, 2), stride=2, padding=1, dilation=(1, 2), groups=2),
        lambda: TNN.Conv2d(4, 6, (3, 2), stride=2, padding=1, dilation=(1, 2), groups=2),
        (2, 4, 7, 8),
    ),
    "Conv2d same no bias unbatched": (
        lambda: nn.Conv2d(2, 3, 3, padding="same", bias=False),
        lambda: TNN.Conv2d(2, 3, 3, padding="same", bias=False),
        (2, 5, 5),
    ),
    "MaxPool2d": (lambda: nn.MaxPool2d(2), lambda: TNN.MaxPool2d(2), (2, 3, 6, 7)),
    "MaxPool2d padded": (lambda: nn.MaxPool2d(3, 2, 1), lambda: TNN.MaxPool2d(3, 2, 1), (1, 2, 7, 7)),
    "AvgPool2d": (lambda: nn.AvgPool2d(2), lambda: TNN.AvgPool2d(2), (2, 3, 6, 7)),
    "AvgPool2d ceil": (
        lambda: nn.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False),
        lambda: TNN.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False),
        (1, 2, 6, 6),
    ),
    "LayerNorm": (lambda: nn.LayerNorm(5), lambda: TNN.LayerNorm(5), (3, 4, 5)),
    "LayerNorm 2-D shape no bias": (
        lambda: nn.LayerNorm((4, 5), bias=False),
        lambda: TNN.LayerNorm((4, 5), bias=False),
        (3, 4, 5),
    ),
    "LayerNorm no affine": (
        lambda: nn.LayerNorm(5, elementwise_affine=False),
        lambda: TNN.LayerNorm(5, elementwise_affine=False),
        (3, 5),
    ),
    "LeakyReLU": (lambda: nn.LeakyReLU(0.2), lambda: TNN.LeakyReLU(0.2), (3, 5)),
    "GELU": (lambda: nn.GELU(), lambda: TNN.GELU(), (3, 5)),
    "GELU tanh": (lambda: nn.GELU("tanh"), lambda: TNN.GELU("tanh"), (3, 5)),
    "Softplus": (lambda: nn.Softplus(2.0, 5.0), lambda: TNN.Softplus(2.0, 5.0), (3, 5)),
    "Softmax": (lambda: nn.Softmax(1), lambda: TNN.Softmax(1), (3, 5)),
    "LogSoftmax": (lambda: nn.LogSoftmax(-1), lambda: TNN.LogSoftmax(-1), (3, 5)),
    "Flatten": (lambda: nn.Flatten(), lambda: TNN.Flatten(), (2, 3, 4)),
    "Identity": (lambda: nn.Identity(7, unused=True), lambda: TNN.Identity(7, unused=True), (2, 3)),
    "Dropout eval": (lambda: nn.Dropout(0.3).eval(), lambda: TNN.Dropout(0.3).eval(), (4, 5)),
}


@pytest.mark.parametrize("name", sorted(LAYERS))
@settings(max_examples=examples(5), deadline=None)
@given(seed=seeds)
def test_layer_matches_torch(name, seed):
    make, make_ref, shape = LAYERS[name]
    torch.manual_seed(seed)
    ref = make_ref()
    ours = ported(make(), ref)
    assert_parity(ours, ref, rand(*shape, seed=seed), seed=seed)


def test_embedding_matches_torch_and_padding_idx_gets_no_gradient():
    ref = TNN.Embedding(10, 4, padding_idx=0)
    ours = ported(nn.Embedding(10, 4, padding_idx=0), ref)
    ours.weight.data[0] = 0.5  # a padding row that is not zero: kept in the output, still no gradient
    ref.weight.data[0] = 0.5
    idx = torch.tensor([[0, 3, 9], [3, 0, 1]])
    assert_parity(ours, ref, idx)
    fresh = nn.Embedding(6, 3, padding_idx=-1)
    assert fresh.padding_idx == 5 and not fresh.weight.data[5].any()


def test_dropout_layer_trains_with_a_mask_and_is_off_in_eval():
    layer = nn.Dropout(0.5, generator=torch.Generator().manual_seed(0))
    x = tg.Tensor(torch.ones(100, 20, dtype=F64))
    out = layer(x)
    assert set(out.data.unique().tolist()) == {0.0, 2.0}
    layer.eval()
    assert torch.equal(layer(x).data, x.data)


class TorchBlocks(TNN.Module):
    """A small CNN with a ModuleList and a ModuleDict, the torch reference for porting."""

    def __init__(self):
        super().__init__()
        self.features = TNN.Sequential(TNN.Conv2d(1, 4, 3, padding=1), TNN.ReLU(), TNN.MaxPool2d(2))
        self.blocks = TNN.ModuleList([TNN.Linear(16, 16) for _ in range(2)])
        self.heads = TNN.ModuleDict({"norm": TNN.LayerNorm(16), "out": TNN.Linear(16, 3)})

    def forward(self, x):
        h = self.features(x).flatten(1)
        for block in self.blocks:
            h = torch.tanh(block(h)) + h
        return self.heads["out"](self.heads["norm"](h))


class Blocks(nn.Module):
    """The same model written with tapegrad's nn."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.blocks = nn.ModuleList([nn.Linear(16, 16) for _ in range(2)])
        self.heads = nn.ModuleDict({"norm": nn.LayerNorm(16), "out": nn.Linear(16, 3)})

    def forward(self, x):
        h = self.features(x).flatten(1)
        for block in self.blocks:
            h = block(h).tanh() + h
        return self.heads["out"](self.heads["norm"](h))


def test_a_torch_cnn_with_module_list_and_dict_ports_through_its_state_dict():
    torch.manual_seed(0)
    ref = TorchBlocks()
    ours = ported(Blocks(), ref)
    assert list(ours.state_dict()) == list(ref.state_dict())
    assert_parity(ours, ref, rand(5, 1, 4, 4))


def test_module_list_and_dict_behave_like_python_containers():
    layers = nn.ModuleList([nn.Linear(2, 2), nn.Tanh()])
    layers.append(nn.ReLU())
    layers.insert(0, nn.Identity())
    layers += [nn.Sigmoid()]
    assert [type(m).__name__ for m in layers] == ["Identity", "Linear", "Tanh", "ReLU", "Sigmoid"]
    assert isinstance(layers[-1], nn.Sigmoid) and len(layers[1:3]) == 2
    del layers[0]
    assert list(layers.state_dict()) == ["0.weight", "0.bias"]
    with pytest.raises(IndexError, match="ModuleList index 7 is out of range for 4 modules"):
        layers[7]
    heads = nn.ModuleDict([("a", nn.Linear(2, 1)), ("b", nn.Tanh())])
    heads["c"] = nn.Linear(1, 1)
    assert list(heads) == ["a", "b", "c"] and "b" in heads and len(heads) == 3
    assert list(heads.state_dict()) == ["a.weight", "a.bias", "c.weight", "c.bias"]
    assert isinstance(heads.pop("b"), nn.Tanh) and list(heads.keys()) == ["a", "c"]


# --- losses ------------------------------------------------------------------------------------------
def _probs(*shape, seed=0):
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed), dtype=F64) * 0.9 + 0.05


LABELS = torch.tensor([0, 2, 1, 2, 0])
LOSSES = {
    "BCEWithLogitsLoss": (lambda **k: (nn.BCEWithLogitsLoss(**k), TNN.BCEWithLogitsLoss(**k)), "binary"),
    "BCEWithLogitsLoss pos_weight": (
        lambda **k: (
            nn.BCEWithLogitsLoss(pos_weight=torch.tensor([1.0, 2.0, 0.5], dtype=F64), **k),
            TNN.BCEWithLogitsLoss(pos_weight=torch.tensor([1.0, 2.0, 0.5], dtype=F64), **k),
        ),
        "binary",
    ),
    "BCELoss": (lambda **k: (nn.BCELoss(**k), TNN.BCELoss(**k)), "probabilities"),
    "NLLLoss": (lambda **k: (nn.NLLLoss(**k), TNN.NLLLoss(**k)), "log-probabilities"),
    "NLLLoss weight ignore": (
        lambda **k: (
            nn.NLLLoss(torch.tensor([0.2, 1.0, 3.0], dtype=F64), ignore_index=1, **k),
            TNN.NLLLoss(torch.tensor([0.2, 1.0, 3.0], dtype=F64), ignore_index=1, **k),
        ),
        "log-probabilities",
    ),
    "HuberLoss": (lambda **k: (nn.HuberLoss(delta=0.7, **k), TNN.HuberLoss(delta=0.7, **k)), "regression"),
    "SmoothL1Loss": (lambda **k: (nn.SmoothL1Loss(beta=0.5, **k), TNN.SmoothL1Loss(beta=0.5, **k)), "regression"),
    "SmoothL1Loss beta 0": (
        lambda **k: (nn.SmoothL1Loss(beta=0.0, **k), TNN.SmoothL1Loss(beta=0.0, **k)),
        "regression",
    ),
    "CrossEntropyLoss smoothing": (
        lambda **k: (nn.CrossEntropyLoss(label_smoothing=0.1, **k), TNN.CrossEntropyLoss(label_smoothing=0.1, **k)),
        "classes",
    ),
    "CrossEntropyLoss weight ignore smoothing": (
        lambda **k: (
            nn.CrossEntropyLoss(torch.tensor([0.2, 1.0, 3.0], dtype=F64), ignore_index=2, label_smoothing=0.2, **k),
            TNN.CrossEntropyLoss(torch.tensor([0.2, 1.0, 3.0], dtype=F64), ignore_index=2, label_smoothing=0.2, **k),
        ),
        "classes",
    ),
    "CrossEntropyLoss weight probabilities smoothing": (
        lambda **k: (
            nn.CrossEntropyLoss(torch.tensor([0.2, 1.0, 3.0], dtype=F64), label_smoothing=0.3, **k),
            TNN.CrossEntropyLoss(torch.tensor([0.2, 1.0, 3.0], dtype=F64), label_smoothing=0.3, **k),
        ),
        "soft classes",
    ),
    "CrossEntropyLoss spatial": (lambda **k: (nn.CrossEntropyLoss(**k), TNN.CrossEntropyLoss(**k)), "spatial"),
}


def _loss_inputs(kind: str, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    x = rand(5, 3, seed=seed)
    if kind == "binary":
        return x * 3, (_probs(5, 3, seed=seed + 1) > 0.5).to(F64)
    if kind == "probabilities":
        return _probs(5, 3, seed=seed), _probs(5, 3, seed=seed + 1)
    if kind == "log-probabilities":
        return torch.log_softmax(x, 1), LABELS
    if kind == "classes":
        return x, LABELS
    if kind == "soft classes":
        return x, torch.softmax(rand(5, 3, seed=seed + 1), 1)
    if kind == "spatial":
        return rand(2, 3, 4, 2, seed=seed), torch.tensor([[[0, 1], [2, 2], [1, 0], [0, 0]]] * 2)
    return x, rand(5, 3, seed=seed + 1)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("name", sorted(LOSSES))
def test_loss_matches_torch(name, reduction):
    make, kind = LOSSES[name]
    ours, ref = make(reduction=reduction)
    x, target = _loss_inputs(kind, 0)
    xs = tg.Tensor(x.clone(), requires_grad=True)
    with tg.Tape() as tape:
        loss = ours(xs, target)
    xr = x.clone().requires_grad_()
    ref_loss = ref(xr, target)
    torch.testing.assert_close(loss.data, ref_loss.detach(), **TOL)
    g = torch.randn(loss.shape, generator=torch.Generator().manual_seed(1), dtype=F64)
    (grad,) = tape.gradient(loss, [xs], grad_output=tg.Tensor(g))
    torch.testing.assert_close(grad.data, torch.autograd.grad(ref_loss, xr, g)[0], **TOL)


# --- bad input: named layer and argument, raised before anything changes ----------------------------------
def test_bad_layer_input_names_the_layer_and_argument():
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU())
    expected = r"0 \(Conv2d\) expects input \(N, 1, H, W\) or \(1, H, W\), got \(8, 28, 28\)"
    with pytest.raises(ShapeError, match=expected):
        model(torch.zeros(8, 28, 28))
    emb = nn.Embedding(10, 3)
    before = emb.weight.data.clone()
    with tg.Tape():
        with pytest.raises(IndexShapeError, match=r"Embedding: indices must lie in \[0, 9\].*got values in \[0, 12\]"):
            emb(torch.tensor([0, 12]))
    assert torch.equal(emb.weight.data, before)
    with pytest.raises(ValueError, match="Dropout: p must be a probability between 0 and 1, got 1.5"):
        nn.Dropout(p=1.5)
    with pytest.raises(ShapeError, match=r"LayerNorm expects inputs ending in \(4,\), got \(2, 3\)"):
        nn.LayerNorm(4)(torch.zeros(2, 3))
    with pytest.raises(ValueError, match="Conv2d: in_channels .* must be divisible by groups"):
        nn.Conv2d(3, 4, 3, groups=2)
    with pytest.raises(ShapeError, match=r"MaxPool2d expects input \(N, C, H, W\) or \(C, H, W\), got \(4,\)"):
        nn.MaxPool2d(2)(torch.zeros(4))
    with pytest.raises(ValueError, match=r"CrossEntropyLoss: class indices must lie in \[0, 2\]"):
        nn.CrossEntropyLoss(label_smoothing=0.1)(torch.zeros(2, 3), torch.tensor([0, 5]))
    with pytest.raises(ShapeError, match=r"BCEWithLogitsLoss: target shape \(3,\) differs from input shape \(2,\)"):
        nn.BCEWithLogitsLoss()(torch.zeros(2), torch.zeros(3))
