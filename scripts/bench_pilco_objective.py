"""Time PILCO's objective: one moment-matched rollout and its gradient (issue 20).

Fits a GP to ``--points`` random-action Pendulum-v1 transitions (at most ``num_inducing``
of them enter the posterior), then evaluates the expected saturating return of an RBF policy
(50 basis functions) from the hanging start over ``--horizon`` steps and its gradient
``--evals`` times, after ``--warmup`` untimed evaluations. Prints the median milliseconds
per evaluation, forward and backward apart. One thread, CPU, float64 (PILCO's algebra).

Compare two trees side by side with the same script (``PYTHONPATH`` picks the package):

    farm-bench -n 5 -- python scripts/bench_pilco_objective.py \\
        --vs "env PYTHONPATH=/path/to/other/tree python scripts/bench_pilco_objective.py"
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from pilco_swingup_check import hanging_start, random_transitions

from mbrl.models.gp.model import GPConfig, GPDynamics
from mbrl.planners.pilco import PILCOConfig, PILCOPlanner


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--points", type=int, default=400)
    parser.add_argument("--horizon", type=int, default=100)
    parser.add_argument("--evals", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    model = GPDynamics(3, 1, GPConfig())
    model.fit_data(*random_transitions(args.points, 0))
    planner = PILCOPlanner(
        model,
        None,
        None,
        -2 * torch.ones(1),
        2 * torch.ones(1),
        args.horizon,
        PILCOConfig(target=(1.0, 0.0, 0.0), cost_weights=(1.0, 1.0, 0.0)),
        generator=torch.Generator().manual_seed(0),
    )
    start = hanging_start()
    planner._initialize_policy(start)
    params = list(planner.policy.parameters())
    forward, backward = [], []
    for k in range(args.warmup + args.evals):
        t0 = time.perf_counter()
        ret = planner.expected_return(start).mean()
        t1 = time.perf_counter()
        torch.autograd.grad(-ret, params)
        t2 = time.perf_counter()
        if k >= args.warmup:
            forward.append(t1 - t0)
            backward.append(t2 - t1)
    n = int(model.posterior.inducing.shape[1])
    fwd, bwd = 1e3 * statistics.median(forward), 1e3 * statistics.median(backward)
    print(
        f"PILCO objective, {n} GP points, horizon {args.horizon}: forward {fwd:.0f} ms, "
        f"backward {bwd:.0f} ms, total {fwd + bwd:.0f} ms per evaluation (median of {args.evals})"
    )


if __name__ == "__main__":
    main()
