"""`nn.save` / `nn.load` of many small tensors: the load's check and its reads cover many tensors
per system call (consecutive in the file), and still hash, restore and report every tensor apart."""

import os
import zlib

import pytest
import torch

import nn
import nn.serialization_checksum as checksum
from nn.serialization_checksum import file_digests, read_at
from nn.serialization_format import read_checkpoint


def small_model():
    torch.manual_seed(0)
    layers = [nn.Linear(0 if i == 9 else 7 + i, 5 + i % 3) for i in range(20)]  # 40 tensors, one of them empty
    return nn.Sequential(*layers)


def saved(tmp_path):
    model = small_model()
    path = tmp_path / "m.safetensors"
    nn.save(model, path)
    return model, path


def counting_preadv(monkeypatch):
    calls = []
    real = os.preadv

    def spy(fd, views, position):
        calls.append(len(views))
        return real(fd, views, position)

    monkeypatch.setattr(checksum.os, "preadv", spy)
    return calls


@pytest.mark.parametrize("threads", [1, 3])
def test_the_check_hashes_every_small_tensor_apart_with_few_reads(tmp_path, monkeypatch, threads):
    model, path = saved(tmp_path)
    expected = {k: f"{zlib.crc32(v.numpy().tobytes()):08x}" for k, v in model.state_dict().items()}
    calls = counting_preadv(monkeypatch)
    with read_checkpoint(path) as ckpt:
        ranges = {n: (ckpt.data_start + e.begin, ckpt.data_start + e.end) for n, e in ckpt.entries.items()}
        calls.clear()
        assert file_digests(ckpt.file, "crc32", ranges, threads) == expected
        assert len(calls) <= threads  # 40 tensors in a few KB: one read per piece of work
        assert file_digests(ckpt.file, "crc32", {"b": ranges["3.bias"], "w": ranges["0.weight"]}) == {
            "b": expected["3.bias"], "w": expected["0.weight"]}  # fmt: skip


def test_a_load_reads_many_tensors_per_call_and_restores_each(tmp_path, monkeypatch):
    model, path = saved(tmp_path)
    fresh = small_model()
    with torch.no_grad():
        for p in fresh.parameters():
            p.data.zero_()
    calls = counting_preadv(monkeypatch)
    nn.load(fresh, path)
    assert max(calls) == 39 and len(calls) <= 3  # the header, the check, the reads (every non-empty tensor)
    assert all(torch.equal(a, b) for a, b in zip(fresh.state_dict().values(), model.state_dict().values()))


def test_a_read_into_several_views_survives_short_reads_and_empty_views(tmp_path, monkeypatch):
    path = tmp_path / "data.bin"
    data = bytes(range(256)) * 4
    path.write_bytes(data)
    real = os.preadv
    monkeypatch.setattr(checksum.os, "preadv", lambda fd, views, at: real(fd, [views[0][:3]], at))  # 3 bytes a call
    views = [memoryview(bytearray(n)) for n in (5, 0, 1, 300, 0, 7)]
    with open(path, "rb", buffering=0) as f:
        assert read_at(f, 11, views) == 313
        assert b"".join(bytes(v) for v in views) == data[11:324]
        tail = [memoryview(bytearray(10)), memoryview(bytearray(10))]
        assert read_at(f, len(data) - 12, tail) == 12  # the file ends inside the second view


def test_a_cut_inside_a_batch_names_the_first_tensor_it_cut(tmp_path):
    model, path = saved(tmp_path)
    with read_checkpoint(path) as ckpt:
        order = sorted(ckpt.entries.values(), key=lambda e: e.begin)
        cut = order[17]
        os.truncate(path, ckpt.data_start + cut.begin + 3)
        later = [e.name for e in order[17:]]
        assert sorted(ckpt.bad_checksums()) == sorted(later)
        with pytest.raises(nn.SerializationError, match=f"the file ended inside tensor '{cut.name}'"):
            ckpt.read_all({n: torch.empty(e.shape) for n, e in ckpt.entries.items()})
