"""Random actions and a simple hand-written reference controller on the no-preset envs, so an
MPC return can be read as the share of the random-to-reference gap it closes.

    python scripts/reference_controllers.py --episodes 30 --json results/references.json

The references know what the agent does not (the env's response matrix, the arm's link
lengths): they are the bar a learned model should approach, not a baseline it must beat.

- ``mbrl/DictSteering-v0``: one-step dead-beat correction, ``a = R^-1 (setpoint - bpm) / step``
  clipped to the action box (``R`` the env's BPM response matrix).
- ``mbrl/PointMassGoal-v0``: PD towards the goal, ``a = clip(4 (g - p) - 2 v)``.
- ``Reacher-v5``: damped least-squares inverse kinematics of the two-link arm (links 0.1 and
  0.11 m) on the fingertip-to-target vector, as a PD torque with small gains (0.05, 0.03:
  the best of a 3 x 3 grid on 10 episodes; the torque is charged like the distance).
- ``mbrl/CartPoleSwingUp-v0``: energy pumping, then LQR of the linearised upright
  (:func:`mbrl.envs.cartpole_swingup.swing_up_reference`).
- ``InvertedDoublePendulum-v5``: discrete-time LQR of the upright, linearised by central
  differences of the MuJoCo simulation itself (cart x, both hinge angles, their rates).
- ``Acrobot-v1``: energy pumping, torque ``+1`` while the second link turns positively.

Episodes are capped at :data:`STEP_CAPS` where the suite caps them (so a 10-episode run fits
the 2-core machine); random and reference are measured under the same cap.

Each controller plays ``--episodes`` episodes from ``reset(seed=s)``, ``s = 0, 1, ...``; the
script prints mean and std of the episode returns per env and controller.
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections.abc import Callable
from pathlib import Path

import gymnasium as gym
import numpy as np
import scipy.linalg

import mbrl  # noqa: F401  (registers the mbrl/ envs)
from mbrl.agents.env_factory import make_env
from mbrl.envs.cartpole_swingup import swing_up_reference
from mbrl.envs.dict_steering import KICK_STEP, RESPONSE

Controller = Callable[[np.ndarray], "np.ndarray | int"]


def dict_steering(obs: np.ndarray) -> np.ndarray:
    """Dead-beat kick change from the flattened ``[bpm (3), setpoint (3)]``."""
    kick = np.linalg.solve(RESPONSE, obs[3:6] - obs[0:3]) / KICK_STEP
    return np.clip(kick, -1.0, 1.0)


def point_mass(obs: np.ndarray) -> np.ndarray:
    """PD push towards the goal from ``[x, y, vx, vy, gx, gy]``."""
    return np.clip(4.0 * (obs[4:6] - obs[0:2]) - 2.0 * obs[2:4], -1.0, 1.0)


REACHER_LINKS = (0.1, 0.11)


def reacher(obs: np.ndarray) -> np.ndarray:
    """Damped least-squares IK step as a PD torque, from Reacher-v5's observation
    ``[cos q (2), sin q (2), target (2), qdot (2), fingertip - target (2)]``."""
    c1, c2, s1, s2 = obs[0:4]
    qdot, error = obs[6:8], -obs[8:10]
    l1, l2 = REACHER_LINKS
    s12, c12 = s1 * c2 + c1 * s2, c1 * c2 - s1 * s2
    jac = np.array([[-l1 * s1 - l2 * s12, -l2 * s12], [l1 * c1 + l2 * c12, l2 * c12]])
    dq = jac.T @ np.linalg.solve(jac @ jac.T + 1e-4 * np.eye(2), error)
    # Reacher charges the squared torque as much as the distance: small gains do best.
    return np.clip(0.05 * dq - 0.03 * qdot, -1.0, 1.0)


def _simulate(env: gym.Env, state: np.ndarray, force: float) -> np.ndarray:
    """MuJoCo state ``[qpos, qvel]`` one env step after ``state`` under ``force``."""
    sim = env.unwrapped
    nq = sim.model.nq
    sim.set_state(state[:nq].copy(), state[nq:].copy())
    sim.do_simulation(np.array([force]), sim.frame_skip)
    return np.concatenate([sim.data.qpos, sim.data.qvel])


def double_pendulum_lqr(eps: float = 1e-5) -> Controller:
    """LQR state feedback for InvertedDoublePendulum-v5 from its observation
    ``[x, sin q (2), cos q (2), qdot (3), constraint force]``."""
    env = gym.make("InvertedDoublePendulum-v5")
    env.reset(seed=0)
    eye = np.eye(6)
    a = np.stack(
        [(_simulate(env, eps * e, 0.0) - _simulate(env, -eps * e, 0.0)) / (2 * eps) for e in eye],
        axis=1,
    )
    b = ((_simulate(env, np.zeros(6), eps) - _simulate(env, np.zeros(6), -eps)) / (2 * eps))[
        :, None
    ]
    env.close()
    q, r = np.diag([1.0, 20.0, 20.0, 0.1, 0.1, 0.1]), np.eye(1)
    p = scipy.linalg.solve_discrete_are(a, b, q, r)
    gain = np.linalg.solve(r + b.T @ p @ b, b.T @ p @ a)

    def control(obs: np.ndarray) -> np.ndarray:
        angles = np.arctan2(obs[1:3], obs[3:5])
        state = np.concatenate([obs[:1], angles, obs[5:8]])
        return np.clip(-gain @ state, -1.0, 1.0).astype(np.float32)

    return control


def acrobot(obs: np.ndarray) -> int:
    """Energy pumping from ``[cos, sin of both joints, both joint rates]``: torque index 2
    (+1) while the second joint turns positively, else 0 (-1)."""
    return 2 if obs[5] > 0 else 0


CONTROLLERS: dict[str, Callable[[], Controller]] = {
    "mbrl/DictSteering-v0": lambda: dict_steering,
    "mbrl/PointMassGoal-v0": lambda: point_mass,
    "Reacher-v5": lambda: reacher,
    "mbrl/CartPoleSwingUp-v0": lambda: swing_up_reference,
    "InvertedDoublePendulum-v5": double_pendulum_lqr,
    "Acrobot-v1": lambda: acrobot,
}
"""Env id -> a builder of its reference controller."""

STEP_CAPS: dict[str, int] = {"InvertedDoublePendulum-v5": 200, "Acrobot-v1": 200}
"""Episode step caps of the suite (``max_episode_steps``), envs' own limits elsewhere."""


