"""SAC trained only on a learned surrogate of Pendulum-v1, evaluated on the real env.

Collects ``--data-steps`` random transitions, fits an ensemble (``build_surrogate``, the same job
as ``mbrl surrogate``), opens it with ``gymnasium.make("mbrl/Surrogate-v0", path=DIR)``, trains
stable-baselines3's SAC on it for ``--sac-steps`` surrogate steps, and evaluates the policy on the
real Pendulum-v1 every ``--eval-every`` steps (10 episodes, deterministic actions).

    OMP_NUM_THREADS=1 python scripts/dyna_sac_on_surrogate.py            # ~10 min on 1 core
    python scripts/dyna_sac_on_surrogate.py --surrogate /tmp/sur         # reuse a saved one
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import gymnasium as gym
import torch

import mbrl  # noqa: F401  (registers mbrl/Surrogate-v0)
from mbrl.dyna.job import SurrogateJobConfig, build_surrogate, import_sb3
from mbrl.dyna.mbpo import evaluate_policy_returns


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--env", default="Pendulum-v1")
    parser.add_argument("--data-steps", type=int, default=5000, help="random real transitions")
    parser.add_argument("--surrogate", default=None, help="reuse this saved surrogate directory")
    parser.add_argument("--sac-steps", type=int, default=15000, help="SAC steps on the surrogate")
    parser.add_argument("--eval-every", type=int, default=2500)
    parser.add_argument("--eval-episodes", type=int, default=10)
    parser.add_argument("--lr", type=float, default=1e-3, help="SAC learning rate (SB3 zoo's)")
    parser.add_argument("--penalty", type=float, default=0.0, help="MOPO uncertainty penalty")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None, help="write the results here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    sb3 = import_sb3()
    from stable_baselines3.common.callbacks import BaseCallback

    start = time.perf_counter()
    path = args.surrogate
    if path is None:
        path = str(Path(tempfile.mkdtemp(prefix="dyna_surrogate_")))
        build_surrogate(
            SurrogateJobConfig(env_id=args.env, steps=args.data_steps, out=path, seed=args.seed)
        )
    print(f"surrogate: {path} ({time.perf_counter() - start:.0f} s)", flush=True)
    env = gym.make("mbrl/Surrogate-v0", path=path, uncertainty_penalty=args.penalty)
    real = gym.make(args.env)
    agent = sb3.SAC("MlpPolicy", env, learning_rate=args.lr, seed=args.seed, device="cpu")
    curve: list[dict] = []

    class Eval(BaseCallback):
        def _on_step(self) -> bool:
            if self.num_timesteps % args.eval_every == 0:
                mean, std = evaluate_policy_returns(agent, real, args.eval_episodes, 1000)
                curve.append(
                    {"surrogate_steps": self.num_timesteps, "real_return": mean, "std": std}
                )
                print(
                    f"surrogate steps {self.num_timesteps:6d}: real {args.env} return "
                    f"{mean:8.1f} +- {std:5.1f} ({time.perf_counter() - start:.0f} s)",
                    flush=True,
                )
            return True

    agent.learn(total_timesteps=args.sac_steps, callback=Eval())
    mean, std = evaluate_policy_returns(agent, real, args.eval_episodes, 1000)
    print(
        f"final: SAC trained only on the surrogate ({args.data_steps} random real transitions, "
        f"{args.sac_steps} surrogate steps): real {args.env} mean return over "
        f"{args.eval_episodes} episodes = {mean:.1f} +- {std:.1f} "
        f"({time.perf_counter() - start:.0f} s)"
    )
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {"final_return": mean, "std": std, "curve": curve, "args": vars(args)}, indent=2
            )
        )


if __name__ == "__main__":
    main()
