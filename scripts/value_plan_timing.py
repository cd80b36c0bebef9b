"""Planning ms per step of sampling planners with and without a learned terminal value,
timed interleaved in one process (so machine load hits every variant alike).

    OMP_NUM_THREADS=1 python scripts/value_plan_timing.py --planner cem --calls 40
    OMP_NUM_THREADS=1 python scripts/value_plan_timing.py --model rssm --calls 40
    OMP_NUM_THREADS=1 python scripts/value_plan_timing.py --env HalfCheetah-v5 --calls 20

Each variant is a run set-up of ``mbrl run`` (:func:`mbrl.agents.setup.build_run`, Pendulum-v1
with its preset: PETS ensemble of 5 x 3 x 200, 5 particles; the planner at the value
suites' sizes, :data:`SUITE_OPTIONS`) at its horizon, with
``--value learned`` (and ``--policy learned``) where named. Timing does not depend on the
weights, so the networks are left unfitted. Round ``i`` plans from the same random state for
every variant, in rotating order (``--env`` other than Pendulum-v1: states drawn from its
observation space, unbounded dimensions standard normal; no preset); the script prints the median and mean ms per plan call,
the ratio to the first variant, the model steps per action and the load average.

``--model rssm`` times the PlaNet loop's latent planner instead (``mbrl/PendulumNoVel-v0``,
:data:`RSSM_VARIANTS`: its default horizon 12 without a value against horizon 5 with the
latent value, and the Dreamer actor of ``--policy imagine``), planning from random belief
features.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

from mbrl.agents.config import RunConfig
from mbrl.agents.setup import build_run
from mbrl.export.checks import random_observations
from mbrl.planners.policy import PolicyPlanner

VARIANTS = {
    "H15": {"horizon": 15},
    "H5": {"horizon": 5},
    "H5 + value": {"horizon": 5, "gamma": 0.95, "value": "learned"},
    "H5 + value + policy": {"horizon": 5, "gamma": 0.95, "value": "learned", "policy": "learned"},
}


RSSM_VARIANTS = {
    "H12 (PlaNet default)": {},
    "H5 + value": {"horizon": 5, "gamma": 0.95, "value": "learned"},
    "actor (Dreamer, --policy imagine)": {"policy": "imagine"},
}
"""``--model rssm`` variants: PlaNet's CEM 300 x 5 in latent space, as `mbrl run` builds it,
and the latent actor that replaces it with ``--policy imagine`` (one network call)."""

SUITE_OPTIONS = {
    "cem": {"population": 300, "iterations": 4},
    "icem": {"population": 300},
    "mppi": {"population": 300, "iterations": 4},
    "shooting": {"population": 1000},
}
"""The planner sizes of the value suites (mbrl/bench/suites/value.toml), given explicitly so
neither the preset nor machine sizing changes them."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--planner", default="cem", help="cem, icem, mppi or shooting")
    parser.add_argument("--calls", type=int, default=40, help="timed plan calls per variant")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument(
        "--model", default="ensemble", choices=("ensemble", "rssm"), help="rssm: latent planner"
    )
    parser.add_argument("--env", default="Pendulum-v1", help="ensemble variants' env")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    planners = {}
    rssm = args.model == "rssm"
    for name, fields in (RSSM_VARIANTS if rssm else VARIANTS).items():
        if rssm:
            cfg = RunConfig(env_id="mbrl/PendulumNoVel-v0", model="rssm", progress=False, **fields)
        else:
            cfg = RunConfig(
                env_id=args.env,
                use_preset=args.env == "Pendulum-v1",
                # The value suites' ensemble where no preset sets it (value_halfcheetah.toml).
                model_options={} if args.env == "Pendulum-v1" else {"num_layers": 3},
                planner=args.planner,
                planner_options=SUITE_OPTIONS.get(args.planner, {}),
                auto_size_ms=None,
                progress=False,
                **fields,
            )
        setup = build_run(cfg)
        space = setup.env.observation_space
        setup.env.close()
        planners[name] = setup.planner
    gen = torch.Generator().manual_seed(0)
    if rssm:
        states = torch.randn(args.calls, next(iter(planners.values())).model.obs_dim, generator=gen)
    elif args.env == "Pendulum-v1":
        theta = torch.rand(args.calls, generator=gen) * 6.283 - 3.1416
        speed = torch.rand(args.calls, generator=gen) * 16 - 8
        states = torch.stack([theta.cos(), theta.sin(), speed], 1)
    else:
        states = random_observations(space, args.calls, seed=0)
    times: dict[str, list[float]] = {name: [] for name in planners}
    names = list(planners)
    for p in planners.values():  # warm-up
        p.plan(states[0])
    load_before = os.getloadavg()
    for i in range(args.calls):
        for name in names[i % len(names) :] + names[: i % len(names)]:
            planner = planners[name]
            planner.reset()
            start = time.perf_counter()
            planner.plan(states[i])
            times[name].append((time.perf_counter() - start) * 1e3)
    load_after = os.getloadavg()
    base = statistics.median(times[names[0]])
    what = "rssm latent cem" if rssm else f"{args.env}, planner {args.planner}"
    print(f"{what}, {args.calls} calls per variant, {args.threads} thread(s)")
    print(f"load average before {load_before[0]:.2f} after {load_after[0]:.2f}")
    print(
        f"| variant | median ms | mean ms | ratio to {names[0]} (median) | model steps per action |"
    )
    print("| --- | --- | --- | --- | --- |")
    for name, planner in planners.items():
        med = statistics.median(times[name])
        if isinstance(planner, PolicyPlanner):
            print(
                f"| {name} | {med:.3f} | {statistics.fmean(times[name]):.3f} | {med / base:.4f} | 0 |"
            )
            continue
        steps = (
            planner.optimizer.config.candidates_per_call() * planner.n_particles * planner.horizon
        )
        if planner.policy is not None:
            steps += planner.n_proposals * planner.horizon
        print(
            f"| {name} | {med:.1f} | {statistics.fmean(times[name]):.1f} | {med / base:.2f} "
            f"| {steps} |"
        )


if __name__ == "__main__":
    main()
