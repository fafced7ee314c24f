"""nn.parallel.RayExecutor and `tapegrad cv --scheduler ray`: the table of jobs=1, on a local Ray of 2 CPUs.

One Ray session for the module (starting Ray takes seconds); ray is in the dev extra.
"""

from __future__ import annotations

import json
from concurrent.futures import Future

import pytest
from test_nn_cv_executor import CV_ARGV, _search

import nn
from tapegrad.cli import main


@pytest.fixture(scope="module")
def ray_executor():
    """A local Ray session with 2 CPUs, started (and shut down at the end) by the executor."""
    with nn.parallel.RayExecutor(num_cpus=2) as executor:
        yield executor


@pytest.fixture(scope="module")
def reference() -> nn.CVResult:
    return _search(jobs=1)


def test_ray_gives_the_table_of_jobs_1(ray_executor, reference):
    assert ray_executor.workers == 2
    assert _search(executor=ray_executor) == reference


def test_the_executor_hands_out_standard_futures_with_results_and_errors(ray_executor):
    ok = ray_executor.submit(divmod, 7, 2)
    bad = ray_executor.submit(divmod, 1, 0)
    assert isinstance(ok, Future) and ok.result(timeout=60) == (3, 1)
    with pytest.raises(ZeroDivisionError):
        bad.result(timeout=60)


def test_cv_scheduler_ray_prints_the_table_of_jobs_1_and_its_parallelism(ray_executor, capsys):
    assert main(CV_ARGV) == 0
    local = json.loads(capsys.readouterr().out)
    # the command finds this process's Ray session (the fixture's) and leaves it running
    assert main([*CV_ARGV, "--scheduler", "ray"]) == 0
    remote = json.loads(capsys.readouterr().out)

    def untimed(report: dict) -> list:
        return [{k: v for k, v in r.items() if not k.endswith("_time_s")} for r in report["results"]]

    assert untimed(remote) == untimed(local)
    assert remote["config"]["scheduler"] == "ray" and remote["config"]["parallel_fits"] == 2
    assert local["config"]["parallel_fits"] == 1
    argv = [a for a in CV_ARGV if a != "--json"]
    assert main([*argv, "--scheduler", "ray"]) == 0
    out = capsys.readouterr().out
    assert out.rstrip().splitlines()[-1].endswith("(2 Ray CPUs)")
    assert ray_executor.submit(abs, -1).result(timeout=60) == 1  # the session is still up


def test_another_address_while_connected_is_refused(ray_executor):
    with pytest.raises(RuntimeError, match="already connected to a Ray session"):
        nn.parallel.RayExecutor(num_cpus=4)
