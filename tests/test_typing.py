"""The stub that gives users' type checkers every Tensor method is current with the ops attached at import."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

import gen_tensor_stub  # noqa: E402

import tapegrad  # noqa: E402


def test_the_tensor_method_stub_is_up_to_date():
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "gen_tensor_stub.py"), "--check"],
                          capture_output=True, text=True, cwd=ROOT)  # fmt: skip
    assert proc.returncode == 0, (
        f"{proc.stdout.strip()} (a new or changed op attached to tg.Tensor: regenerate the stub with "
        f"`{gen_tensor_stub.COMMAND}` and commit tapegrad/engine/_tensor_methods.pyi)"
    )


def test_every_attached_method_is_declared_with_its_signature():
    stub = (ROOT / "tapegrad" / "engine" / "_tensor_methods.pyi").read_text()
    for name in gen_tensor_stub.attached():
        assert f"    def {name}(self" in stub or f"    def {name}(cls" in stub, name
    assert "    def tanh(self) -> Tensor: ..." in stub
    ints = "builtins.int | tuple[builtins.int, ...] | None"
    assert f"    def sum(self, dim: {ints} = None, keepdim: builtins.bool = False) -> Tensor: ..." in stub
    pair = "    def max(self, dim: builtins.int, keepdim: builtins.bool = False) -> ValuesIndices: ..."
    assert pair in stub and "    def max(self, dim: None = None, keepdim: builtins.bool = False) -> Tensor: ..." in stub
    assert hasattr(tapegrad.Tensor, "tanh") and "def __getattr__" not in stub


def test_a_new_op_makes_the_check_fail_with_the_command_to_run(monkeypatch):
    monkeypatch.setattr(tapegrad.Tensor, "brand_new_op", lambda self, k=2: self, raising=False)
    monkeypatch.setattr(gen_tensor_stub, "Tensor", tapegrad.Tensor)
    text = gen_tensor_stub.render()
    assert "    def brand_new_op(self, k: Any = 2) -> Tensor: ..." in text
    assert text != (ROOT / "tapegrad" / "engine" / "_tensor_methods.pyi").read_text()
