"""Benchmark: sparse GP dynamics fit at 16k transitions vs the exact GP on a 2k subset.

Collects random-action Pendulum-v1 transitions (``--n`` for training, 2000 fresh ones for
testing), then fits :class:`~mbrl.models.gp.model.GPDynamics`:

* ``sparse``: the default sparse path on all ``--n`` points (collapsed bound on a subset,
  greedy-variance inducing inputs, early stopping; optimal ``q(u)`` over all data);
* ``exact``: the exact marginal likelihood on a random ``--exact-n`` subset (the reference;
  skipped with ``--exact-n 0``);
* ``svgp`` (with ``--svgp``): the previous sparse path, gpytorch SVGP with 400 Adam steps;
* any ``--variant key=value,...`` of :class:`~mbrl.models.gp.model.GPConfig` on all points.

Prints per fit: wall and CPU seconds, optimiser iterations, what stopped it, and on the test
transitions the RMSE of the predicted next observation (overall and per dimension) and the
mean negative log predictive density (``NLPD``; per dimension, summed). The load average
(``os.getloadavg``) is printed before and after: figures from a shared machine need it.

Usage::

    OMP_NUM_THREADS=1 nice -n 5 python scripts/bench_gp_fit.py [--n 16000] [--exact-n 2000]
        [--svgp] [--variant inducing_init=kmeans] [--seed 0] [--threads 1]
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
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
    label: str,
    config: GPConfig,
    data: tuple[torch.Tensor, ...],
    test: tuple[torch.Tensor, ...],
    seed: int,
) -> None:
    """Fit once and print one row (see the module docstring)."""
    model = GPDynamics(3, 1, config)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", GPFitWarning)
        wall, cpu = time.perf_counter(), time.process_time()
        model.fit_data(*data, generator=torch.Generator().manual_seed(seed))
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    with torch.no_grad():
        mean, var = model.predict(test[0], test[1])
    err = (mean - test[2]).double()
    rmse = float(err.square().mean().sqrt())
    per_dim = err.square().mean(0).sqrt().tolist()
    nlpd = float(
        (0.5 * torch.log(2 * math.pi * var.double()) + 0.5 * err.square() / var).mean(0).sum()
    )
    info = model.last_fit
    note = " (warned)" if caught else ""
    print(
        f"{label:<28} {info.num_points:>6} {wall:>8.1f} {cpu:>8.1f} {info.iterations:>6d}  "
        f"{rmse:>8.5f}  [{', '.join(f'{v:.4f}' for v in per_dim)}]  {nlpd:>8.3f}  "
        f"{info.message[:60]}{note}",
        flush=True,
    )


def _parse_variant(text: str) -> dict:
    out = {}
    for item in text.split(","):
        key, value = item.split("=", 1)
        field = {f.name: f for f in dataclasses.fields(GPConfig)}[key]
        out[key] = (
            type(field.default)(value)
            if not isinstance(field.default, bool)
            else (value.lower() == "true")
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=16000, help="training transitions")
    parser.add_argument("--exact-n", type=int, default=2000, help="exact GP subset (0: skip)")
    parser.add_argument("--svgp", action="store_true", help="also time the SVGP path")
    parser.add_argument("--variant", action="append", default=[], help="key=value,... of GPConfig")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    obs, act, nxt = collect(args.n, args.seed)
    test = collect(2000, args.seed + 10_000)
    print(
        f"GPDynamics fit, Pendulum-v1 random transitions; torch threads {torch.get_num_threads()}; "
        f"load average before {os.getloadavg()[0]:.2f} (1 min), cores {os.cpu_count()}"
    )
    header = (
        f"{'fit':<28} {'N':>6} {'wall s':>8} {'cpu s':>8} {'iters':>6}  {'RMSE':>8}  "
        f"{'RMSE per dim (cos, sin, thdot)':<32}  {'NLPD':>8}  stopped"
    )
    print(header)
    print("-" * len(header))
    default = GPConfig()
    bench_one("sparse (default)", default, (obs, act, nxt), test, args.seed)
    for text in args.variant:
        cfg = dataclasses.replace(default, **_parse_variant(text))
        bench_one(f"sparse ({text})", cfg, (obs, act, nxt), test, args.seed)
    if args.svgp:
        cfg = dataclasses.replace(default, sparse_method="svgp")
        bench_one("sparse (svgp, 400 Adam)", cfg, (obs, act, nxt), test, args.seed)
    if args.exact_n:
        idx = torch.randperm(args.n, generator=torch.Generator().manual_seed(args.seed))
        idx = idx[: args.exact_n]
        cfg = dataclasses.replace(default, sparse_threshold=args.exact_n, num_inducing=args.exact_n)
        bench_one(
            f"exact ({args.exact_n} subset)", cfg, (obs[idx], act[idx], nxt[idx]), test, args.seed
        )
    print(f"load average after {os.getloadavg()[0]:.2f} (1 min)")


if __name__ == "__main__":
    main()
