"""Does planning get costlier as a run collects data? Refit a run's models episode by episode
and compare a fixed planning call made with each (issue 15).

Takes a run's ``buffer.pt`` (``mbrl run ... --out DIR``), splits it into its episodes, and
replays the run's fitting: before MPC episode ``k`` the dynamics ensemble, the learned reward
and the learned termination are refitted (continuing from their weights) on episodes
``0 .. k-1``, as :mod:`mbrl.agents.loop` does. It does this twice on the same data: with
:func:`mbrl.models.training.fit` as it is, and with its subnormal flush disabled (the code
before the fix). For every snapshot it reports

- the subnormal parameters and buffers of each model,
- the multiplications with a subnormal operand (weight or layer input) in one CEM planning
  call from fixed start observations: the work that runs in microcode on CPUs without
  hardware subnormal support (Intel x86), and which scales the cost of planning there,
- the wall time of that planning call as a ratio to the first snapshot's, interleaved
  (A B A B ...) in this one process so that load from other processes hits all alike.

Usage::

    mbrl run --env mbrl/PointMassGoal-v0 --reward learned --episodes 4 \\
        --max-episode-steps 50 --out runs/pm
    python scripts/planning_cost.py runs/pm/buffer.pt --env mbrl/PointMassGoal-v0 --out runs/pm/planning_cost.json
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import time
from collections.abc import Iterator

import torch
from torch import Tensor

import mbrl.models.training as training
from mbrl.agents.env_factory import make_env
from mbrl.data.buffer import TransitionBatch, TransitionBuffer
from mbrl.models.ensemble import GaussianEnsemble
from mbrl.models.layers import EnsembleLinear
from mbrl.models.task_models import LearnedReward, LearnedTermination
from mbrl.models.training import FitConfig, count_subnormals
from mbrl.planners.registry import PlannerContext, build_planner
from mbrl.spaces import ActionCodec

MODELS = ("dynamics", "reward", "termination")


def _parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("buffer", help="buffer.pt of a run (mbrl run --out DIR)")
    p.add_argument("--env", default="mbrl/PointMassGoal-v0", help="the run's env (its actions)")
    p.add_argument("--episodes", type=int, default=None, help="MPC episodes to replay (all)")
    p.add_argument("--starts", type=int, default=4, help="fixed start observations timed")
    p.add_argument("--repeats", type=int, default=3, help="interleaved timing rounds")
    p.add_argument("--population", type=int, default=500, help="CEM population (500)")
    p.add_argument("--iterations", type=int, default=5, help="CEM iterations (5)")
    p.add_argument("--horizon", type=int, default=15)
    p.add_argument("--particles", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch threads (1)")
    p.add_argument("--out", default=None, help="write the results as JSON here")
    return p.parse_args()


@contextlib.contextmanager
def _flush(enabled: bool) -> Iterator[None]:
    """Within the block, ``fit`` flushes subnormals (True) or not (False, the old code)."""
    original = training.flush_subnormals_
    if not enabled:
        training.flush_subnormals_ = lambda tensors: None
    try:
        yield
    finally:
        training.flush_subnormals_ = original


def _prefix(batch: TransitionBatch, stop: int) -> TransitionBatch:
    return batch.index(torch.arange(stop))


def replay_fits(
    batch: TransitionBatch, episodes: int, flush: bool, seed: int
) -> list[dict[str, dict[str, Tensor]]]:
    """State dicts of the three models before MPC episodes ``1 .. episodes``."""
    ends = [s.stop for s in batch.episodes()]
    o, a = batch.obs.shape[1], batch.action.shape[1]
    torch.manual_seed(seed)
    models = {
        "dynamics": GaussianEnsemble(o, a),
        "reward": LearnedReward(o, a),
        "termination": LearnedTermination(o, a),
    }
    gen = torch.Generator().manual_seed(seed)
    snaps = []
    with _flush(flush):
        for k in range(1, episodes + 1):
            data = _prefix(batch, ends[k - 1])
            for name in MODELS:
                training.fit(models[name], data, FitConfig(), gen)
            snaps.append({n: copy.deepcopy(m.state_dict()) for n, m in models.items()})
            print(f"  fitted before MPC episode {k} ({len(data)} rows, flush={flush})", flush=True)
    return snaps


class SubnormalOps:
    """Counts multiplications with a subnormal operand in every :class:`EnsembleLinear` call:
    ``subnormal inputs * out_features + subnormal weights of the used members * rows``."""

    def __init__(self, modules: list[torch.nn.Module]) -> None:
        self.count = torch.zeros((), dtype=torch.int64)
        self.handles = [
            layer.register_forward_hook(self._hook)
            for m in modules
            for layer in m.modules()
            if isinstance(layer, EnsembleLinear)
        ]

    def _hook(self, layer: EnsembleLinear, args: tuple, out: Tensor) -> None:
        x = args[0]
        members = args[1] if len(args) > 1 else None
        w = layer.weight if members is None else layer.weight.index_select(0, members)
        per_member = ((w != 0) & (w.abs() < torch.finfo(w.dtype).tiny)).sum(dim=(1, 2))
        self.count += count_subnormals([x]) * layer.out_features
        self.count += (per_member * x.shape[1]).sum()

    def remove(self) -> None:
        for h in self.handles:
            h.remove()


def main() -> None:
    args = _parse()
    torch.set_num_threads(args.threads)
    batch = TransitionBuffer.load(args.buffer).all()
    n_mpc = len(batch.episodes()) - 1
    episodes = min(args.episodes or n_mpc, n_mpc)
    variants = {"fixed": True, "unflushed": False}
    snaps = {v: replay_fits(batch, episodes, flush, args.seed) for v, flush in variants.items()}

    o, a = batch.obs.shape[1], batch.action.shape[1]
    models = {
        "dynamics": GaussianEnsemble(o, a),
        "reward": LearnedReward(o, a),
        "termination": LearnedTermination(o, a),
    }
    for m in models.values():
        m.eval()
    codec = ActionCodec.from_space(make_env(args.env).action_space)
    starts = batch.obs[torch.randperm(len(batch), generator=torch.Generator().manual_seed(1))]
    starts = starts[: args.starts]

    def planner(seed: int):
        ctx = PlannerContext(
            models["dynamics"],
            models["reward"],
            models["termination"],
            codec,
            torch.Generator().manual_seed(seed),
            args.horizon,
            args.particles,
            options={"population": args.population, "iterations": args.iterations},
        )
        return build_planner("cem", ctx)

    def load(snap: dict) -> None:
        for name, m in models.items():
            m.load_state_dict(snap[name])

    def plan_all() -> None:
        p = planner(args.seed)
        for s in starts:
            p.reset()
            p.plan(s)

    results: dict = {v: [] for v in variants}
    for v in variants:
        for k, snap in enumerate(snaps[v], start=1):
            load(snap)
            ops = SubnormalOps(list(models.values()))
            plan_all()
            ops.remove()
            row = {
                "episode": k,
                "subnormal_params": {
                    n: int(count_subnormals([*m.parameters(), *m.buffers()]))
                    for n, m in models.items()
                },
                "subnormal_mults_per_plan": int(ops.count) // len(starts),
                "seconds": [],
            }
            results[v].append(row)
    for _ in range(args.repeats):
        for v in variants:
            for k, snap in enumerate(snaps[v]):
                load(snap)
                t0 = time.perf_counter()
                plan_all()
                results[v][k]["seconds"].append((time.perf_counter() - t0) / len(starts))
    base = min(results["fixed"][0]["seconds"])
    for v in variants:
        print(f"{v}:")
        for row in results[v]:
            row["time_ratio"] = min(row["seconds"]) / base
            print(
                f"  before MPC episode {row['episode']}: subnormal params "
                f"{row['subnormal_params']}, subnormal-operand mults per plan "
                f"{row['subnormal_mults_per_plan']:,}, plan time / fixed ep-1 "
                f"{row['time_ratio']:.2f}"
            )
    if args.out:
        meta = {k: v for k, v in vars(args).items() if k != "out"}
        with open(args.out, "w") as f:
            json.dump({"settings": meta, "results": results}, f, indent=2)


if __name__ == "__main__":
    main()
