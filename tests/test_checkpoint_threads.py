"""`nn.save` / `nn.load` on several threads and at disk speed: checksums put together from pieces
hashed on different threads, reads into the parameters spread over threads, the kernel asked to
start writing early, and the replaced file deleted after the save returns."""

import os
import threading
import time
import zlib

import pytest
import torch

import nn
import nn.serialization_atomic as atomic
from nn.serialization_checksum import crc32_combine, file_digests
from nn.serialization_format import read_checkpoint
from nn.serialization_parallel import SEGMENT, run_all, runs


def big_model():
    # a weight of 1.3 segments (split into two pieces), a bias, and a weight of exactly one segment
    torch.manual_seed(0)
    first = nn.Linear(SEGMENT // 4 // 800 + 300, 800)
    second = nn.Linear(1024, SEGMENT // 4 // 1024, bias=False)
    return nn.Sequential(first, second)


def test_runs_group_adjacent_ranges_in_file_order_and_cut_at_the_limit():
    # given out of order; "b" and "c" are adjacent, "d" is after a gap, "e" is empty
    ranges = [(12, 30, "c"), (3, 12, "b"), (40, 44, "d"), (44, 44, "e")]
    assert runs(ranges, limit=8) == [
        [(3, 11, "b")],
        [(11, 12, "b"), (12, 19, "c")],
        [(19, 27, "c")],
        [(27, 30, "c")],
        [(40, 44, "d"), (44, 44, "e")],
    ]
    # unsplit, a range stays whole: a longer one is a run of its own, and the next starts a new run
    assert runs(ranges, split=False, limit=8) == [[(3, 12, "b")], [(12, 30, "c")], [(40, 44, "d"), (44, 44, "e")]]
    assert runs([(10, 10, "x")]) == [[(10, 10, "x")]] and runs([]) == []


def test_run_all_keeps_order_and_uses_the_threads_it_is_given():
    both = threading.Barrier(2, timeout=30)  # the first two tasks meet: they run at the same time
    seen = set()

    def task(i):
        seen.add(threading.get_ident())
        if i < 2:
            both.wait()
        return i * i

    assert run_all([lambda i=i: task(i) for i in range(12)], threads=3) == [i * i for i in range(12)]
    assert len(seen) >= 2
    assert run_all([lambda: 1], threads=4) == [1] and run_all([], threads=2) == []


def test_run_all_raises_the_first_error_after_the_running_tasks_finished():
    finished = []

    def slow():
        time.sleep(0.05)
        finished.append("slow")

    def fail():
        raise OSError("disk gone")

    with pytest.raises(OSError, match="disk gone"):
        run_all([slow, fail, slow, slow, slow, slow], threads=2)
    assert 1 <= len(finished) < 5  # the running task was waited for; later ones never started


def test_split_checksums_on_threads_equal_zlibs_and_catch_a_flip_at_the_seam(tmp_path):
    model = big_model()
    path = tmp_path / "m.safetensors"
    nn.save(model, path)
    expected = {k: f"{zlib.crc32(v.numpy().tobytes()):08x}" for k, v in model.state_dict().items()}
    if crc32_combine is not None:  # zlib-ng (the io extra): a tensor's CRC is put together from its pieces'
        a, b = b"tape" * 1000, b"grad" * 999
        assert crc32_combine(zlib.crc32(a), zlib.crc32(b), len(b)) == zlib.crc32(a + b)
    with read_checkpoint(path) as ckpt:
        ranges = {n: (ckpt.data_start + e.begin, ckpt.data_start + e.end) for n, e in ckpt.entries.items()}
        for threads in (1, 3):
            assert file_digests(ckpt.file, "crc32", ranges, threads) == expected
        assert ckpt.checksums == expected
    seam = ranges["0.weight"][0] + SEGMENT
    blob = bytearray(path.read_bytes())
    for offset in (seam - 1, seam):
        damaged = bytearray(blob)
        damaged[offset] ^= 0x04
        path.write_bytes(damaged)
        with read_checkpoint(path) as ckpt:
            assert ckpt.bad_checksums() == ["0.weight"]


def test_loading_on_threads_restores_every_byte_and_reports_a_cut(tmp_path, monkeypatch):
    monkeypatch.setattr("nn.serialization_format.threads_for", lambda nbytes: 3)
    model = big_model()
    path = tmp_path / "m.safetensors"
    nn.save(model, path)
    fresh = big_model()
    with torch.no_grad():
        for p in fresh.parameters():
            p.data.zero_()
    nn.load(fresh, path)
    assert all(torch.equal(a, b) for a, b in zip(fresh.state_dict().values(), model.state_dict().values()))
    with read_checkpoint(path) as ckpt:
        assert ckpt.bad_checksums() == []
        os.truncate(path, ckpt.data_start + ckpt.entries["0.weight"].begin + SEGMENT + 8)
        with pytest.raises(nn.SerializationError, match="the file ended inside tensor '0.weight'"):
            ckpt.read_all({n: torch.empty(e.shape) for n, e in ckpt.entries.items()})


def test_the_kernel_is_asked_to_write_every_megabyte_early(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(atomic, "_SYNC_RANGE", lambda fd, begin, size, flags: calls.append((begin, size, flags)))
    model = big_model()
    path = tmp_path / "m.safetensors"
    nn.save(model, path)
    size = path.stat().st_size
    assert len(calls) >= 2 and all(flags == atomic._SYNC_FILE_RANGE_WRITE for _, _, flags in calls)
    ends = [begin + n for begin, n, _ in calls]
    assert [begin for begin, _, _ in calls[1:]] == ends[:-1] and ends[-1] <= size  # consecutive, in the file
    assert all(1 << 20 <= n < 2 << 20 for _, n, _ in calls)  # every megabyte (chunks of at most one)


def test_the_replaced_file_is_deleted_after_the_save_and_kept_until_the_rename(tmp_path, monkeypatch):
    path = tmp_path / "m.safetensors"
    nn.save(nn.Linear(3, 2), path)
    old_inode = path.stat().st_ino
    names_at_rename = []
    replace = os.replace

    def spy(src, dst):
        names_at_rename.append(sorted(os.listdir(tmp_path)))
        replace(src, dst)

    monkeypatch.setattr("nn.serialization_atomic.os.replace", spy)
    nn.save(nn.Linear(3, 2), path)
    monkeypatch.undo()
    kept = [n for n in names_at_rename[0] if n.endswith(".old")]
    assert len(kept) == 1 and len(names_at_rename[0]) == 3  # target, temporary, second name of the target
    atomic.settle()
    assert os.listdir(tmp_path) == [path.name] and path.stat().st_ino != old_inode


def test_without_hard_links_the_rename_replaces_the_file_directly(tmp_path, monkeypatch):
    def no_links(*args):
        raise OSError("hard links not supported")

    monkeypatch.setattr("nn.serialization_atomic.os.link", no_links)
    path = tmp_path / "m.safetensors"
    model = nn.Linear(3, 2)
    nn.save(model, path)
    nn.save(model, path)
    assert os.listdir(tmp_path) == [path.name]
    fresh = nn.Linear(3, 2)
    nn.load(fresh, path)
    assert torch.equal(fresh.weight, model.weight)
