"""Walking an `nn.Module`'s tree: children, modules, parameters and buffers by dotted name, and `apply`."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, cast

from . import module_state as _state

if TYPE_CHECKING:
    from .module import Module, Parameter

__all__ = ["Tree"]


class Tree:
    """The traversal methods of `nn.Module` (mixed into it), with torch's names and orders."""

    _modules: dict[str, Any]

    # --- traversal -------------------------------------------------------------------------------
    def named_children(self) -> Iterator[tuple[str, Module]]:
        """(name, module) for each direct child."""
        for name, m in self._modules.items():
            if m is not None:
                yield name, m

    def children(self) -> Iterator[Module]:
        """The direct children."""
        for _, m in self.named_children():
            yield m

    def named_modules(
        self, memo: set[Module] | None = None, prefix: str = "", remove_duplicate: bool = True
    ) -> Iterator[tuple[str, Module]]:
        """(dotted name, module) for this module and every descendant, pre-order (each once unless
        ``remove_duplicate=False``)."""
        seen = memo if memo is not None else set()
        stack: list[tuple[str, Any]] = [(prefix, self)]
        while stack:
            name, m = stack.pop()
            if remove_duplicate:
                if m in seen:
                    continue
                seen.add(m)
            yield name, m
            kids = [(f"{name}.{n}" if name else n, c) for n, c in m.named_children()]
            stack.extend(reversed(kids))

    def modules(self) -> Iterator[Module]:
        """This module and every descendant (pre-order)."""
        for _, m in self.named_modules():
            yield m

    def named_parameters(self, prefix: str = "", recurse: bool = True) -> Iterator[tuple[str, Parameter]]:
        """(dotted name, parameter) such as ``("0.weight", ...)``, each parameter once."""
        return _state.named_members(cast("Module", self), "_parameters", prefix, recurse)

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        """Every parameter, each once, in registration order."""
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self, prefix: str = "", recurse: bool = True) -> Iterator[tuple[str, Any]]:
        """(dotted name, buffer) such as ``("0.running_mean", ...)``, each buffer once."""
        return _state.named_members(cast("Module", self), "_buffers", prefix, recurse)

    def buffers(self, recurse: bool = True) -> Iterator[Any]:
        """Every buffer (persistent or not), each once, in registration order."""
        for _, b in self.named_buffers(recurse=recurse):
            yield b

    def get_submodule(self, target: str) -> Module:
        """The descendant at dotted path ``target`` ('' is this module), as torch's get_submodule."""
        return _state.get_submodule(cast("Module", self), target)

    def get_parameter(self, target: str) -> Parameter:
        """The parameter at dotted path ``target`` ('layer.0.weight')."""
        return _state.get_member(cast("Module", self), target, "_parameters", "parameter")

    def get_buffer(self, target: str) -> Any:
        """The buffer at dotted path ``target`` ('bn.running_mean')."""
        return _state.get_member(cast("Module", self), target, "_buffers", "buffer")

    def apply(self, fn: Callable[[Module], Any]) -> Module:
        """Call ``fn`` on every descendant, children first, then on this module; returns self."""
        for m in self.children():
            m.apply(fn)
        fn(cast("Module", self))  # Tree is mixed into Module only
        return cast("Module", self)
