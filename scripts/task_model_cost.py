"""What the learned reward and termination networks cost per plan call, and what smaller ones
lose in accuracy (``--task-opt``).

    OMP_NUM_THREADS=1 python scripts/task_model_cost.py --env InvertedDoublePendulum-v5
    OMP_NUM_THREADS=1 python scripts/task_model_cost.py --env Reacher-v5 --sizes 200x3 64x2

Timing: ``mbrl run --env ENV --reward learned`` set up with a fixed planner size (CEM 64 x 3
by default, what the no-preset cells were sized to) and each task-network size, plus the
same planner scoring a constant reward with no termination (the dynamics alone). The
variants plan from the same random observations, interleaved in one process, so machine
load hits them alike. The termination classifier runs only where the random transitions
hold an ending (as in a run: a classifier that has seen no ending predicts none without
running its network). Timing does not depend on the weights: nothing is fitted for it.

Accuracy: each size is fitted to ``--train`` random-action transitions of the env and scored
on 3000 more: reward RMSE over the reward's standard deviation, and the termination's
balanced error rate where the data holds endings.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

from mbrl.agents.config import RunConfig
from mbrl.agents.env_factory import make_env
from mbrl.agents.episode import run_episode
from mbrl.agents.setup import build_run
from mbrl.data.buffer import TransitionBatch, TransitionBuffer
from mbrl.models.task_models import LearnedReward, LearnedTermination
from mbrl.models.training import fit
from mbrl.planners.registry import PlannerContext, build_planner
from mbrl.spaces import ActionCodec, observation_dim


def _size(text: str) -> tuple[int, int]:
    hidden, layers = text.lower().split("x")
    return int(hidden), int(layers)


def _constant(obs: torch.Tensor, action: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
    return torch.zeros(obs.shape[0], dtype=obs.dtype, device=obs.device)


def plan_timing(args: argparse.Namespace, endings: bool) -> None:
    """Median ms per plan call for each task-network size and for the dynamics alone
    (``endings``: the env's episodes end, so the termination classifier runs)."""
    options = {"population": args.population, "iterations": args.iterations}
    planners = {}
    for text in args.sizes:
        hidden, layers = _size(text)
        cfg = RunConfig(
            env_id=args.env,
            reward="learned",
            planner="cem",
            planner_options=options,
            task_options={"hidden_size": hidden, "num_layers": layers},
            auto_size_ms=None,
            use_preset=False,
            progress=False,
        )
        setup = build_run(cfg)
        setup.env.close()
        term = setup.state.task_models.termination if setup.state else None
        if isinstance(term, LearnedTermination):
            term.note_endings(endings)
        planners[f"task networks {text}"] = setup.planner
        model, codec, horizon, particles = (
            setup.model,
            setup.env_info.codec,
            cfg.horizon,
            cfg.n_particles,
        )
    ctx = PlannerContext(
        model, _constant, None, codec, torch.Generator().manual_seed(0), horizon, particles,
        options=options,
    )  # fmt: skip
    planners["dynamics alone (constant reward)"] = build_planner("cem", ctx)
    states = torch.randn(args.calls, model.obs_dim, generator=torch.Generator().manual_seed(0))
    times: dict[str, list[float]] = {name: [] for name in planners}
    for planner in planners.values():  # warm-up
        planner.plan(states[0])
    load = os.getloadavg()[0]
    names = list(planners)
    for i in range(args.calls):
        for name in names if i % 2 == 0 else names[::-1]:
            planners[name].reset()
            start = time.perf_counter()
            planners[name].plan(states[i])
            times[name].append((time.perf_counter() - start) * 1e3)
    base = statistics.median(times[names[-1]])
    print(
        f"{args.env}: CEM {args.population} x {args.iterations}, horizon {horizon}, "
        f"{particles} particles, {args.calls} calls each, {torch.get_num_threads()} thread(s), "
        f"termination classifier {'on' if endings else 'off (no endings)'}, "
        f"load {load:.2f} -> {os.getloadavg()[0]:.2f}"
    )
    print("| variant | median ms per plan | ratio to the dynamics alone |")
    print("| --- | ---: | ---: |")
    for name in names:
        med = statistics.median(times[name])
        print(f"| {name} | {med:.1f} | {med / base:.2f} |")


def _random_transitions(env_id: str, n: int, cap: int | None) -> TransitionBatch:
    """``n`` random-action transitions of ``env_id`` (episodes of at most ``cap`` steps),
    shuffled: the first rows train, the rest score."""
    env = make_env(env_id)
    codec = ActionCodec.from_space(env.action_space)
    env.action_space.seed(0)
    buffer = TransitionBuffer(observation_dim(env.observation_space), codec.dim, capacity=n)
    episode = 0
    while buffer.total_added < n:
        run_episode(
            env, lambda _obs: env.action_space.sample(), codec, buffer, seed=episode, max_steps=cap
        )
        episode += 1
    env.close()
    data = buffer.all()  # the ring keeps the last n
    return data.index(torch.randperm(len(data), generator=torch.Generator().manual_seed(0)))


def accuracy(args: argparse.Namespace, data: TransitionBatch) -> None:
    """Held-out reward and termination errors of each size, fitted to the first
    ``args.train`` rows of ``data`` and scored on the rest."""
    train = data.index(torch.arange(args.train))
    test = data.index(torch.arange(args.train, len(data)))
    obs_dim, action_dim = train.obs.shape[1], train.action.shape[1]
    spread = float(test.reward.std())
    print(f"{args.env}: fitted to {args.train} random transitions, scored on 3000")
    print("| size | reward RMSE / std | termination balanced error |")
    print("| --- | ---: | ---: |")
    for text in args.sizes:
        hidden, layers = _size(text)
        torch.manual_seed(0)
        reward = LearnedReward(obs_dim, action_dim, hidden, layers)
        fit(reward, train, generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            err = (reward(test.obs, test.action, test.next_obs) - test.reward).square().mean()
        rmse = f"{float(err.sqrt()) / spread:.3f}" if spread > 0 else "- (constant reward)"
        ending = "- (no endings)"
        if bool(train.terminated.any()) and bool(test.terminated.any()):
            term = LearnedTermination(obs_dim, action_dim, hidden, layers)
            fit(term, train, generator=torch.Generator().manual_seed(0))
            term.note_endings(True)
            with torch.no_grad():
                said = term(test.obs, test.action, test.next_obs)
            ends = test.terminated
            missed = (~said[ends]).float().mean()
            false = said[~ends].float().mean()
            ending = f"{float(0.5 * (missed + false)):.3f}"
        print(f"| {text} | {rmse} | {ending} |")


def main() -> None:
    """Print both tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="InvertedDoublePendulum-v5")
    parser.add_argument("--sizes", nargs="+", default=["200x3", "128x2", "64x2"])
    parser.add_argument("--population", type=int, default=64)
    parser.add_argument("--iterations", type=int, default=3)
    parser.add_argument("--calls", type=int, default=20, help="timed plan calls per variant")
    parser.add_argument("--train", type=int, default=300, help="training transitions")
    parser.add_argument("--cap", type=int, default=200, help="steps per random episode")
    args = parser.parse_args()
    for text in args.sizes:
        try:
            hidden, layers = _size(text)
        except ValueError:
            parser.error(f"--sizes: expected HIDDENxLAYERS such as 64x2, got {text!r}")
        if hidden < 1 or layers < 1:
            parser.error(f"--sizes: {text!r} must be positive")
    data = _random_transitions(args.env, args.train + 3000, args.cap)
    plan_timing(args, bool(data.terminated.any()))
    print()
    accuracy(args, data)


if __name__ == "__main__":
    main()
