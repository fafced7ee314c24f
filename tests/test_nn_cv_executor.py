"""nn.cross_validate(executor=...) and `tapegrad cv --scheduler`: the same table wherever the fits run.

The Dask part runs on a LocalCluster of 2 worker processes (dask and distributed are in the dev extra).
"""

from __future__ import annotations

import functools
import json
import socket
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

import nn
from tapegrad.cli import main
from tapegrad.cli.cv import build_candidate

# module level, so that worker processes can unpickle it
BUILD = functools.partial(build_candidate, hidden=[6], activation="tanh", loss="ce", init="xavier", gain=1.0,
                          optimizer="sgd", momentum=0.0)  # fmt: skip
GRID = {"lr": [0.03, 0.3]}
CV_ARGV = ["cv", "--optimizer", "sgd", "--lr", "0.03,0.3", "--k", "2", "--epochs", "2", "--n-train", "40",
           "--n-test", "20", "--hidden", "6", "--json"]  # fmt: skip


def _search(**kwargs) -> nn.CVResult:
    data = nn.data.disk_dataset(40, seed=4)
    return nn.cross_validate(BUILD, GRID, data, k=2, epochs=2, batch_size=10, seed=3, **kwargs)


@pytest.fixture(scope="module")
def reference() -> nn.CVResult:
    """The table of jobs=1."""
    return _search(jobs=1)


@pytest.fixture(scope="module")
def cluster():
    """A Dask LocalCluster of 2 single-threaded worker processes, and a client on it."""
    import distributed  # in the dev extra; imported here so that the other tests run without it

    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as lc:
        with distributed.Client(lc) as client:
            yield lc, client


def test_a_thread_pool_gives_the_table_of_jobs_1(reference):
    with ThreadPoolExecutor(2) as pool:
        assert _search(executor=pool) == reference
    assert len(reference) == 2 and all(len(r.fold_accuracies) == 2 for r in reference)


def test_a_dask_cluster_gives_the_table_of_jobs_1(reference, cluster):
    _, client = cluster
    assert _search(executor=client.get_executor()) == reference


def test_cv_scheduler_prints_the_table_of_jobs_1(cluster, capsys):
    lc, _ = cluster
    assert main(CV_ARGV) == 0
    local = json.loads(capsys.readouterr().out)
    assert main([*CV_ARGV, "--scheduler", lc.scheduler_address]) == 0
    remote = json.loads(capsys.readouterr().out)

    def untimed(report: dict) -> list:
        return [{k: v for k, v in r.items() if not k.endswith("_time_s")} for r in report["results"]]

    assert untimed(remote) == untimed(local)  # the same rows, best configurations and test accuracies
    assert remote["config"]["scheduler"] == lc.scheduler_address


def test_an_unreachable_scheduler_is_one_error_line_and_exit_2(capsys):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens there once the socket is closed
    assert main([*CV_ARGV, "--scheduler", f"tcp://127.0.0.1:{port}", "--connect-timeout", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"tapegrad cv: error: cannot reach the Dask scheduler at tcp://127.0.0.1:{port} within 1 s")
    assert len(err.strip().splitlines()) == 1


def test_missing_dask_gives_the_install_hint(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed now raises ImportError
    assert main([*CV_ARGV, "--scheduler", "tcp://127.0.0.1:8786"]) == 2
    assert 'not installed; pip install "tapegrad[dask]"' in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv, message",
    [
        (
            ["--scheduler", "http://host:8786"],
            "expected a Dask scheduler address like tcp://host:8786, ray, or ray://host:10001, got 'http://host:8786'",
        ),
        (["--scheduler", "tcp://host"], "like tcp://host:8786, ray, or ray://host:10001, got 'tcp://host'"),
        (["--scheduler", "host:8786", "--jobs", "2"], "--jobs and --scheduler exclude each other"),
        (["--scheduler", "host:8786", "--connect-timeout", "0"], "argument --connect-timeout: expected a positive"),
    ],
)
def test_bad_scheduler_arguments_exit_2(argv, message, capsys):
    with pytest.raises(SystemExit) as info:
        main([*CV_ARGV, *argv])
    assert info.value.code == 2
    assert message in capsys.readouterr().err


def test_bad_executor_arguments_are_named():
    with pytest.raises(TypeError, match="executor must be a concurrent.futures.Executor .* got int"):
        _search(executor=3)
    with ThreadPoolExecutor(1) as pool, pytest.raises(ValueError, match="pass jobs=2 or an executor, not both"):
        _search(jobs=2, executor=pool)
