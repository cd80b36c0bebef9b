"""What the exploration bonus costs per plan call: the same planner timed with the bonus on and
off, interleaved in one process (machine load hits both alike).

    OMP_NUM_THREADS=1 python scripts/explore_plan_timing.py --env Acrobot-v1 --calls 30

The run set-up is ``mbrl run --env ENV --reward learned`` (no preset, the planner the env
gets by default: ``mcts`` for a ``Discrete`` action space). Timing does not depend on the
weights, so the networks are left unfitted. Call ``i`` plans from the same random
observation in both variants, in alternating order; the script prints the median and mean
ms per plan call, the ratio and the load average.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

from mbrl.agents.config import RunConfig
from mbrl.agents.exploration import ExplorationReward
from mbrl.agents.setup import build_run


def main() -> None:
    """Print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="Acrobot-v1")
    parser.add_argument("--calls", type=int, default=30, help="timed plan calls per variant")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    setup = build_run(RunConfig(env_id=args.env, reward="learned", progress=False))
    setup.env.close()
    explorer = setup.reward_fn
    if not isinstance(explorer, ExplorationReward):
        raise SystemExit(f"{args.env}: the run's model cannot explore (an ensemble is needed)")
    obs_dim = setup.model.obs_dim
    gen = torch.Generator().manual_seed(0)
    states = torch.randn(args.calls, obs_dim, generator=gen)
    times: dict[bool, list[float]] = {False: [], True: []}
    for flag in (False, True):  # warm-up
        explorer.exploring = flag
        setup.planner.plan(states[0])
    load_before = os.getloadavg()
    for i in range(args.calls):
        for flag in (False, True) if i % 2 == 0 else (True, False):
            explorer.exploring = flag
            setup.planner.reset()
            start = time.perf_counter()
            setup.planner.plan(states[i])
            times[flag].append((time.perf_counter() - start) * 1e3)
    load_after = os.getloadavg()
    planner = setup.config.planner
    print(f"{args.env}, {planner}, {args.calls} calls per variant, {args.threads} thread(s)")
    print(f"load average before {load_before[0]:.2f} after {load_after[0]:.2f}")
    print("| variant | median ms | mean ms | ratio to task reward only (median) |")
    print("| --- | --- | --- | --- |")
    base = statistics.median(times[False])
    for flag, label in ((False, "task reward only"), (True, "with the exploration bonus")):
        med = statistics.median(times[flag])
        print(f"| {label} | {med:.1f} | {statistics.fmean(times[flag]):.1f} | {med / base:.2f} |")


if __name__ == "__main__":
    main()
