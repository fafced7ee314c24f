"""`nn.save` streams: each tensor is hashed and written from a view of itself, never copied whole."""

import hashlib
import subprocess
import sys
import textwrap

import torch

import nn
from nn.checkpoint_file import read_checkpoint
from nn.checkpoint_write import tensor_bytes


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


def test_saved_checksums_are_the_sha256_of_each_tensor(tmp_path):
    model = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    nn.save(model, tmp_path / "m.safetensors")
    ckpt = read_checkpoint(tmp_path / "m.safetensors")
    for name, t in model.state_dict().items():
        assert ckpt.checksums[name] == hashlib.sha256(t.numpy().tobytes()).hexdigest()
    assert ckpt.data_start % 8 == 0  # the data section is aligned as safetensors aligns it


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
