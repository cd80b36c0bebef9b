"""Steps-to-success per episode of an ``mbrl run --env mbrl/AwakeSteering-v0 --out DIR`` run.

Reads ``DIR/buffer.pt``, splits it into episodes, and prints for each: the env steps so far,
the episode length, and whether it ended in success (final RMS below the success threshold).
Then reports the first point after which every episode succeeds with a mean length <= 3,
counted honestly: all env steps before it, split into random seed steps and learner (MPC)
steps, the seed episodes read from ``DIR/metrics.jsonl`` (``kind == "seed"``).

Usage: python scripts/awake_steps_to_success.py DIR [DIR ...]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from mbrl.data import TransitionBuffer
from mbrl.envs.awake import AwakeSteeringEnv


def episodes(path: str) -> list[tuple[int, int, bool]]:
    """``(env steps before the episode, length, success)`` per episode of the saved buffer."""
    data = TransitionBuffer.load(path).all()
    threshold = AwakeSteeringEnv().success_rms_mm
    out = []
    for ep in data.episodes():
        end = ep.stop - 1
        rms = data.next_obs[end].square().mean().sqrt().item()
        out.append((ep.start, end - ep.start + 1, bool(data.terminated[end]) and rms < threshold))
    return out


def first_solved_point(eps: list[tuple[int, int, bool]], max_mean_steps: float = 3.0) -> int | None:
    """Env steps after which every episode succeeds with mean length <= ``max_mean_steps``."""
    for i, (before, _, _) in enumerate(eps):
        later = eps[i:]
        if (
            all(ok for _, _, ok in later)
            and sum(n for _, n, _ in later) / len(later) <= max_mean_steps
        ):
            return before
    return None


def seed_steps(run_dir: str) -> int:
    """Env steps of the random seed episodes of the run in ``run_dir`` (its metrics file)."""
    lines = Path(run_dir, "metrics.jsonl").read_text().splitlines()
    rows = [json.loads(line) for line in lines if line.strip()]
    return sum(int(r["steps"]) for r in rows if r["kind"] == "seed")


def main(dirs: list[str]) -> None:
    """Print the per-episode table and the solved point of each run directory."""
    for d in dirs:
        eps = episodes(f"{d}/buffer.pt")
        print(f"== {d}: {len(eps)} episodes, {sum(n for _, n, _ in eps)} env steps")
        print("  ".join(f"{b}:{n}{'' if ok else 'x'}" for b, n, ok in eps))
        point = first_solved_point(eps)
        if point is None:
            print("never solved")
        else:
            later = [e for e in eps if e[0] >= point]
            mean = sum(n for _, n, _ in later) / len(later)
            seeds = seed_steps(d)
            print(
                f"solved after {point} env steps; {seeds} seed steps, {max(0, point - seeds)} "
                f"learner steps before the point (every MPC episode counted): "
                f"{len(later)} later episodes all succeed, mean {mean:.2f} steps"
            )


if __name__ == "__main__":
    main(sys.argv[1:])
