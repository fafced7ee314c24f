"""Which records and tensors a set of records reaches: the queries the walk's users make around it.

`leading_to` (what targets depend on), `captured` (the tensors records read that nothing made) and
`first_consumers` (where a leaf's gradient becomes final), each over every output of a record.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch

from .record import Record
from .tensors import Tensor

__all__ = ["first_consumers", "leading_to", "captured"]


def first_consumers(records: Sequence[Record], wanted: Callable[[Tensor], bool]) -> dict[int, list[Tensor]]:
    """{record index: leaves} for the leaves in ``wanted`` (a predicate), keyed by their first consumer:
    a leaf (a tensor no record on this tape made) has its final gradient once the reverse walk is past it."""
    done: set[int] = set()  # the outputs made so far and the leaves already placed
    at: dict[int, list] = {}
    for idx, r in enumerate(records):
        for a in r.inputs:
            if isinstance(a, Tensor) and id(a) not in done and wanted(a):
                done.add(id(a))
                at.setdefault(idx, []).append(a)
        done.update(map(id, r.outputs))
    return at


def leading_to(records: Sequence[Record], targets: Iterable[Any]) -> list[Record]:
    """The records the targets depend on, in tape order: through their inputs and the tensors among
    their params (a dropout mask is a param, drawn by a record of its own). The one reachability
    test: `Tape.gradient`'s unused-source check, `tg.trace`'s graph and viz's picture of a tensor."""
    need = {id(t) for t in targets}
    kept = []
    for r in reversed(records):
        if any(id(out) in need or id(out.data) in need for out in r.outputs):
            kept.append(r)
            need.update(id(a) for a in r.inputs)
            need.update(id(v) for v in r.params.values() if isinstance(v, torch.Tensor))
    kept.reverse()
    return kept


def captured(records: Sequence[Record], args: tuple) -> list[Tensor]:
    """The tg.Tensors the records read (inputs and params) that neither an argument nor a record made:
    the parameters and buffers a function captures (`tg.checkpoint`'s probe, `tg.trace`'s graph)."""
    made = {id(o) for r in records for o in r.outputs} | {id(a) for a in args}
    found: dict[int, Tensor] = {}

    def visit(x: Any) -> None:  # (a wrapper of a raw torch argument is that argument: id(x.data))
        if isinstance(x, Tensor) and id(x) not in made and id(x.data) not in made:
            found.setdefault(id(x), x)
        elif isinstance(x, (tuple, list)):
            for y in x:
                visit(y)

    for r in records:
        visit(r.inputs)
        visit(list(r.params.values()))
    return list(found.values())
