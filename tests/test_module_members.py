"""nn.Module keeps its members in the instance dict too (nn/module_members.py): every way of changing a
store (attributes, del, direct ``_modules[...]`` writes, pop, clear, copies, pickles, state dicts) leaves
``model.name`` what torch.nn.Module gives."""

import copy
import pickle
from collections import OrderedDict

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import nn
import tapegrad as tg

NAMES = ("a", "b", "training", "forward")  # 'training' is a plain attribute, 'forward' a method of the class
MISSING = ("missing",)


def make(kind, tag, lib):
    """A member of ``kind`` carrying ``tag`` (kept by copies and pickles), for tapegrad or torch."""
    if kind == "module":
        m = (nn.Identity if lib == "tg" else torch.nn.Identity)()
        m.tag = tag
        return m
    if kind == "param":
        return (nn.Parameter if lib == "tg" else torch.nn.Parameter)(torch.full((1,), float(tag)))
    if kind == "buffer":
        return torch.full((1,), float(tag))
    return {"none": None, "plain": tag}[kind]


def view(m, name):
    """What ``m.name`` gives, comparable between tapegrad and torch (members by tag)."""
    try:
        v = getattr(m, name)
    except AttributeError:
        return MISSING
    if v is None or isinstance(v, (bool, int)):
        return ("value", v)
    if callable(v) and not isinstance(v, (nn.Module, torch.nn.Module)):
        return ("method",)
    if isinstance(v, (nn.Module, torch.nn.Module)):
        return ("module", v.tag)
    data = v.data if isinstance(v, tg.Tensor) else v
    kind = "param" if isinstance(v, (nn.Parameter, torch.nn.Parameter)) else "buffer"
    return (kind, float(data.detach()))


def views(m):
    stores = {s: [(k, view(m, k) if getattr(m, k, None) is v else ("shadowed",)) for k, v in getattr(m, s).items()]
              for s in ("_modules", "_parameters", "_buffers")}  # fmt: skip
    return [view(m, name) for name in NAMES], stores


STORE_OF = {"module": "_modules", "param": "_parameters", "buffer": "_buffers"}
op = st.tuples(
    st.sampled_from(
        ["setattr", "delattr", "store_set", "store_del", "store_pop", "store_popitem", "store_clear", "store_update",
         "store_setdefault", "store_replace", "register", "deepcopy", "pickle"]
    ),
    st.sampled_from(NAMES),
    st.sampled_from(["module", "param", "buffer", "none", "plain"]),
    st.sampled_from(["module", "param", "buffer"]),  # which store a store_* op writes
)  # fmt: skip


def apply(m, step, tag, lib):
    action, name, kind, store_kind = step
    member = make(kind, tag, lib)
    store = getattr(m, STORE_OF[store_kind])
    if action == "setattr":
        setattr(m, name, member)
    elif action == "delattr":
        delattr(m, name)
    elif action == "store_set":
        store[name] = make(store_kind, tag, lib)
    elif action == "store_del":
        del store[name]
    elif action == "store_pop":
        store.pop(name, None)
    elif action == "store_popitem":
        store.popitem()
    elif action == "store_clear":
        store.clear()
    elif action == "store_update":
        store.update({name: make(store_kind, tag, lib)})
    elif action == "store_setdefault":
        store.setdefault(name, make(store_kind, tag, lib))
    elif action == "store_replace":  # a plain dict: the store from now on, as in torch
        setattr(m, STORE_OF[store_kind], {name: make(store_kind, tag, lib)})
    elif action == "register":
        member = make(store_kind, tag, lib)
        if store_kind == "module":
            m.add_module(name, member)
        elif store_kind == "param":
            m.register_parameter(name, member)
        else:
            m.register_buffer(name, member, persistent=tag % 2 == 0)
    elif action == "deepcopy":
        return copy.deepcopy(m)
    else:
        return pickle.loads(pickle.dumps(m))
    return m


@settings(max_examples=60, deadline=None)
@given(st.lists(op, min_size=1, max_size=14))
def test_every_way_of_changing_a_store_reads_back_as_torchs_module(steps):
    ours, ref = nn.Module(), torch.nn.Module()
    for tag, step in enumerate(steps):
        errors = []
        for lib in ("tg", "torch"):
            try:
                if lib == "tg":
                    ours = apply(ours, step, tag, lib)
                else:
                    ref = apply(ref, step, tag, lib)
            except (AttributeError, KeyError, TypeError) as err:
                errors.append(type(err))
            else:
                errors.append(None)
        assert errors[0] == errors[1], (step, errors)
        assert views(ours) == views(ref), step


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 3)
        self.scale = nn.Parameter(torch.ones(3))
        self.register_buffer("shift", torch.zeros(3))

    def forward(self, x):
        return self.fc(x) * self.scale + self.shift


def test_a_forward_reads_its_members_without_module_getattr(monkeypatch):
    net = Net()
    assert vars(net)["fc"] is net._modules["fc"] and vars(net)["scale"] is net._parameters["scale"]
    assert vars(net.fc)["weight"] is net.fc._parameters["weight"] and vars(net)["shift"] is net._buffers["shift"]
    calls = []
    fallback = nn.Module.__getattr__

    def counted(self, name):
        calls.append(name)
        return fallback(self, name)

    monkeypatch.setattr(nn.Module, "__getattr__", counted)
    with tg.Tape():
        net(tg.Tensor(torch.ones(2, 3)))
    assert calls == []


