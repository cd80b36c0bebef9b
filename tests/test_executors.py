"""Executors: the local process pool and Ray give the inline numbers; failures are recorded.

The Ray comparison is marked slow. By hand, against a Ray head on loopback::

    ray start --head --node-ip-address=127.0.0.1 --port=6390 --num-cpus=2 --include-dashboard=false
    mbrl bench --suite SUITE.toml --out /tmp/r_local
    mbrl bench --suite SUITE.toml --out /tmp/r_ray --executor ray --ray-address 127.0.0.1:6390
    ray stop
    # then compare the "return" fields of /tmp/r_local/results.jsonl and /tmp/r_ray/results.jsonl
"""

from __future__ import annotations

import pytest

from mbrl.bench.cells import CellSpec, run_cell
from mbrl.bench.executors import (
    ExecutorError,
    InlineExecutor,
    LocalExecutor,
    available_cpus,
    make_executor,
)

OVERRIDES = {
    "use_preset": False,
    "episodes": 2,
    "max_episode_steps": 8,
    "horizon": 3,
    "n_particles": 2,
    "fit": {"max_steps": 20, "eval_every": 10},
    "model_options": {"ensemble_size": 2, "hidden_size": 16, "num_layers": 1},
    "planner_options": {"population": 16, "iterations": 1},
}
CELLS = [CellSpec("Pendulum-v1", "ensemble", "cem", seed, "", OVERRIDES) for seed in (0, 1)]


def _returns(results):
    return {r.spec.cell_id: [e["return"] for e in r.episodes] for r in results}


def _fail(x: int) -> int:
    if x == 1:
        raise RuntimeError("lost")
    return 10 * x


def test_local_pool_gives_the_inline_numbers():
    inline = [r for _, r in InlineExecutor().map_unordered(run_cell, CELLS)]
    with LocalExecutor(workers=2) as pool:
        pooled = [r for _, r in pool.map_unordered(run_cell, CELLS)]
    assert all(r.status == "ok" for r in inline + pooled)
    assert _returns(pooled) == _returns(inline)  # exact: same seeds, 1 thread each
    assert len({tuple(v) for v in _returns(inline).values()}) == 2  # seeds differ


def test_executor_failures_come_back_as_exceptions_and_names_are_checked():
    results = dict(InlineExecutor().map_unordered(_fail, [0, 1, 2]))
    assert results[0] == 0 and results[2] == 20 and isinstance(results[1], RuntimeError)
    with pytest.raises(ValueError, match="executor must be one of"):
        make_executor("slurm")
    with pytest.raises(ValueError, match="workers"):
        LocalExecutor(workers=0)
    with pytest.raises(ValueError, match="threads"):
        LocalExecutor(threads=0)
    assert LocalExecutor().workers == available_cpus() >= 1
    assert issubclass(ExecutorError, RuntimeError)


@pytest.mark.slow
def test_ray_executor_gives_the_local_numbers(tmp_path):
    ray = pytest.importorskip("ray")
    from mbrl.bench.executors import RayExecutor
    from mbrl.bench.suite import Suite, run_suite

    suite = Suite("ray2", "", "inline", tuple(CELLS))
    local = run_suite(suite, tmp_path / "local", InlineExecutor(), progress=False)
    with LocalExecutor(workers=2) as pool:
        pooled = run_suite(suite, tmp_path / "pool", pool, progress=False)
    assert not ray.is_initialized()
    with RayExecutor(init_kwargs={"num_cpus": 2, "include_dashboard": False}) as executor:
        remote = run_suite(suite, tmp_path / "ray", executor, progress=False)
    assert not ray.is_initialized()  # the executor shut down the Ray it started

    def returns(out):
        import json

        lines = (out / "results.jsonl").read_text().splitlines()
        return [(e["cell_id"], e["episode"], e["return"]) for e in map(json.loads, lines)]

    assert not (local.failed or pooled.failed or remote.failed)
    assert returns(tmp_path / "ray") == returns(tmp_path / "local") == returns(tmp_path / "pool")
