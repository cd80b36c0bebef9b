"""GP fits on few transitions with and without the hyperparameter prior (``GPConfig.hyper_prior``).

For each env and each training size ``n``, fits ``--draws`` GPs on ``n`` random-action
transitions (one draw per seed) with the prior and by maximum likelihood alone, and prints
per setting: the median and worst held-out RMSE of the next observation, the median and
worst held-out log-loss (NLPD, nats per dimension, on 2000 other random transitions), how
many fits converged and their L-BFGS-B iterations. CPU only, seconds per env.

    python scripts/bench_gp_prior.py
    python scripts/bench_gp_prior.py --envs mbrl/AwakeSteering-v0 --sizes 20 30 50
"""

from __future__ import annotations

import argparse
import math
import warnings

import gymnasium as gym
import numpy as np
import torch

import mbrl.envs  # noqa: F401  (registers the mbrl/ envs)
from mbrl.agents.presets import PRESETS
from mbrl.models.gp.model import GPConfig, GPDynamics

DEFAULT_ENVS = ("Pendulum-v1", "mbrl/AwakeSteering-v0", "mbrl/SpillControl-v0")


def collect(env_id: str, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``n`` random-action transitions ``(obs (n, O), action (n, A), next_obs (n, O))``."""
    env = gym.make(env_id)
    env.action_space.seed(seed)
    obs, _ = env.reset(seed=seed)
    rows = []
    while len(rows) < n:
        action = env.action_space.sample()
        nxt, _, terminated, truncated, _ = env.step(action)
        rows.append((obs, action, nxt))
        obs = env.reset()[0] if terminated or truncated else nxt
    return tuple(torch.tensor(np.array(x), dtype=torch.float32) for x in zip(*rows, strict=True))


def gp_options(env_id: str) -> dict:
    """The env preset's GP options (AWAKE's linear mean, spill's phasor coordinates)."""
    return dict(PRESETS.get(env_id, {}).get("model_options", {}).get("gp", {}))


def score(model: GPDynamics, test: tuple[torch.Tensor, ...]) -> tuple[float, float]:
    """Held-out ``(RMSE, NLPD)`` of ``model`` on ``test``."""
    with torch.no_grad():
        mean, var = model.predict(test[0], test[1])
    err = mean - test[2]
    nlpd = 0.5 * (err.square() / var + var.log() + math.log(2 * math.pi))
    return float(err.square().mean().sqrt()), float(nlpd.mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--envs", nargs="+", default=list(DEFAULT_ENVS))
    parser.add_argument("--sizes", nargs="+", type=int, default=[10, 20, 40, 100])
    parser.add_argument("--draws", type=int, default=5)
    args = parser.parse_args()
    print(
        f"{'env':24s} {'n':>4s} {'prior':>5s} {'rmse med':>9s} {'rmse max':>9s} "
        f"{'nlpd med':>9s} {'nlpd max':>9s} {'conv':>5s}  iterations"
    )
    for env_id in args.envs:
        test = collect(env_id, 2000, 10_000)
        options = gp_options(env_id)
        for n in args.sizes:
            for prior in (False, True):
                rmse, nlpd, conv, iters = [], [], 0, []
                for seed in range(args.draws):
                    obs, action, nxt = collect(env_id, n, seed)
                    model = GPDynamics(
                        obs.shape[1], action.shape[1], GPConfig(hyper_prior=prior, **options)
                    )
                    if n < model.min_fit_transitions:
                        break
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        model.fit_data(obs, action, nxt)
                    r, p = score(model, test)
                    rmse.append(r)
                    nlpd.append(p)
                    conv += int(model.last_fit.converged)
                    iters.append(model.last_fit.iterations)
                if not rmse:
                    print(
                        f"{env_id:24s} {n:4d}  (below the GP's least {model.min_fit_transitions})"
                    )
                    break
                print(
                    f"{env_id:24s} {n:4d} {'yes' if prior else 'no':>5s} "
                    f"{np.median(rmse):9.4f} {max(rmse):9.4f} {np.median(nlpd):9.2f} "
                    f"{max(nlpd):9.2f} {conv:2d}/{len(rmse):<2d}  {iters}"
                )


if __name__ == "__main__":
    main()
