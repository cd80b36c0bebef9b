"""Figures for the RSSM / PlaNet runs (read from ``mbrl run --out`` directories).

    # item 1: POMDP Pendulum, RSSM vs MLP vs random (learning curves)
    python scripts/planet_figures.py pomdp --run "RSSM=/tmp/rssm/novel_rssm_fn1_s0" \
        --run "MLP=/tmp/rssm/novel_mlp_s0" --out docs/figures/rssm_pomdp.png
    # item 2: pixels: returns, open-loop error over training, predicted-vs-real frame strip
    python scripts/planet_figures.py pixels --run /tmp/rssm/pixels_s0 \
        --out docs/figures/rssm_pixels

Each prints the per-episode numbers it plots. The random baseline is measured here (uniform
random actions, seeds 1000.., same env).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from mbrl.agents.env_factory import make_env  # noqa: E402
from mbrl.agents.planet_loop import PlanetConfig, held_out_batch  # noqa: E402
from mbrl.models.checkpoint import load_checkpoint  # noqa: E402
from mbrl.models.rssm.model import RSSM  # noqa: E402
from mbrl.models.rssm.networks import float_to_image  # noqa: E402


def random_returns(env_id: str, episodes: int, seed: int = 1000) -> list[float]:
    """Returns of ``episodes`` uniform-random episodes on ``env_id``."""
    env = make_env(env_id)
    env.action_space.seed(seed)
    out = []
    for i in range(episodes):
        env.reset(seed=seed + i)
        total, done = 0.0, False
        while not done:
            _, r, term, trunc, _ = env.step(env.action_space.sample())
            total += float(r)
            done = term or trunc
        out.append(total)
    return out


def _metrics(run: str) -> list[dict]:
    """Episode lines of ``run/metrics.jsonl`` (written per episode, so partial runs work too)."""
    text = (Path(run) / "metrics.jsonl").read_text()
    return [json.loads(line) for line in text.splitlines() if line]


def _curve(run: str) -> tuple[list[float], list[float]]:
    """(seed-episode returns, planning-episode returns) of ``run``."""
    eps = _metrics(run)
    return (
        [e["return"] for e in eps if e["kind"] == "seed"],
        [e["return"] for e in eps if e["kind"] != "seed"],
    )


def _fmt(xs: list[float]) -> str:
    return "[" + ", ".join(f"{x:.0f}" for x in xs) + "]"


def _plot_returns(ax, curves: dict[str, list[float]], rand: list[float]) -> None:
    for label, ys in curves.items():
        ax.plot(range(1, len(ys) + 1), ys, marker=".", label=label)
    ax.axhline(float(np.mean(rand)), color="gray", ls="--", label="random (mean)")
    ax.set_xlabel("planning episode (after seed episodes)")
    ax.set_ylabel("episode return")
    ax.legend()


def pomdp(args: argparse.Namespace) -> None:
    """Learning curves of the RSSM and MLP runs against random."""
    curves = {}
    for spec in args.run:
        label, sep, run = spec.rpartition("=")
        if not sep:
            raise SystemExit(f"--run must be LABEL=DIR, got {spec!r}")
        seeds, plan = _curve(run)
        curves[label] = plan
        tail = plan[-5:]
        print(f"{label} [{run}] seed episodes {_fmt(seeds)}")
        print(f"  planning episodes {_fmt(plan)}")
        print(f"  mean of last {len(tail)}: {np.mean(tail):.1f}; best {max(plan):.1f}")
    env_id = args.env
    rand = random_returns(env_id, args.random_episodes)
    print(f"random on {env_id}: mean {np.mean(rand):.1f} +- {np.std(rand):.1f} over {len(rand)}")
    fig, ax = plt.subplots(figsize=(7, 4))
    _plot_returns(ax, curves, rand)
    ax.set_title(f"{env_id} (velocity not observed)")
    fig.tight_layout()
    fig.savefig(args.out, dpi=120)
    print(f"wrote {args.out}")


def _frame_strip(model: RSSM, obs: torch.Tensor, action: torch.Tensor, context: int) -> np.ndarray:
    """Real (top) vs predicted (bottom) frames of the open-loop part: ``(2 S, H S, 3)`` uint8."""
    pred = model.open_loop_prediction(obs, action, context, torch.Generator().manual_seed(0))
    pred = float_to_image(pred[0]).permute(0, 2, 3, 1)  # (H, S, S, C)
    real = obs[0, context:]
    if not model.channels_last:
        real = real.permute(0, 2, 3, 1)
    row = lambda x: torch.cat(list(x), dim=1)  # noqa: E731
    return torch.cat([row(real), row(pred)], dim=0).numpy()


def pixels(args: argparse.Namespace) -> None:
    """Returns and open-loop error over training, plus a predicted-vs-real frame strip."""
    s = json.loads((Path(args.run) / "summary.json").read_text())
    cfg = s["config"]
    plan = [m for m in _metrics(args.run) if m["kind"] == "plan"]
    seeds, returns = _curve(args.run)
    errs = [float(np.mean(m["openloop_mse"])) for m in plan]
    print(f"seed episodes {_fmt(seeds)}")
    print(f"planning episodes {_fmt(returns)}")
    print("open-loop MSE (10 steps, per pixel, [-0.5, 0.5] units) before each planning episode:")
    print("  [" + ", ".join(f"{e:.4f}" for e in errs) + "]")
    rand = random_returns(s["env"], args.random_episodes)
    print(f"random on {s['env']}: mean {np.mean(rand):.1f} +- {np.std(rand):.1f} over {len(rand)}")
    model, _ = load_checkpoint(Path(args.run) / "model.pt", expected_class=RSSM)
    pc = dataclasses.replace(
        PlanetConfig(),
        env_id=s["env"],
        seed=s["seed"],
        action_repeat=cfg["action_repeat"],
        eval_context=cfg["eval_context"],
        eval_horizon=cfg["eval_horizon"],
        max_episode_steps=cfg["max_episode_steps"],
    )
    batch = held_out_batch(pc)
    real = batch.obs[:, pc.eval_context :].float() / 255.0
    last = batch.obs[:, pc.eval_context - 1 : pc.eval_context].float() / 255.0
    copy_mse = (real - last).square().mean(dim=(0, 2, 3, 4))
    print("copy-last-observed-frame baseline MSE per predicted step (same held-out chunks):")
    print(
        "  [" + ", ".join(f"{e:.4f}" for e in copy_mse.tolist()) + f"], mean {copy_mse.mean():.4f}"
    )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    _plot_returns(ax1, {"RSSM from pixels": returns}, rand)
    ax1.set_title(f"{s['env']}: returns")
    ax2.plot(range(1, len(errs) + 1), errs, marker=".", label="RSSM open loop")
    ax2.axhline(float(copy_mse.mean()), color="gray", ls="--", label="copy last observed frame")
    ax2.legend()
    ax2.set_xlabel("planning episode (model trained before it)")
    ax2.set_ylabel("open-loop MSE per pixel")
    ax2.set_title(f"{cfg['eval_horizon']}-step open-loop image prediction error")
    fig.tight_layout()
    fig.savefig(f"{out}_curves.png", dpi=120)
    strip = _frame_strip(model, batch.obs[args.chunk : args.chunk + 1],
                         batch.action[args.chunk : args.chunk + 1], pc.eval_context)  # fmt: skip
    fig, ax = plt.subplots(figsize=(12, 2.8))
    ax.imshow(strip, interpolation="nearest")
    ax.set_axis_off()
    ax.set_title(
        f"held-out episode, after {pc.eval_context} observed frames: real (top) vs "
        f"{pc.eval_horizon}-step open-loop prediction (bottom)"
    )
    fig.tight_layout()
    fig.savefig(f"{out}_strip.png", dpi=120)
    print(f"wrote {out}_curves.png and {out}_strip.png")


def main() -> None:
    """Parse the subcommand and draw."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(required=True)
    a = sub.add_parser("pomdp")
    a.add_argument("--run", action="append", required=True, metavar="LABEL=DIR",
                   help="a run directory and its legend label (repeatable)")  # fmt: skip
    a.add_argument("--env", default="mbrl/PendulumNoVel-v0", help="env of the random baseline")
    a.add_argument("--out", default="docs/figures/rssm_pomdp.png")
    a.add_argument("--random-episodes", type=int, default=30)
    a.set_defaults(func=pomdp)
    b = sub.add_parser("pixels")
    b.add_argument("--run", required=True)
    b.add_argument("--out", default="docs/figures/rssm_pixels")
    b.add_argument("--chunk", type=int, default=1, help="which held-out chunk to draw")
    b.add_argument("--random-episodes", type=int, default=30)
    b.set_defaults(func=pixels)
    args = p.parse_args()
    torch.set_num_threads(1)
    args.func(args)


if __name__ == "__main__":
    main()
