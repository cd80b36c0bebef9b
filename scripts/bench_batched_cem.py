"""CEM over a batch of start states: time per ``plan`` call for B = 1, 8, 64, as a ratio to B = 1.

The mbrl-lib PETS shape (population 350, horizon 15, 20 particles, 5 iterations) with a
randomly initialised 5-member GaussianEnsemble (4 hidden layers x 200, TS-infinity) at
Pendulum sizes (O = 3, A = 1) and Pendulum's reward. One :class:`SamplingPlanner` per batch
size plans ``obs (B, 3) -> (B, 15, 1)`` (one rollout of ``B * 350`` candidates x 20 particles
per CEM iteration). Calls of the batch sizes are interleaved (round robin) so the ratios
are robust to the machine's speed drifting; each figure is the median over its repeats, after
``--warmup`` untimed calls per batch size.

Every CEM iteration of a call has the same shape (no population decay), so the ratio between
batch sizes does not depend on ``--iterations``; fewer iterations make a run on a slow or
shared machine affordable.

The roofline: each batch size is also timed as the bare network alone (``model.net`` on an
``(E, B * 350 * 20 / E, O + A)`` tensor, ``H * iterations`` forward passes, interleaved with
the plan calls). It is the arithmetic a call cannot avoid, so ``bare(B) / bare(1)`` is the
smallest ratio to B = 1 any implementation of this planner at this shape can reach on the
machine, and ``plan / bare`` is the planner's overhead over the raw matmuls.

``--clock cpu`` times with the process's CPU time instead of the wall clock: on a machine
shared with other jobs it counts only this process's work (use it with ``--threads 1``, where
no thread spins waiting for another that the other jobs pushed off its core).

Usage: python scripts/bench_batched_cem.py [--batches 1 8 64] [--repeats 7 5 3]
    [--warmup 1 1 1] [--iterations 5] [--threads 2] [--device cpu] [--clock wall|cpu]
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from collections.abc import Callable

import torch

from mbrl.bench.timing import synchronize
from mbrl.models.delta_model import DeltaModelConfig
from mbrl.models.ensemble import GaussianEnsemble
from mbrl.planners.cem import CEMConfig, CEMOptimizer
from mbrl.planners.sampling import SamplingPlanner
from mbrl.task_fns.classic import pendulum_reward

POPULATION, HORIZON, PARTICLES, ITERATIONS = 350, 15, 20, 5


def make_planner(
    device: torch.device, iterations: int = ITERATIONS, seed: int = 0
) -> SamplingPlanner:
    """CEM at the mbrl-lib PETS shape over a fresh 5 x (4 x 200) ensemble (Pendulum sizes)."""
    torch.manual_seed(seed)
    model = GaussianEnsemble(3, 1, DeltaModelConfig()).to(device).eval()
    gen = torch.Generator(device=device).manual_seed(seed)
    low = torch.tensor([-2.0], device=device)
    opt = CEMOptimizer(CEMConfig(population=POPULATION, iterations=iterations), low, -low, gen)
    return SamplingPlanner(
        model, pendulum_reward, None, opt, HORIZON, n_particles=PARTICLES, generator=gen
    )


def start_states(rows: int, device: torch.device) -> torch.Tensor:
    """``(rows, 3)`` Pendulum observations ``[cos th, sin th, thdot]`` spread over the circle."""
    theta = torch.linspace(-math.pi, math.pi, rows + 1)[:rows]
    thdot = torch.linspace(-1.0, 1.0, rows)
    return torch.stack([theta.cos(), theta.sin(), thdot], dim=1).to(device)


@torch.no_grad()
def time_batches(
    batches: list[int],
    repeats: list[int],
    warmup: list[int],
    device: torch.device,
    iterations: int = ITERATIONS,
    clock: Callable[[], float] = time.perf_counter,
) -> dict[tuple[str, int], float]:
    """Median seconds per ``plan`` call (``("plan", B)``) and per bare-network equivalent
    (``("bare", B)``) of each batch size, after its warm-up calls."""
    planners = {b: make_planner(device, iterations) for b in batches}
    starts = {b: start_states(b, device) for b in batches}
    model = planners[batches[0]].model
    net, members = model.net, model.ensemble_size
    in_dim = model.coords.feature_dim + model.action_dim
    bare_in = {
        b: torch.randn(members, b * POPULATION * PARTICLES // members, in_dim, device=device)
        for b in batches
    }

    def call(b: int) -> float:
        planners[b].advance(1)  # as the agent does between plans
        synchronize(device)
        start = clock()
        planners[b].plan(starts[b])
        synchronize(device)
        return clock() - start

    def bare(b: int) -> float:
        synchronize(device)
        start = clock()
        for _ in range(HORIZON * iterations):
            net(bare_in[b])
        synchronize(device)
        return clock() - start

    for b, n in zip(batches, warmup, strict=True):
        for _ in range(n):
            call(b)
            bare(b)
    times: dict[tuple[str, int], list[float]] = {}
    for r in range(max(repeats)):
        for b, n in zip(batches, repeats, strict=True):
            if r < n:
                times.setdefault(("plan", b), []).append(call(b))
                times.setdefault(("bare", b), []).append(bare(b))
    return {key: statistics.median(t) for key, t in times.items()}


def main() -> None:
    """Parse arguments, time every batch size, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8, 64])
    parser.add_argument("--repeats", type=int, nargs="+", default=[7, 5, 3])
    parser.add_argument("--warmup", type=int, nargs="+", default=None)
    parser.add_argument("--iterations", type=int, default=ITERATIONS)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--clock",
        choices=["wall", "cpu"],
        default="wall",
        help="wall clock (default) or this process's CPU time (fair on a shared machine)",
    )
    args = parser.parse_args()
    if args.clock == "cpu" and args.device != "cpu":
        parser.error("--clock cpu times CPU runs only")
    warmup = args.warmup if args.warmup is not None else [1] * len(args.batches)
    if len(args.repeats) != len(args.batches) or len(warmup) != len(args.batches):
        parser.error("--repeats and --warmup need one count per batch size")
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    med = time_batches(args.batches, args.repeats, warmup, device, args.iterations, clock)
    ref = args.batches[0]
    print(
        f"CEM population {POPULATION}, H {HORIZON}, {PARTICLES} particles, {args.iterations} "
        f"iterations; 5 x (4 x 200) GaussianEnsemble, O=3, A=1; {device}, "
        f"torch {torch.__version__}, {args.threads} threads, {args.clock} clock"
    )
    print(
        f"| B | repeats | model rows | ms per call | ratio to B={ref} | ratio / (B/{ref}) "
        f"| bare ms | bare ratio to B={ref} | plan / bare |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for b, n in zip(args.batches, args.repeats, strict=True):
        plan, bare = med[("plan", b)], med[("bare", b)]
        ratio = plan / med[("plan", ref)]
        bare_ratio = bare / med[("bare", ref)]
        rows = b * POPULATION * PARTICLES
        print(
            f"| {b} | {n} | {rows} | {1e3 * plan:.0f} | {ratio:.2f} | {ratio * ref / b:.3f} "
            f"| {1e3 * bare:.0f} | {bare_ratio:.2f} | {plan / bare:.2f} |"
        )


if __name__ == "__main__":
    main()
