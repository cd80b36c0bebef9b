"""Is the planner or the learned model the limit on InvertedDoublePendulum-v5 (issue 16.1)?

The no-preset cell (``mbrl run --env InvertedDoublePendulum-v5 --reward learned --episodes 10
--max-episode-steps 200``) closes 8-19 % of the random-to-reference gap. This script swaps
in the truth one piece at a time, with the planner the cell was sized to (CEM 64 x 3,
horizon 15):

    python scripts/idp_oracle_check.py plan --dynamics true --particles 1 --episodes 3
    python scripts/idp_oracle_check.py plan --dynamics learned --episodes 10
    python scripts/idp_oracle_check.py model-error results/idp/learned/buffer.pt \\
        --test results/idp/true/buffer.pt

``plan`` runs ``mbrl run`` with IDP's true reward and termination registered (the env's
own formulas, in observation coordinates) and, with ``--dynamics true``, with a model that
steps a copy of the MuJoCo simulation row by row. Other ``mbrl run`` flags pass through.
``model-error`` fits models to the first ``--n`` transitions of a buffer and prints their
mean open-loop error in the pole tip's height over 1, 5 and 15 steps along the episodes of
a test buffer (the run with true dynamics: the states a balancing controller visits). The
episode ends when the tip falls below 1.0, 0.2 under upright.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from typing import ClassVar

import gymnasium as gym
import mujoco
import numpy as np
import torch
from torch import Tensor

ENV_ID = "InvertedDoublePendulum-v5"
LINK = 0.6
"""Length of each pole (m): the tip sits at ``x + 0.6 (sin q1 + sin(q1 + q2))``."""


def tip_height(obs: Tensor) -> Tensor:
    """Height of the pole tip above the cart ``(M,)`` of IDP observations ``(M, 9)``
    (``[x, sin q1, sin q2, cos q1, cos q2, qvel (3), constraint force]``)."""
    s1, s2, c1, c2 = obs[:, 1], obs[:, 2], obs[:, 3], obs[:, 4]
    return LINK * c1 + LINK * (c1 * c2 - s1 * s2)


def termination(obs: Tensor, action: Tensor, next_obs: Tensor) -> Tensor:
    """The env's ending: tip at or below 1.0 (or a non-finite state), ``(M,)`` bool."""
    return (tip_height(next_obs) <= 1.0) | ~torch.isfinite(next_obs).all(dim=1)


def reward(obs: Tensor, action: Tensor, next_obs: Tensor) -> Tensor:
    """The env's reward ``(M,)``: alive bonus 10 minus tip distance and velocity penalties."""
    s1, s2, c1, c2 = next_obs[:, 1], next_obs[:, 2], next_obs[:, 3], next_obs[:, 4]
    tip_x = next_obs[:, 0] + LINK * s1 + LINK * (s1 * c2 + c1 * s2)
    distance = 0.01 * tip_x.square() + (tip_height(next_obs) - 2.0).square()
    velocity = 1e-3 * next_obs[:, 6].square() + 5e-3 * next_obs[:, 7].square()
    return 10.0 - distance - velocity


def _oracle_model_class() -> type:
    from mbrl.models.base import DETERMINISTIC
    from mbrl.models.checkpoint import register_checkpointable
    from mbrl.models.known import KnownModel

    @dataclass(frozen=True)
    class OracleConfig:
        """No constants: the MuJoCo model file holds them."""

    @register_checkpointable
    class MujocoIDP(KnownModel):
        """IDP's true dynamics ``step(obs (M, 9), action (M, 1)) -> (M, 9)``: each row sets
        a MuJoCo copy's state from the observation (angles by ``atan2``) and takes the env's
        5 substeps. A diagnostic oracle: a Python loop per row, on the CPU."""

        capabilities: ClassVar[frozenset[str]] = frozenset({DETERMINISTIC})
        config_class: ClassVar[type] = OracleConfig

        def __init__(self, config: OracleConfig | None = None) -> None:
            super().__init__(config)
            self.obs_dim, self.action_dim = 9, 1
            sim = gym.make(ENV_ID).unwrapped
            self._model, self._data = sim.model, sim.data
            self._substeps = int(sim.frame_skip)

        def step(
            self, state: Tensor, action: Tensor, generator: torch.Generator | None = None
        ) -> Tensor:
            obs = state.detach().cpu().double().numpy()
            act = np.clip(action.detach().cpu().double().numpy(), -1.0, 1.0)
            out = np.empty_like(obs)
            m, d = self._model, self._data
            for i, (row, a) in enumerate(zip(obs, act, strict=True)):
                d.qpos[:] = (row[0], *np.arctan2(row[1:3], row[3:5]))
                d.qvel[:] = row[5:8]
                d.ctrl[:] = a
                for _ in range(self._substeps):
                    mujoco.mj_step(m, d)
                out[i, 0] = d.qpos[0]
                out[i, 1:3], out[i, 3:5] = np.sin(d.qpos[1:]), np.cos(d.qpos[1:])
                out[i, 5:8] = np.clip(d.qvel, -10.0, 10.0)
                out[i, 8] = np.clip(d.qfrc_constraint[0], -10.0, 10.0)
            return torch.as_tensor(out, dtype=state.dtype, device=state.device)

    return MujocoIDP


