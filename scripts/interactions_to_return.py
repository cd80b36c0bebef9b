"""Real interactions until an episode's return reaches a threshold, per run, and the curves.

Reads the per-episode records of a benchmark suite's output (``cells/*.jsonl``, one line per
episode) or of single runs (directories with ``metrics.jsonl``), and prints for every run:

- ``first_ok``: the first episode whose return is >= ``--threshold``;
- ``steps_at_end``: real env steps when that episode ended (every step counted: seed
  episodes, the random steps a learning episode starts with, and the episode itself), the
  issue's "interactions until the return of an episode is >= -250";
- ``steps_before``: real env steps before it started (the data the learner had);
- ``random``: how many of all steps were random (seed episodes and in-episode random steps);
- the returns of every episode.

Then one row per method (model / planner / tag) with the median over its seeds, and with
``--plot`` a figure of every run's episode returns against the real steps at each episode's
end, coloured by method (a dashed line at the threshold).

    mbrl bench --suite scripts/suites/gp_pendulum.toml --out results/gp_pendulum
    python scripts/interactions_to_return.py results/gp_pendulum --threshold -250 \
        --plot docs/figures/pendulum_interactions.png
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Episode:
    """One episode of a run: its return, its steps and how many were random."""

    episode_return: float
    steps: int
    env_steps: int
    random_steps: int


@dataclass(frozen=True)
class Run:
    """One run: the method it belongs to, its seed and its episodes in order."""

    method: str
    seed: int
    episodes: tuple[Episode, ...]

    def first_ok(self, threshold: float) -> int | None:
        """Index of the first episode with a return >= ``threshold`` (None: none)."""
        return next((i for i, e in enumerate(self.episodes) if e.episode_return >= threshold), None)


def _episode(d: dict) -> Episode:
    steps = int(d["steps"])
    # Older records have no random_steps: every seed-episode step was random, no other one.
    random = int(d.get("random_steps", steps if d.get("kind") == "seed" else 0))
    return Episode(float(d["return"]), steps, int(d["env_steps"]), random)


def _method(d: dict) -> str:
    tag = d.get("tag") or ""
    return f"{d['model']} + {d['planner']}" + (f" ({tag})" if tag else "")


def read_runs(paths: list[Path]) -> Iterator[Run]:
    """Every run under ``paths``: suite outputs (``cells/*.jsonl``) and run directories."""
    for path in paths:
        cells = sorted((path / "cells").glob("*.jsonl")) if (path / "cells").is_dir() else []
        for cell in cells:
            lines = [json.loads(x) for x in cell.read_text().splitlines() if x.strip()]
            if lines:
                yield Run(_method(lines[0]), int(lines[0]["seed"]), tuple(map(_episode, lines)))
        if (path / "metrics.jsonl").is_file():
            cfg = json.loads((path / "config.json").read_text())["config"]
            lines = [json.loads(x) for x in (path / "metrics.jsonl").read_text().splitlines() if x]
            label = {"model": cfg.get("model", "ensemble"), "planner": cfg.get("planner", "cem")}
            yield Run(
                _method({**label, "tag": path.name}),
                int(cfg.get("seed", 0)),
                tuple(map(_episode, lines)),
            )


def table(runs: list[Run], threshold: float) -> list[str]:
    """The per-run lines and the per-method medians."""
    out = [
        f"{'method':34s} {'seed':>4s} {'first_ok':>8s} {'steps_at_end':>12s} "
        f"{'steps_before':>12s} {'random':>6s}  returns"
    ]
    by_method: dict[str, list[int | None]] = defaultdict(list)
    for r in sorted(runs, key=lambda r: (r.method, r.seed)):
        i = r.first_ok(threshold)
        at_end = None if i is None else r.episodes[i].env_steps
        before = None if i is None else r.episodes[i].env_steps - r.episodes[i].steps
        # Random steps up to the episode that reached the threshold (all of them if none did).
        upto = r.episodes if i is None else r.episodes[: i + 1]
        random = sum(e.random_steps for e in upto)
        by_method[r.method].append(at_end)
        returns = " ".join(f"{e.episode_return:.0f}" for e in r.episodes)
        out.append(
            f"{r.method:34s} {r.seed:4d} {_opt(i):>8s} {_opt(at_end):>12s} {_opt(before):>12s} "
            f"{random:6d}  {returns}"
        )
    out.append("")
    out.append(f"{'method':34s} {'seeds':>5s} {'reached':>7s} {'median steps_at_end':>20s}")
    for method, values in sorted(by_method.items()):
        reached = [v for v in values if v is not None]
        median = statistics.median(reached) if len(reached) == len(values) else None
        out.append(
            f"{method:34s} {len(values):5d} {len(reached):7d} "
            f"{_opt(None if median is None else round(median)):>20s}"
        )
    return out


def _opt(v: int | None) -> str:
    return "-" if v is None else str(v)


def plot(runs: list[Run], threshold: float, path: Path) -> None:
    """Episode return against real steps at the episode's end, one line per run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = sorted({r.method for r in runs})
    colours = dict(zip(methods, plt.cm.tab10.colors, strict=False))
    fig, ax = plt.subplots(figsize=(7, 4.2))
    labelled: set[str] = set()
    for r in sorted(runs, key=lambda r: (r.method, r.seed)):
        xs = [e.env_steps for e in r.episodes]
        ys = [e.episode_return for e in r.episodes]
        label = None if r.method in labelled else r.method
        labelled.add(r.method)
        ax.plot(xs, ys, "o-", color=colours[r.method], alpha=0.8, ms=4, label=label)
    ax.axhline(threshold, ls="--", color="grey", lw=1)
    ax.set_xlabel("real env steps at the episode's end (seed steps included)")
    ax.set_ylabel("episode return")
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    print(f"wrote {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="+", type=Path, help="suite outputs or run directories")
    parser.add_argument("--threshold", type=float, default=-250.0, help="return to reach")
    parser.add_argument("--plot", type=Path, help="write the learning-curve figure here")
    args = parser.parse_args()
    runs = list(read_runs(args.paths))
    if not runs:
        parser.error(f"no runs found under {[str(p) for p in args.paths]}")
    print("\n".join(table(runs, args.threshold)))
    if args.plot is not None:
        plot(runs, args.threshold, args.plot)


if __name__ == "__main__":
    main()
