"""Checkpoint fault injection: truncation at every byte, single-bit flips, hand-edited headers and
metadata, a crash between the temporary write and the rename. Every fault is refused with a
`nn.SerializationError` and leaves the model, the optimizer and the file on disk as they were."""

import hashlib
import json
import os
import signal
import struct
import subprocess
import sys

import pytest
import torch
from safetensors.torch import save_file

import nn
import tapegrad as tg
from nn.serialization_atomic import settle

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def small():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 2), nn.Tanh(), nn.Linear(2, 1))
    opt = nn.SGD(model.parameters(), lr=0.1, momentum=0.9)
    with tg.Tape() as tape:
        loss = (model(torch.randn(4, 2)) ** 2).mean()
    tape.backward(loss)
    opt.step()
    return model, opt


def state(model, opt):
    """Everything a load could change, copied."""
    params = [p.data.clone() for p in model.parameters()]
    groups = [{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups]
    buffers = {i: {k: v.clone() for k, v in s.items()} for i, s in enumerate(opt.state.values())}
    return params, groups, buffers


def same(a, b):
    (pa, ga, ba), (pb, gb, bb) = a, b
    return (
        all(torch.equal(x, y) for x, y in zip(pa, pb))
        and ga == gb
        and ba.keys() == bb.keys()
        and all(torch.equal(ba[i][k], bb[i][k]) for i in ba for k in ba[i])
    )


@pytest.fixture
def saved(tmp_path):
    """A checkpoint of one model, and a second model and optimizer (different values) to load into."""
    model, opt = small()
    path = tmp_path / "small.safetensors"
    nn.save(model, path, opt)
    torch.manual_seed(1)
    target = nn.Sequential(nn.Linear(2, 2), nn.Tanh(), nn.Linear(2, 1))
    target_opt = nn.SGD(target.parameters(), lr=0.5, momentum=0.5)
    return path, path.read_bytes(), target, target_opt


def refused(path, data, model, opt):
    """Write ``data``, load it: a SerializationError, nothing changed, the file untouched."""
    with open(path, "r+b") as f:  # rewriting in place is much faster than a fresh file on some disks
        f.write(data)
        f.truncate()
    before = state(model, opt)
    with pytest.raises(nn.SerializationError) as info:
        nn.load(model, path, opt)
    assert same(before, state(model, opt))
    assert path.read_bytes() == data
    return str(info.value)


def test_the_good_file_loads(saved):
    path, blob, model, opt = saved
    nn.load(model, path, opt)
    original, _ = small()
    assert all(torch.equal(p.data, q.data) for p, q in zip(model.parameters(), original.parameters()))
    assert nn.inspect(path).checksums == "verified"


def test_truncation_at_every_byte_is_refused(saved):
    path, blob, model, opt = saved
    assert len(blob) < 4000  # small enough to try every cut
    for cut in range(len(blob)):
        message = refused(path, blob[:cut], model, opt)
        assert "truncated" in message or "corrupt" in message, (cut, message)


def _flips(blob, start, stop, every_bit=True):
    for i in range(start, stop):
        for bit in range(8) if every_bit else [i % 8]:
            data = bytearray(blob)
            data[i] ^= 1 << bit
            yield i, bit, bytes(data)


def test_single_bit_flips_in_the_header_are_refused(saved):
    path, blob, model, opt = saved
    (header_len,) = struct.unpack("<Q", blob[:8])
    # every bit of the length, then one bit of every header byte (each bit position in turn)
    flips = [*_flips(blob, 0, 8), *_flips(blob, 8, 8 + header_len, every_bit=False)]
    for i, bit, data in flips:
        message = refused(path, data, model, opt)
        assert "corrupt" in message or "truncated" in message or "unsupported" in message or "match" in message, (
            i,
            bit,
            message,
        )


def test_every_single_bit_flip_in_the_data_names_the_tensor(saved):
    path, blob, model, opt = saved
    (header_len,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8 : 8 + header_len])
    start = 8 + header_len
    for i, _bit, data in _flips(blob, start, len(blob)):
        message = refused(path, data, model, opt)
        offset = i - start
        name = next(
            k
            for k, v in header.items()
            if k != "__metadata__" and v["data_offsets"][0] <= offset < v["data_offsets"][1]
        )
        assert f"{name!r} changed since they were saved" in message, message
        assert nn.inspect(path).checksums == f"mismatch: {name}"


def test_a_crash_before_the_rename_keeps_the_old_file(saved, monkeypatch):
    path, blob, model, opt = saved

    def crash(*args):
        raise KeyboardInterrupt("power cut")

    monkeypatch.setattr("nn.serialization.os.replace", crash)
    with pytest.raises(KeyboardInterrupt):
        nn.save(model, path, opt)
    monkeypatch.undo()
    assert path.read_bytes() == blob
    settle()
    assert os.listdir(path.parent) == [path.name]


