"""Share of steps with the spill ripple below target, per episode of an ``mbrl run`` on the spill env.

Reads ``DIR/buffer.pt`` and ``DIR/summary.json`` of
``mbrl run --env mbrl/SpillControl-v0 --out DIR``, and prints per episode (seed episodes
marked) the share of steps whose measured ``A_spill`` (observation 0 after the step) is below
the target (0.15, the seeds' objective), the mean ``A_spill`` and the return. The last line
gives the share over all MPC episodes after the first ``--learning`` of them.

Usage: python scripts/spill_below_target.py DIR [DIR ...] [--learning 1] [--target 0.15]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from mbrl.data import TransitionBuffer
from mbrl.envs.spill import DEFAULT_TARGET_AMPLITUDE


def report(run_dir: Path, learning: int, target: float) -> float:
    """Print the table for one run directory; return the share below target after learning."""
    data = TransitionBuffer.load(run_dir / "buffer.pt").all()
    kinds = [e["kind"] for e in json.loads((run_dir / "summary.json").read_text())["episodes"]]
    episodes = data.episodes()
    if len(episodes) != len(kinds):
        raise ValueError(
            f"{run_dir}: buffer holds {len(episodes)} episodes, summary.json {len(kinds)}"
        )
    print(f"== {run_dir}")
    below_after = total_after = 0
    n_mpc = 0
    for i, (rows, kind) in enumerate(zip(episodes, kinds, strict=True)):
        amp = data.next_obs[rows, 0]
        below = int((amp < target).sum())
        print(
            f"episode {i:2d} [{kind:4s}] below {target}: {below / len(amp):6.1%}  "
            f"mean A_spill {amp.mean().item():.3f}  return {data.reward[rows].sum().item():8.2f}"
        )
        if kind == "mpc":
            n_mpc += 1
            if n_mpc > learning:
                below_after += below
                total_after += len(amp)
    share = below_after / total_after if total_after else float("nan")
    print(
        f"after {learning} learning MPC episode(s): {share:.1%} of {total_after} steps below {target}"
    )
    return share


def main() -> None:
    """Parse arguments and report every directory."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dirs", nargs="+", type=Path)
    parser.add_argument("--learning", type=int, default=1, help="MPC episodes not counted")
    parser.add_argument("--target", type=float, default=DEFAULT_TARGET_AMPLITUDE)
    args = parser.parse_args()
    for d in args.dirs:
        report(d, args.learning, args.target)


if __name__ == "__main__":
    main()
