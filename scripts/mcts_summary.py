"""Per-episode returns and the mean of the last 3 MPC episodes of ``mbrl run --out DIR`` runs.

Reads ``DIR/metrics.jsonl`` of each run directory given (finished or still running) and prints
one line per run, then the bar check of issue #5 when ``--bar`` is given.

Usage:
    python scripts/mcts_summary.py /tmp/mcts/cp_0 /tmp/mcts/cp_1 /tmp/mcts/cp_2 --bar 400
    python scripts/mcts_summary.py /tmp/mcts/pend_0 --bar -400
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def mpc_returns(run_dir: Path) -> list[float]:
    """Returns of the MPC (non-seed) episodes logged in ``run_dir/metrics.jsonl``, in order."""
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        raise ValueError(f"run_dir {run_dir} has no metrics.jsonl (was it run with --out?)")
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [float(r["return"]) for r in rows if r["kind"] == "mpc"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="mbrl run --out directories")
    parser.add_argument("--last", type=int, default=3, help="episodes averaged (default 3)")
    parser.add_argument("--bar", type=float, default=None, help="least last-N mean to pass")
    args = parser.parse_args()
    means = []
    for run_dir in args.runs:
        rets = mpc_returns(run_dir)
        tail = rets[-args.last :]
        mean = sum(tail) / len(tail) if tail else float("nan")
        means.append(mean)
        shown = " ".join(f"{r:.1f}" for r in rets)
        print(f"{run_dir}: {len(rets)} MPC episodes [{shown}]  last-{args.last} mean {mean:.1f}")
    if args.bar is not None:
        ok = all(m >= args.bar for m in means)
        print(
            f"bar last-{args.last} mean >= {args.bar:g} on every run: {'MET' if ok else 'NOT MET'}"
        )


if __name__ == "__main__":
    main()