def play(env: gym.Env, policy: Callable[[np.ndarray], np.ndarray], seed: int) -> float:
    """Return of one episode from ``reset(seed=seed)``."""
    obs, _ = env.reset(seed=seed)
    env.action_space.seed(seed)
    total, done = 0.0, False
    while not done:
        obs, reward, terminated, truncated, _ = env.step(policy(np.asarray(obs)))
        total += float(reward)
        done = terminated or truncated
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=30, help="episodes per controller")
    parser.add_argument("--json", type=Path, help="write the figures here as JSON")
    args = parser.parse_args()
    results: dict[str, dict[str, dict[str, float]]] = {}
    for env_id, build in CONTROLLERS.items():
        controller = build()
        caps = {"max_episode_steps": STEP_CAPS[env_id]} if env_id in STEP_CAPS else {}
        env = make_env(env_id, **caps)  # flattens the Dict observation as mbrl run does
        random_policy = lambda _obs, env=env: env.action_space.sample()  # noqa: E731
        results[env_id] = {}
        for name, policy in (("random", random_policy), ("reference", controller)):
            returns = [play(env, policy, s) for s in range(args.episodes)]
            results[env_id][name] = {
                "mean": statistics.mean(returns),
                "std": statistics.stdev(returns) if len(returns) > 1 else 0.0,
            }
            print(
                f"{env_id:24s} {name:9s} mean {results[env_id][name]['mean']:9.2f} "
                f"std {results[env_id][name]['std']:7.2f} ({args.episodes} episodes)"
            )
        env.close()
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
