"""A module's member stores (``_parameters``, ``_buffers``, ``_modules``), mirrored into its instance dict.

``self.fc`` in a forward is then a plain instance attribute read: Python finds the member in the
module's ``__dict__`` and never calls `Module.__getattr__` (a failed lookup, an AttributeError and a
Python call, about twenty times the cost, on every child a forward reads). The store stays the truth:
every way of changing it (``self.fc = ...``, ``del``, ``model._modules["fc"] = ...``, ``pop``, ``clear``,
as torch's containers and wrappers write it) updates the mirror (`sync`: the member torch's lookup
finds, unless a plain or class attribute of that name wins, as in torch). Pickling, ``copy.copy`` and
``copy.deepcopy`` leave the mirror out of the state and rebuild it for the new module (`get_state`,
`set_state`); a store shared by two modules (``copy.copy``) mirrors into both.
"""

from __future__ import annotations

import weakref
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

__all__ = ["STORES", "Members", "sync", "get_state", "set_state", "replace_store"]

STORES = ("_parameters", "_buffers", "_modules")
_ABSENT = object()


class Members(OrderedDict[str, Any]):
    """One store of a module (name -> member, in registration order) that keeps the ``__dict__`` of the
    modules owning it in step (`sync`)."""

    __slots__ = ("_owners",)

    def __init__(self, owner: Any = None) -> None:
        super().__init__()
        self._owners: list[weakref.ref[Any]] = [] if owner is None else [weakref.ref(owner)]

    def __setitem__(self, name: str, value: Any) -> None:
        was = self.get(name, _ABSENT)
        OrderedDict.__setitem__(self, name, value)  # update, setdefault and |= come here too
        self._sync(name, was)

    def __delitem__(self, name: str) -> None:
        was = self[name]
        OrderedDict.__delitem__(self, name)
        self._sync(name, was)

    def pop(self, name: str, *default: Any) -> Any:
        """Remove ``name`` and return its member (``default`` if given and absent), as dict.pop."""
        was = OrderedDict.pop(self, name, _ABSENT)
        if was is _ABSENT:
            if default:
                return default[0]
            raise KeyError(name)
        self._sync(name, was)
        return was

    def popitem(self, last: bool = True) -> tuple[str, Any]:
        """Remove and return the last (or first) (name, member) pair."""
        name, was = OrderedDict.popitem(self, last)
        self._sync(name, was)
        return name, was

    def clear(self) -> None:
        """Remove every member."""
        items = list(self.items())
        OrderedDict.clear(self)
        for name, was in items:
            self._sync(name, was)

    def __reduce__(self) -> tuple[Any, ...]:
        # pickled and copied without owners: the module that gets the copy binds it (`set_state`)
        return (type(self), (), None, None, iter(self.items()))

    def _sync(self, name: str, was: Any) -> None:
        for ref in self._owners:
            owner = ref()
            if owner is not None:
                sync(owner, name, was)

    def _own(self, owner: Any, owned: bool) -> None:
        self._owners = [r for r in self._owners if r() is not None and r() is not owner]
        if owned:
            self._owners.append(weakref.ref(owner))


def sync(owner: Any, name: str, was: Any = _ABSENT) -> None:
    """Make ``owner.__dict__[name]`` the member torch's lookup finds (parameters, buffers, then children),
    or take it out, unless it holds a plain attribute: a value that is neither ``was`` (what a store held
    under ``name`` before a change) nor a member. Nothing is mirrored for a name the class defines (the class
    attribute wins, as in torch), nor while a store is a plain dict the user assigned (its direct writes
    would not be seen: `Module.__getattr__` reads the stores then)."""
    d = owner.__dict__
    current = d.get(name, _ABSENT)
    found = _ABSENT
    mirrored = True
    for store in STORES:
        members = d.get(store)
        if not isinstance(members, Members):
            mirrored = False
            if members is None:
                continue
        value = members.get(name, _ABSENT)
        if value is not _ABSENT:
            if current is value:
                was = value  # the current entry is a member's mirror
            if found is _ABSENT:
                found = value
    if current is not _ABSENT and current is not was:
        return  # a plain attribute: it wins, as in torch
    if found is _ABSENT or not mirrored or hasattr(type(owner), name):
        if current is not _ABSENT:
            del d[name]
    else:
        d[name] = found


def _mirrored(d: dict[str, Any]) -> Iterator[str]:
    """The names in instance dict ``d`` that are mirror entries of one of its stores."""
    for store in STORES:
        members = d.get(store)
        if members:
            for name, value in members.items():
                if d.get(name, _ABSENT) is value:
                    yield name


def get_state(module: Any) -> dict[str, Any]:
    """The module's instance dict without the mirror entries: what pickling and copying keep."""
    state = dict(module.__dict__)
    for name in list(_mirrored(state)):
        state.pop(name, None)
    return state


def set_state(module: Any, state: dict[str, Any]) -> None:
    """Restore ``state`` (from `get_state`, or an older pickle) into ``module`` and mirror its stores."""
    d = module.__dict__
    d.update(state)
    for store in STORES:
        members = d.get(store)
        if members is not None and not isinstance(members, Members):  # pickled before stores mirrored
            fresh = Members()
            OrderedDict.update(fresh, members)
            d[store] = fresh
    _bind_all(module)


def replace_store(module: Any, store: str, value: Any) -> None:
    """``module._modules = value`` (or another store): that dict is the store from now on, as in torch. A
    plain dict turns the module's mirror off while it is there (see `sync`)."""
    d = module.__dict__
    old = d.get(store)
    d[store] = value
    if isinstance(old, Members):
        old._own(module, False)
        for name, was in old.items():
            sync(module, name, was)
    _bind_all(module)


def _bind_all(module: Any) -> None:
    d = module.__dict__
    for store in STORES:
        members = d.get(store)
        if isinstance(members, Members):
            members._own(module, True)
    for store in STORES:
        for name in list(d.get(store) or ()):
            sync(module, name)