def test_class_attributes_and_plain_attributes_win_as_in_torch():
    class Shadowed(nn.Module):
        fc = None  # a class attribute: torch reads it, not the child registered under the same name

        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(2, 2)

    class TorchShadowed(torch.nn.Module):
        fc = None

        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(2, 2)

    assert Shadowed().fc is None and TorchShadowed().fc is None
    assert list(Shadowed()._modules) == ["fc"]
    m = nn.Module()
    m._modules["training"] = nn.Identity()  # written past a plain attribute: the attribute still wins
    assert m.training is True and "training" in m._modules


def test_copies_and_pickles_mirror_their_own_members():
    enc = nn.TransformerEncoder(nn.TransformerEncoderLayer(8, 2, dim_feedforward=16), num_layers=2)  # deepcopies
    first, second = enc.layers[0], enc.layers[1]
    assert second.linear1 is second._modules["linear1"] and second.linear1 is not first.linear1
    second._modules["linear1"] = replacement = nn.Linear(8, 16)
    assert second.linear1 is replacement and first.linear1 is first._modules["linear1"]
    for clone in (copy.deepcopy(Net()), pickle.loads(pickle.dumps(Net()))):
        assert clone.fc is clone._modules["fc"] and clone.scale is clone._parameters["scale"]
        clone._modules["fc"] = new = nn.Linear(3, 3)
        del clone._buffers["shift"]
        assert clone.fc is new and not hasattr(clone, "shift")
    net = Net()
    state = pickle.loads(pickle.dumps(net)).__getstate__()
    assert "fc" not in state and "shift" not in state  # the mirror is rebuilt, not pickled


def test_a_shallow_copy_shares_its_stores_with_the_original_as_in_torch():
    net = Net()
    twin = copy.copy(net)
    twin._modules["fc"] = new = nn.Linear(3, 3)
    assert net.fc is new and twin.fc is new  # one _modules dict, as torch's shallow copy
    ref = torch.nn.Module()
    ref.fc = torch.nn.Linear(3, 3)
    ref_twin = copy.copy(ref)
    ref_twin._modules["fc"] = ref_new = torch.nn.Linear(3, 3)
    assert ref.fc is ref_new


def test_an_older_pickle_without_mirrors_is_converted():
    net = Net()
    stores = ("_parameters", "_buffers", "_modules")
    state = {k: (OrderedDict(v) if k in stores else v) for k, v in net.__getstate__().items()}
    old = Net.__new__(Net)
    old.__setstate__(state)
    assert vars(old)["fc"] is old._modules["fc"]
    old._modules["fc"] = new = nn.Linear(3, 3)
    assert old.fc is new


def test_replacing_a_whole_store_reads_from_the_new_one():
    net = Net()
    head = nn.Linear(3, 1)
    net._modules = OrderedDict(head=head)
    assert net.head is head and not hasattr(net, "fc")
    net._modules["tail"] = tail = nn.Identity()  # a plain dict: found by Module.__getattr__
    assert net.tail is tail


def test_state_dicts_moves_and_hooks_keep_the_mirror():
    net, ref = Net(), Net()
    ref.shift.fill_(2.0)
    net.load_state_dict(ref.state_dict(), assign=True)
    assert net.shift is net._buffers["shift"] and float(net.shift[0]) == 2.0
    assert net.scale is net._parameters["scale"]
    net.double()
    assert net.shift.dtype is torch.float64 and net.shift is net._buffers["shift"]
    seen = []
    handle = net.fc.register_forward_hook(lambda mod, args, out: seen.append(out.shape))
    net(tg.Tensor(torch.ones(2, 3, dtype=torch.float64)))
    handle.remove()
    net(tg.Tensor(torch.ones(2, 3, dtype=torch.float64)))
    assert seen == [(2, 3)]


def test_containers_read_their_children_by_name():
    blocks = nn.ModuleList([nn.Linear(1, 1) for _ in range(3)])
    last = blocks[2]
    del blocks[0]
    blocks.insert(0, first := nn.Identity())
    assert [getattr(blocks, str(i)) for i in range(3)] == list(blocks) and blocks[0] is first
    assert blocks[2] is last and not hasattr(blocks, "3")
    with pytest.raises(KeyError, match="'keys' already exists"):  # a method's name, as torch
        nn.ModuleDict({"keys": nn.Identity()})
    named = nn.ModuleDict({"x": nn.Identity()})
    named._modules["keys"] = nn.Identity()  # written directly: the method still wins, as in torch
    assert callable(named.keys) and list(named.keys()) == ["x", "keys"]
    named.pop("x")
    assert not hasattr(named, "x")


@pytest.mark.parametrize("kind", ["module", "param", "buffer"])
@pytest.mark.parametrize(
    "change",
    [
        lambda s, new: s.__setitem__("a", new),
        lambda s, new: s.__delitem__("a"),
        lambda s, new: s.pop("a"),
        lambda s, new: s.popitem(),
        lambda s, new: s.clear(),
        lambda s, new: s.update(a=new),
        lambda s, new: s.__ior__({"a": new}),
        lambda s, new: s.setdefault("b", new),
    ],
    ids=["set", "del", "pop", "popitem", "clear", "update", "ior", "setdefault"],
)
def test_each_way_of_writing_a_store_directly_is_seen(kind, change):
    ours, ref = nn.Module(), torch.nn.Module()
    for m, lib in ((ours, "tg"), (ref, "torch")):
        getattr(m, STORE_OF[kind])["a"] = make(kind, 1, lib)
        change(getattr(m, STORE_OF[kind]), make(kind, 2, lib))
    assert views(ours) == views(ref) and [view(ours, "b")] == [view(ref, "b")]
