"""Checkpoints: safetensors round trip of model and optimizer, atomic writes, refused files."""

import json
import os
import stat
import struct

import pytest
import torch
from safetensors.torch import load_file

import nn
import tapegrad as tg


def net():
    return nn.Sequential(nn.Linear(2, 5), nn.Tanh(), nn.Linear(5, 2))


def train(model, opt, steps, seed):
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        x, y = torch.randn(8, 2, generator=g), torch.randint(0, 2, (8,), generator=g)
        with tg.Tape() as tape:
            loss = nn.CrossEntropyLoss()(model(x), y)
        tape.backward(loss)
        opt.step()
        opt.zero_grad()


@pytest.mark.parametrize("make_opt", [
    lambda p: nn.Adam(p, lr=0.01, betas=(0.8, 0.9), amsgrad=True),
    lambda p: nn.SGD(p, lr=0.1, momentum=0.9, nesterov=True),
], ids=["Adam", "SGD"])  # fmt: skip
def test_round_trip_resumes_training_exactly(tmp_path, make_opt):
    path = tmp_path / "model.safetensors"
    torch.manual_seed(0)
    model = net()
    opt = make_opt(model.parameters())
    train(model, opt, 10, seed=1)
    nn.save(model, path, opt)
    stored = load_file(path)  # a plain safetensors file
    assert torch.equal(stored["0.weight"], model[0].weight.data)
    torch.manual_seed(1)
    copy = net()
    copy_opt = make_opt(copy.parameters())
    copy_opt.param_groups[0]["lr"] = 5.0
    nn.load(copy, path, copy_opt)
    assert copy_opt.param_groups[0]["lr"] == opt.param_groups[0]["lr"]
    assert all(torch.equal(p.data, q.data) for p, q in zip(copy.parameters(), model.parameters()))
    train(model, opt, 10, seed=2)
    train(copy, copy_opt, 10, seed=2)
    assert all(torch.equal(p.data, q.data) for p, q in zip(copy.parameters(), model.parameters()))


def test_model_only_round_trip_and_no_pickle(tmp_path):
    path = tmp_path / "m.safetensors"
    model = net()
    nn.save(model, str(path))
    other = net()
    nn.load(other, path)
    assert all(torch.equal(p.data, q.data) for p, q in zip(other.parameters(), model.parameters()))
    blob = path.read_bytes()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8 : 8 + n])
    assert json.loads(header["__metadata__"]["tapegrad"])["module"] == "Sequential"
    assert b"\x80\x04" not in blob[: 8 + n]  # no pickle stream in the header
    with pytest.raises(nn.SerializationError, match="no optimizer state"):
        nn.load(other, path, nn.SGD(other.parameters(), lr=0.1))


def test_interrupted_write_leaves_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.safetensors"
    model = net()
    nn.save(model, path)
    old = path.read_bytes()

    def crash(*args):
        raise KeyboardInterrupt("power cut")

    monkeypatch.setattr("nn.serialization.os.replace", crash)
    changed = net()
    with pytest.raises(KeyboardInterrupt):
        nn.save(changed, path)
    assert path.read_bytes() == old
    assert os.listdir(tmp_path) == ["ckpt.safetensors"]  # no temporary file left behind
    monkeypatch.undo()
    restored = net()
    nn.load(restored, path)
    assert all(torch.equal(p.data, q.data) for p, q in zip(restored.parameters(), model.parameters()))


def test_truncated_and_corrupt_files_are_refused(tmp_path):
    path = tmp_path / "c.safetensors"
    model = net()
    nn.save(model, path, nn.Adam(model.parameters()))
    blob = path.read_bytes()
    before = [p.data.clone() for p in model.parameters()]
    for cut in (4, 40, len(blob) - 3):
        path.write_bytes(blob[:cut])
        with pytest.raises(nn.SerializationError, match="truncated"):
            nn.load(model, path)
    (n,) = struct.unpack("<Q", blob[:8])
    path.write_bytes(blob[:8] + b"{" + b"x" * (n - 1) + blob[8 + n :])
    with pytest.raises(nn.SerializationError, match="corrupt"):
        nn.load(model, path)
    assert all(torch.equal(p.data, b) for p, b in zip(model.parameters(), before))


def test_mismatched_files_say_what_differs(tmp_path):
    path = tmp_path / "m.safetensors"
    nn.save(net(), path)
    wider = nn.Sequential(nn.Linear(2, 6), nn.Tanh(), nn.Linear(6, 2))
    with pytest.raises(nn.SerializationError, match=r"shape mismatch for 0\.weight: file \(5, 2\), model \(6, 2\)"):
        nn.load(wider, path)
    deeper = nn.Sequential(nn.Linear(2, 5), nn.Tanh(), nn.Linear(5, 2), nn.Tanh(), nn.Linear(2, 2))
    with pytest.raises(nn.SerializationError, match=r"missing from the file: 4\.weight, 4\.bias"):
        nn.load(deeper, path)
    shallow = nn.Sequential(nn.Linear(2, 5))
    with pytest.raises(nn.SerializationError, match=r"unexpected in the file: 2\.bias, 2\.weight"):
        nn.load(shallow, path)
    model = net()
    nn.save(model, path, nn.Adam(model.parameters()))
    with pytest.raises(nn.SerializationError, match="for Adam, not SGD"):
        nn.load(model, path, nn.SGD(model.parameters(), lr=0.1))
    with pytest.raises(nn.SerializationError, match="groups differ"):
        nn.load(model, path, nn.Adam(list(model.parameters())[:2]))


def test_saved_file_has_ordinary_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        path = tmp_path / "perm.safetensors"
        nn.save(nn.Linear(2, 2), path)
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o644
    finally:
        os.umask(old)
