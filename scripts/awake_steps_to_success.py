"""Steps-to-success per episode of an ``mbrl run --env mbrl/AwakeSteering-v0 --out DIR`` run.

Reads ``DIR/buffer.pt``, splits it into episodes, and prints for each: the env steps so far,
the episode length, and whether it ended in success (final RMS below the success threshold).
Then reports the first point after which every episode succeeds with a mean length <= 3,
counted honestly: all env steps before it, split into random steps and learner (MPC) steps,
read from ``DIR/metrics.jsonl`` (seed episodes, and the ``random_steps`` an MPC episode of a
``--seed-episodes 0`` run starts with). Only episodes without random steps count as solved.

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


def first_solved_point(
    eps: list[tuple[int, int, bool]], max_mean_steps: float = 3.0, first_planned: int = 0
) -> int | None:
    """Env steps after which every episode succeeds with mean length <= ``max_mean_steps``;
    only episodes from index ``first_planned`` on count (a random walk that happens to
    steer the beam is no success of the learner)."""
    for i, (before, _, _) in enumerate(eps):
        if i < first_planned:
            continue
        later = eps[i:]
        if (
            all(ok for _, _, ok in later)
            and sum(n for _, n, _ in later) / len(later) <= max_mean_steps
        ):
            return before
    return None


def _records(run_dir: str) -> list[dict]:
    lines = Path(run_dir, "metrics.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def _random_steps(record: dict) -> int:
    return int(record.get("random_steps", record["steps"] if record["kind"] == "seed" else 0))


def first_planned_episode(run_dir: str) -> int:
    """Index of the first episode after the last one with random steps (seed episodes, or
    the random start of the first MPC episodes of a ``--seed-episodes 0`` run)."""
    rows = _records(run_dir)
    with_random = [i for i, r in enumerate(rows) if _random_steps(r) > 0]
    return with_random[-1] + 1 if with_random else 0


def seed_steps(run_dir: str) -> int:
    """Random env steps of the run in ``run_dir`` (its metrics file): every step of a seed
    episode, and the random steps an MPC episode starts with when the run had no seed
    episodes (``--seed-episodes 0``; the ``random_steps`` of its records)."""
    return sum(_random_steps(r) for r in _records(run_dir))


def main(dirs: list[str]) -> None:
    """Print the per-episode table and the solved point of each run directory."""
    for d in dirs:
        eps = episodes(f"{d}/buffer.pt")
        print(f"== {d}: {len(eps)} episodes, {sum(n for _, n, _ in eps)} env steps")
        print("  ".join(f"{b}:{n}{'' if ok else 'x'}" for b, n, ok in eps))
        point = first_solved_point(eps, first_planned=first_planned_episode(d))
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