def test_a_killed_save_leaves_a_temporary_that_the_next_save_removes(saved):
    path, blob, model, opt = saved
    script = (
        "import os, signal, nn\n"
        "nn.serialization.os.replace = lambda *a: os.kill(os.getpid(), signal.SIGKILL)\n"
        f"nn.save(nn.Sequential(nn.Linear(2, 2), nn.Tanh(), nn.Linear(2, 1)), {str(path)!r})\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True)
    assert done.returncode == -signal.SIGKILL, done.stderr.decode()
    assert path.read_bytes() == blob  # the target is the old checkpoint
    leftovers = sorted(n for n in os.listdir(path.parent) if n != path.name)
    # the temporary, and the second name that kept the old file across the rename
    assert [n.rsplit(".", 1)[1] for n in leftovers] == ["old", "tmp"]
    assert all(n.startswith(f".{path.name}.") for n in leftovers)
    other = path.parent / "other.safetensors.tmp"
    other.write_bytes(b"not ours")  # a file of another name is left alone
    nn.save(model, path, opt)
    settle()  # the file this save replaced is deleted on a helper thread
    assert sorted(os.listdir(path.parent)) == sorted([path.name, other.name])


# --- hand-edited headers: each a SerializationError naming what is wrong ------------------------------
def _raw(header, data=b""):
    text = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + data


def _parts(blob):
    (n,) = struct.unpack("<Q", blob[:8])
    return json.loads(blob[8 : 8 + n]), blob[8 + n :]


def _entry(header, edit):
    header = dict(header)
    name = "0.weight"
    header[name] = dict(header[name])
    edit(header[name])
    return header


HEADERS = [
    ("offsets of 1e400", lambda h, d: _raw(_entry(h, lambda e: e.update(data_offsets=[0, 1e400])), d), "'0.weight'"),
    ("negative shape", lambda h, d: _raw(_entry(h, lambda e: e.update(shape=[-2, 2])), d), "'0.weight'"),
    ("unknown dtype", lambda h, d: _raw(_entry(h, lambda e: e.update(dtype="F99")), d), "unknown dtype"),
    ("missing field", lambda h, d: _raw(_entry(h, lambda e: e.pop("shape")), d), "'0.weight'"),
    ("entry not an object", lambda h, d: _raw({**h, "0.weight": [1, 2]}, d), "'0.weight'"),
    ("overlapping offsets", lambda h, d: _raw(_entry(h, lambda e: e.update(data_offsets=[0, 16])), d), "'0.weight'"),
    ("100000 nested arrays", lambda h, d: _raw(b"[" * 100_000 + b"]" * 100_000, d), "unreadable"),
    ("header is an array", lambda h, d: _raw([1, 2, 3], d), "not an object"),
    ("header is not UTF-8", lambda h, d: _raw(b'{"\xff": 1}', d), "unreadable"),
    ("huge header length", lambda h, d: struct.pack("<Q", 2**63) + b"{}", "header of"),
    ("trailing bytes", lambda h, d: _raw(h, d + b"\0" * 8), "after the last tensor"),
    ("metadata not strings", lambda h, d: _raw({**h, "__metadata__": {"tapegrad": 5}}, d), "__metadata__"),
    ("metadata edited", lambda h, d: _raw({**h, "__metadata__": {**h["__metadata__"], "tapegrad": "{}"}}, d),
     "checksum"),  # fmt: skip
    ("metadata checksum removed",
     lambda h, d: _raw({**h, "__metadata__": {"tapegrad": h["__metadata__"]["tapegrad"]}}, d), "checksum"),
]  # fmt: skip


@pytest.mark.parametrize("make, fragment", [row[1:] for row in HEADERS], ids=[row[0] for row in HEADERS])
def test_hand_corrupted_headers(saved, make, fragment):
    path, blob, model, opt = saved
    header, data = _parts(blob)
    message = refused(path, make(header, data), model, opt)
    assert fragment in message


def _resigned(blob, edit):
    """The file with its tapegrad metadata edited and signed again: only the schema check can object."""
    header, data = _parts(blob)
    meta = json.loads(header["__metadata__"]["tapegrad"])
    edit(meta, header)
    text = json.dumps(meta)
    header["__metadata__"] = {"tapegrad": text, "tapegrad.sha256": hashlib.sha256(text.encode()).hexdigest()}
    return _raw(header, data)


def _rename_state(meta, header, old, new):
    header[new] = header.pop(old)
    meta["tensors"][new] = meta["tensors"].pop(old)


def _group(**changes):
    return lambda meta, header: meta["optimizer"]["param_groups"][0].update(changes)


METADATA = [
    ("state for parameter 99", lambda m, h: _rename_state(m, h, "optimizer.state.0.momentum_buffer",
                                                          "optimizer.state.99.momentum_buffer"), "parameter 99"),
    ("state key without an index", lambda m, h: _rename_state(m, h, "optimizer.state.0.momentum_buffer",
                                                               "optimizer.state.x.momentum_buffer"), "<index>"),
    ("lr a string", _group(lr="abc"), "param_groups[0].lr is 'abc'"),
    ("lr negative", _group(lr=-1.0), "invalid learning rate"),
    ("lr NaN", _group(lr=float("nan")), "invalid learning rate"),
    ("momentum NaN", _group(momentum=float("nan")), "invalid momentum"),
    ("nesterov a number", _group(nesterov=1), "nesterov"),
    ("unknown hyperparameter", _group(colour="red"), "colour"),
    ("missing hyperparameter", lambda m, h: m["optimizer"]["param_groups"][0].pop("momentum"), "lacks momentum"),
    ("duplicate indices", _group(params=[0, 0, 1, 2]), "once each"),
    ("indices not ints", _group(params=["0", 1, 2, 3]), "param_groups[0].params"),
    ("param_groups a dict", lambda m, h: m["optimizer"].update(param_groups={}), "param_groups"),
    ("class missing", lambda m, h: m["optimizer"].pop("class"), "class"),
    ("extra for a missing parameter", lambda m, h: m["optimizer"].update(extra={"7": {"a": 1}}), "extra['7']"),
    ("tensor table wrong", lambda m, h: m["tensors"].pop("0.bias"), "'tensors'"),
    ("another format", lambda m, h: m.update(format="other"), "unsupported checkpoint format"),
    ("another version", lambda m, h: m.update(version=99), "unsupported checkpoint format"),
]  # fmt: skip


@pytest.mark.parametrize("edit, fragment", [row[1:] for row in METADATA], ids=[row[0] for row in METADATA])
def test_metadata_that_breaks_the_schema_is_refused(saved, edit, fragment):
    path, blob, model, opt = saved
    message = refused(path, _resigned(blob, edit), model, opt)
    assert fragment in message


def test_int_tensors_into_float_parameters_need_strict_false(tmp_path):
    path = tmp_path / "ints.safetensors"
    save_file({"weight": torch.ones(2, 2, dtype=torch.int64), "bias": torch.zeros(2, dtype=torch.bool)}, path)
    lin = nn.Linear(2, 2)
    before = [p.data.clone() for p in lin.parameters()]
    with pytest.raises(nn.SerializationError, match=r"integer or bool tensors for float parameters: weight") as info:
        nn.load(lin, path)
    assert "bias" in str(info.value)
    assert all(torch.equal(p.data, b) for p, b in zip(lin.parameters(), before))
    nn.load(lin, path, strict=False)
    assert lin.weight.dtype == torch.float32 and torch.equal(lin.weight.data, torch.ones(2, 2))


def test_plain_safetensors_load_with_checksums_absent(tmp_path):
    path = tmp_path / "plain.safetensors"
    save_file({"weight": torch.full((2, 2), 3.0), "bias": torch.zeros(2)}, path)
    info = nn.inspect(path)
    assert info.checksums == "absent" and info.module is None and info.optimizer is None
    assert info.tensors == {"weight": ((2, 2), torch.float32), "bias": ((2,), torch.float32)}
    lin = nn.Linear(2, 2)
    nn.load(lin, path)
    assert torch.equal(lin.weight.data, torch.full((2, 2), 3.0))
    with pytest.raises(nn.SerializationError, match="no optimizer state"):
        nn.load(lin, path, nn.SGD(lin.parameters(), lr=0.1))


def test_strict_false_skips_missing_and_unexpected_names(tmp_path):
    path = tmp_path / "part.safetensors"
    save_file({"weight": torch.full((2, 2), 3.0), "extra": torch.zeros(1)}, path)
    lin = nn.Linear(2, 2)
    bias = lin.bias.data.clone()
    with pytest.raises(nn.SerializationError, match="missing from the file: bias; unexpected in the file: extra"):
        nn.load(lin, path)
    nn.load(lin, path, strict=False)
    assert torch.equal(lin.weight.data, torch.full((2, 2), 3.0)) and torch.equal(lin.bias.data, bias)


def test_inspect_lists_names_shapes_dtypes_and_optimizer(saved):
    path, blob, model, opt = saved
    info = nn.inspect(path)
    assert info.module == "Sequential" and info.optimizer["class"] == "SGD"
    assert info.tensors["0.weight"] == ((2, 2), torch.float32)
    assert info.tensors["optimizer.state.0.momentum_buffer"] == ((2, 2), torch.float32)
    assert info.optimizer["param_groups"][0]["momentum"] == 0.9
    text = str(info)
    assert "checksums verified" in text and "0.weight" in text and "SGD" in text


def test_version_1_files_load_with_checksums_absent(tmp_path):
    path = tmp_path / "v1.safetensors"
    meta = {"format": "tapegrad-checkpoint", "version": 1, "module": "Linear"}
    save_file({"weight": torch.full((2, 2), 2.0), "bias": torch.ones(2)}, path, metadata={"tapegrad": json.dumps(meta)})
    assert nn.inspect(path).checksums == "absent" and nn.inspect(path).module == "Linear"
    lin = nn.Linear(2, 2)
    nn.load(lin, path)
    assert torch.equal(lin.weight.data, torch.full((2, 2), 2.0))
