"""Benchmark: GP dynamics fitting time vs data size (exact vs sparse path) on Pendulum-v1.

Collects random-action Pendulum-v1 transitions, then for each data size fits
:class:`~mbrl.models.gp.model.GPDynamics` with its default settings (the path is selected
automatically: exact marginal likelihood up to ``sparse_threshold`` transitions, the sparse
variational GP above) and, for comparison, with the other path forced. Prints one row per
(size, path): fit seconds, iterations / steps, held-out RMSE of the next observation on 2000
fresh transitions, and the posterior used for prediction. The exact path is only timed up to
``--exact-limit`` transitions (its cost grows as ``N^3`` per iteration).

Run (2-core CPU; about 3 minutes with the defaults)::

    OMP_NUM_THREADS=1 python scripts/bench_gp_fit.py
"""

from __future__ import annotations

import argparse
import dataclasses
import time
import warnings

import gymnasium as gym
import numpy as np
import torch

from mbrl.models.gp.model import GPConfig, GPDynamics, GPFitWarning


def collect(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``n`` random-action Pendulum-v1 transitions: ``obs (n, 3)``, ``action (n, 1)``, ``next (n, 3)``."""
    env = gym.make("Pendulum-v1")
    env.action_space.seed(seed)
    obs_l, act_l, nxt_l = [], [], []
    obs, _ = env.reset(seed=seed)
    episode = 0
    while len(obs_l) < n:
        action = env.action_space.sample()
        nxt, _, terminated, truncated, _ = env.step(action)
        obs_l.append(obs)
        act_l.append(action)
        nxt_l.append(nxt)
        obs = nxt
        if terminated or truncated:
            episode += 1
            obs, _ = env.reset(seed=seed + episode)
    env.close()
    return tuple(torch.as_tensor(np.array(v), dtype=torch.float32) for v in (obs_l, act_l, nxt_l))


def bench_one(
    config: GPConfig, data: tuple[torch.Tensor, ...], test: tuple[torch.Tensor, ...], seed: int
) -> dict:
    """Fit once; returns seconds, path, iterations, RMSE and whether it converged."""
    model = GPDynamics(3, 1, config)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", GPFitWarning)
        start = time.perf_counter()
        model.fit_data(*data, generator=torch.Generator().manual_seed(seed))
        seconds = time.perf_counter() - start
    with torch.no_grad():
        mean, _ = model.predict(test[0], test[1])
    rmse = float((mean - test[2]).square().mean().sqrt())
    info = model.last_fit
    return {
        "seconds": seconds,
        "hyper_fit": info.hyper_fit,
        "posterior": info.posterior,
        "iterations": info.iterations,
        "rmse": rmse,
        "warned": bool(caught),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[250, 1000, 4000, 16000])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--exact-limit",
        type=int,
        default=1000,
        help="largest size for which the exact path is timed (default %(default)s)",
    )
    parser.add_argument(
        "--no-alternative", action="store_true", help="time only the automatically selected path"
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    largest = max(args.sizes)
    obs, act, nxt = collect(largest, args.seed)
    test = collect(2000, args.seed + 10_000)
    default = GPConfig()
    print(
        f"GPDynamics fit on Pendulum-v1 random transitions (torch threads: "
        f"{torch.get_num_threads()}); auto: exact for N <= {default.sparse_threshold}, "
        f"sparse (SVGP, {default.num_inducing} inducing, {default.sparse_steps} steps) above"
    )
    header = (
        f"{'N':>6}  {'path':<22} {'auto':<4} {'fit s':>8} {'iters':>6} {'posterior':<9} {'RMSE':>9}"
    )
    print(header)
    print("-" * len(header))
    for n in args.sizes:
        data = (obs[:n], act[:n], nxt[:n])
        auto_path = "exact" if n <= default.sparse_threshold else "sparse"
        paths = [auto_path]
        if not args.no_alternative:
            paths.append("sparse" if auto_path == "exact" else "exact")
        for path in paths:
            if path == "exact" and n > args.exact_limit and path != auto_path:
                print(
                    f"{n:>6}  {'exact (marginal lik.)':<22} {'':<4} {'skipped: O(N^3) per iteration':>34}"
                )
                continue
            cfg = default
            if path != auto_path:
                threshold = n if path == "exact" else 1
                cfg = dataclasses.replace(default, sparse_threshold=threshold)
            row = bench_one(cfg, data, test, args.seed)
            label = "exact (marginal lik.)" if row["hyper_fit"] == "exact" else "sparse (SVGP ELBO)"
            flag = "yes" if path == auto_path else ""
            note = "  (warned: not converged)" if row["warned"] else ""
            print(
                f"{n:>6}  {label:<22} {flag:<4} {row['seconds']:>8.2f} {row['iterations']:>6d} "
                f"{row['posterior']:<9} {row['rmse']:>9.5f}{note}",
                flush=True,
            )


if __name__ == "__main__":
    main()
