"""`nn.save` streams: each tensor is hashed (CRC-32) and written from a view of itself, never copied whole;
`nn.load` checks chunk by chunk and reads straight into the parameters; files of the previous format
(SHA-256 per tensor) still load."""

import subprocess
import sys
import textwrap
import zlib
from pathlib import Path

import pytest
import torch

import nn
from nn.serialization_checksum import CHECK_CHUNK, CHUNK, crc32, tensor_bytes
from nn.serialization_format import read_checkpoint


def test_tensor_bytes_is_a_view_of_a_contiguous_tensor():
    t = torch.arange(12, dtype=torch.float64).reshape(3, 4)
    view = tensor_bytes(t)
    assert view.nbytes == t.numel() * 8
    t[0, 0] = 7.0  # shared memory: the view sees the change
    assert bytes(view[:8]) == bytes(torch.tensor([7.0], dtype=torch.float64).numpy().tobytes())


def test_tensor_bytes_of_strided_and_odd_dtypes_match_their_contiguous_bytes():
    for t in (torch.arange(12.0).reshape(3, 4).T, torch.ones(3, dtype=torch.bfloat16), torch.tensor([True, False])):
        flat = t.contiguous().reshape(-1)
        expected = flat.view(torch.uint8).numpy().tobytes() if flat.dtype != torch.bool else flat.numpy().tobytes()
        assert bytes(tensor_bytes(t)) == expected
    assert tensor_bytes(torch.empty(0, 3)).nbytes == 0


def test_saved_checksums_are_the_crc32_of_each_tensor(tmp_path):
    model = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    nn.save(model, tmp_path / "m.safetensors")
    with read_checkpoint(tmp_path / "m.safetensors") as ckpt:
        pass
    assert ckpt.meta is not None and ckpt.meta["version"] == 3 and ckpt.algorithm == "crc32"
    for name, t in model.state_dict().items():
        assert ckpt.checksums[name] == f"{zlib.crc32(t.numpy().tobytes()):08x}"
    assert ckpt.data_start % 8 == 0  # the data section is aligned as safetensors aligns it


def test_crc32_is_zlibs_value_whichever_module_computes_it():
    data = memoryview(torch.arange(300_000, dtype=torch.int32).view(torch.uint8).numpy())
    assert crc32(data) == zlib.crc32(data) and crc32(data[7:], 5) == zlib.crc32(data[7:], 5)


def test_checksums_span_chunks_and_every_flipped_byte_is_caught(tmp_path):
    # tensors of several chunks each (hashed chunk by chunk on save and load) and a small one
    model = nn.Sequential(nn.Linear(1000, 700), nn.Linear(700, 300, bias=False))
    assert model[0].weight.numel() * 4 > 2 * CHUNK
    path = tmp_path / "m.safetensors"
    nn.save(model, path)
    with read_checkpoint(path) as ckpt:
        for name, t in model.state_dict().items():
            assert ckpt.checksums[name] == f"{zlib.crc32(t.numpy().tobytes()):08x}"
        assert ckpt.bad_checksums() == []
    blob = bytearray(path.read_bytes())
    start, first = ckpt.data_start, ckpt.entries["0.weight"]
    across = start + first.begin + CHUNK  # the first byte of the weight's second chunk, and the one before
    checked = start + first.begin + CHECK_CHUNK  # the same for the load's check, which reads smaller chunks
    offsets = [start, checked - 1, checked, across - 1, across, start + first.end - 1, len(blob) - 1]
    for offset in offsets:
        damaged = bytearray(blob)
        damaged[offset] ^= 0x10
        path.write_bytes(damaged)
        entry = next(e for e in ckpt.entries.values() if e.begin <= offset - start < e.end)
        with read_checkpoint(path) as again:
            assert again.bad_checksums() == [entry.name]
        fresh = nn.Sequential(nn.Linear(1000, 700), nn.Linear(700, 300, bias=False))
        kept = {k: v.clone() for k, v in fresh.state_dict().items()}
        with pytest.raises(nn.SerializationError, match=rf"{entry.name!r} changed since they were saved"):
            nn.load(fresh, path)
        assert all(torch.equal(v, kept[k]) for k, v in fresh.state_dict().items())  # nothing changed
    path.write_bytes(blob)
    fresh = nn.Sequential(nn.Linear(1000, 700), nn.Linear(700, 300, bias=False))
    nn.load(fresh, path)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in fresh.state_dict().items())