def plan(args: argparse.Namespace, passthrough: list[str]) -> int:
    """``mbrl run`` on IDP with the true reward and termination (and dynamics)."""
    from mbrl.cli import main
    from mbrl.models.known import register_known_model
    from mbrl.task_fns import register_task_fns

    register_task_fns(ENV_ID, reward, termination, overwrite=True)
    argv = ["run", "--env", ENV_ID, "--reward", "known", "--max-episode-steps", "200"]
    argv += ["--auto-size-ms", "off", "--planner-opt", "population=64"]
    argv += ["--planner-opt", "iterations=3", "--episodes", str(args.episodes)]
    if args.dynamics == "true":
        register_known_model(ENV_ID, _oracle_model_class(), overwrite=True)
        argv += ["--model", "known"]
    return main(argv + passthrough)


def model_error(args: argparse.Namespace) -> None:
    """Open-loop tip-height error of models fitted to a buffer's first ``--n`` rows."""
    from mbrl.data.buffer import TransitionBuffer
    from mbrl.models.registry import build_model
    from mbrl.models.training import fit

    train = TransitionBuffer.load(args.buffer).all()
    train = train.index(torch.arange(min(args.n, len(train))))
    test = TransitionBuffer.load(args.test).all()
    episodes = [s for s in test.episodes() if s.stop - s.start > max(args.steps)]
    variants = {
        "ensemble (ts_inf)": {},
        "ensemble (expectation)": {"propagation": "expectation"},
        "ensemble 3 x 64": {"num_layers": 3, "hidden_size": 64, "propagation": "expectation"},
    }
    for name, options in variants.items():
        torch.manual_seed(args.seed)
        model = build_model("ensemble", 9, 1, options)
        fit(model, train, generator=torch.Generator().manual_seed(args.seed))
        errors = []
        with torch.no_grad():
            for k in args.steps:
                per_window = []
                for s in episodes:
                    obs, act, nxt = test.obs[s], test.action[s], test.next_obs[s]
                    starts = torch.arange(0, len(obs) - k, 3)
                    gen = torch.Generator().manual_seed(args.seed)
                    state = model.initial_state(obs[starts], 1, gen)
                    for j in range(k):
                        state = model.step(state, act[starts + j], gen)
                    pred = model.observe(state)
                    per_window.append((tip_height(pred) - tip_height(nxt[starts + k - 1])).abs())
                errors.append(f"{torch.cat(per_window).mean():.4f}")
        steps = "/".join(str(k) for k in args.steps)
        print(
            f"{name:24s} {len(train)} transitions: |tip height error| {steps} steps: "
            + " ".join(errors)
        )


def main() -> int:
    """Parse the subcommand and run it."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("plan", help="mbrl run with the true reward/termination (and dynamics)")
    p.add_argument("--dynamics", choices=("true", "learned"), default="learned")
    p.add_argument("--episodes", type=int, default=10)
    e = sub.add_parser("model-error", help="open-loop error of models fitted to a buffer")
    e.add_argument("buffer")
    e.add_argument("--test", required=True, help="buffer of the episodes to predict")
    e.add_argument("--n", type=int, default=100, help="training transitions (the first N)")
    e.add_argument("--steps", type=int, nargs="+", default=[1, 5, 15])
    e.add_argument("--seed", type=int, default=0)
    args, rest = parser.parse_known_args()
    if args.command == "plan":
        return plan(args, rest)
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    model_error(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
