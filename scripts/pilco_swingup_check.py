"""Is PILCO's Pendulum failure a data gap or an optimiser gap? (issue 20 item 1)

Fits a GP to ``--random-steps`` random-action transitions of Pendulum-v1 (far more than a
learner sees before its first policy), optimises PILCO's RBF policy from the hanging start
``(cos, sin, thdot) = (-1, 0, 0)`` over a ``--horizon``-step moment-matched rollout, then runs
the policy on the real env for 200 steps: from the hanging start and from ``--starts``
random starts of Pendulum-v1's start distribution. A return near -1000 or below is a policy
that never holds the pole up (a true-dynamics swing-up from the bottom scores about -250).

``--cost reward`` optimises the expectation of the task reward (what ``mbrl run --planner
pilco`` does on Pendulum); ``--cost saturating`` PILCO's saturating cost to ``(1, 0, 0)``
with ``--cost-weights`` (``diag(W)`` in ``(cos, sin, thdot)``). CPU, float64; one
optimisation of 100 L-BFGS-B iterations at horizon 100 takes about 7 minutes on one core.

    python scripts/pilco_swingup_check.py --cost reward
    python scripts/pilco_swingup_check.py --cost saturating --cost-weights 4 4 0.05
"""

from __future__ import annotations

import argparse
import math
import time
import warnings

import gymnasium as gym
import numpy as np
import torch

from mbrl.models.gp.model import GPConfig, GPDynamics
from mbrl.models.gp.moments import GaussianState
from mbrl.planners.pilco import PILCOConfig, PILCOPlanner
from mbrl.task_fns import get_task_fns

ENV_ID = "Pendulum-v1"
HANGING = (-1.0, 0.0, 0.0)


def random_transitions(steps: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``steps`` random-action transitions: ``obs (N, 3)``, ``action (N, 1)``, ``next_obs (N, 3)``."""
    env = gym.make(ENV_ID)
    rng = np.random.default_rng(seed)
    obs, _ = env.reset(seed=seed)
    rows: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    for _ in range(steps):
        action = rng.uniform(-2.0, 2.0, size=1).astype(np.float32)
        nxt, _, terminated, truncated, _ = env.step(action)
        rows.append((obs, action, nxt))
        obs = env.reset()[0] if terminated or truncated else nxt
    return tuple(torch.tensor(np.array(col)) for col in zip(*rows, strict=True))  # type: ignore[return-value]


def real_return(planner: PILCOPlanner, theta: float, thdot: float, steps: int = 200) -> float:
    """Return of ``steps`` real steps of the planner's policy from the state ``(theta, thdot)``."""
    env = gym.make(ENV_ID)
    env.reset(seed=0)
    env.unwrapped.state = np.array([theta, thdot])  # type: ignore[attr-defined]
    obs = env.unwrapped._get_obs()  # type: ignore[attr-defined]
    total = 0.0
    for _ in range(steps):
        action = planner.act(torch.tensor(obs[None], dtype=torch.float32)).numpy()[0]
        obs, reward, *_ = env.step(action)
        total += float(reward)
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--random-steps", type=int, default=400)
    parser.add_argument("--horizon", type=int, default=100)
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument("--cost", choices=("reward", "saturating"), default="reward")
    parser.add_argument("--cost-weights", type=float, nargs=3, default=(4.0, 4.0, 0.05))
    parser.add_argument("--starts", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore", category=UserWarning)

    t0 = time.perf_counter()
    model = GPDynamics(3, 1, GPConfig())
    model.fit_data(*random_transitions(args.random_steps, args.seed))
    print(f"GP fit on {args.random_steps} random transitions: {time.perf_counter() - t0:.1f} s")
    options: dict = {"horizon": args.horizon, "iterations": args.iterations}
    if args.cost == "saturating":
        options.update(target=(1.0, 0.0, 0.0), cost_weights=tuple(args.cost_weights))
    fns = get_task_fns(ENV_ID)
    assert fns is not None
    planner = PILCOPlanner(
        model,
        fns.reward,
        fns.termination,
        -2 * torch.ones(1),
        2 * torch.ones(1),
        args.horizon,
        PILCOConfig(**options),
        generator=torch.Generator().manual_seed(args.seed),
    )
    start = GaussianState(
        torch.tensor([HANGING], dtype=torch.float64),
        (0.01**2 * torch.eye(3, dtype=torch.float64)).unsqueeze(0),
    )
    info = planner.optimise(start)
    print(
        f"PILCO ({args.cost}, H {args.horizon}): expected return {info['initial_return']:.1f} -> "
        f"{info['expected_return']:.1f} in {info['iterations']:.0f} iterations, "
        f"{info['seconds']:.0f} s"
    )
    print(f"real return, 200 steps from hanging: {real_return(planner, math.pi, 0.0):.1f}")
    rng = np.random.default_rng(100 + args.seed)
    for _ in range(args.starts):
        theta, thdot = rng.uniform(-math.pi, math.pi), rng.uniform(-1.0, 1.0)
        print(
            f"real return, 200 steps from ({theta:+.2f}, {thdot:+.2f}): "
            f"{real_return(planner, theta, thdot):.1f}"
        )


if __name__ == "__main__":
    main()