def test_a_file_truncated_after_it_was_checked_is_reported_not_read_short(tmp_path):
    model = nn.Linear(300, 200)
    path = tmp_path / "m.safetensors"
    nn.save(model, path)
    with read_checkpoint(path) as ckpt:
        assert ckpt.bad_checksums() == []
        with open(path, "r+b") as f:  # another program cuts the file while it is open
            f.truncate(ckpt.data_start + 1000)
        assert ckpt.bad_checksums() == ["weight"]  # the bias, first in the file, is whole
        with pytest.raises(nn.SerializationError, match="the file ended inside tensor 'weight'"):
            ckpt.read_into("weight", torch.empty(200, 300))


FIXTURE_V2 = Path(__file__).parent / "data" / "checkpoint_v2.safetensors"


def test_a_file_of_format_version_2_still_loads_and_is_checked_with_its_sha256(tmp_path):
    # written by the version-2 writer (SHA-256 per tensor): nn.Sequential(Linear(3, 2), Tanh(),
    # Linear(2, 1)) and an Adam after one step, seed 0
    with read_checkpoint(FIXTURE_V2) as old:
        assert all(len(v) == 64 for v in old.checksums.values()) and old.bad_checksums() == []
        old_tensors = {n: old.tensor(n) for n in old.entries}
    assert old.meta is not None and old.meta["version"] == 2 and old.algorithm == "sha256"
    assert nn.inspect(FIXTURE_V2).checksums == "verified"
    model = nn.Sequential(nn.Linear(3, 2), nn.Tanh(), nn.Linear(2, 1))
    opt = nn.Adam(model.parameters(), lr=0.1)
    nn.load(model, FIXTURE_V2, opt)
    for name, value in model.state_dict().items():
        assert torch.equal(value, old_tensors[name]), name
    assert opt.param_groups[0]["lr"] == 0.01 and float(opt.state_dict()["state"][0]["step"]) == 1.0
    nn.save(model, tmp_path / "new.safetensors", opt)  # saved again: version 3, the same tensors
    with read_checkpoint(tmp_path / "new.safetensors") as new:
        assert new.meta is not None and new.meta["version"] == 3 and set(new.entries) == set(old.entries)
        assert all(torch.equal(new.tensor(n), old_tensors[n]) for n in old.entries)
    damaged = bytearray(FIXTURE_V2.read_bytes())
    damaged[-1] ^= 0x01
    (tmp_path / "damaged.safetensors").write_bytes(damaged)
    with pytest.raises(nn.SerializationError, match=r"changed since they were saved \(SHA-256 mismatch\)"):
        nn.load(model, tmp_path / "damaged.safetensors", opt)


def test_save_holds_no_second_copy_of_the_model(tmp_path):
    # 32 MB of parameters in 4 MB tensors: the save may add at most one tensor to the peak
    # resident set (the old save cloned the model and built the whole file in memory: +64 MB)
    script = textwrap.dedent(
        f"""
        import resource, torch, nn
        with torch.no_grad():
            model = nn.Sequential(*[nn.Linear(1000, 1000, bias=False) for _ in range(8)])
        nn.save(nn.Linear(2, 2), {str(tmp_path / "warm.safetensors")!r})  # imports, first-use allocations
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        for p in model.parameters():
            p.data.add_(1.0)  # touch: every page of the model is resident
        before = max(before, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
        nn.save(model, {str(tmp_path / "big.safetensors")!r})
        print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    growth_mib = int(out.stdout.strip()) / 1024
    assert growth_mib <= 4 + 4, f"nn.save raised the peak resident set by {growth_mib:.0f} MiB"
