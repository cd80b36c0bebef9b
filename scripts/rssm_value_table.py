"""Table of PlaNet runs with and without a learned latent value (issue 18, item 3).

Usage::

    python scripts/rssm_value_table.py "PlaNet H12=results/rssm18/planet_s0" \\
        "value H5=results/rssm18/value_s0" ...

Each argument is ``label=run_dir`` (an ``mbrl run --model rssm`` output directory). Prints one
markdown row per run: mean return of the planning episodes, of the last 10, the best, and the
median over planning episodes of their mean plan ms per decision.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path


def summarise(run_dir: Path) -> dict[str, float]:
    """Planning-episode figures of one run directory's ``metrics.jsonl``."""
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    plan = [r for r in rows if r["kind"] != "seed"]
    if not plan:
        raise ValueError(f"{run_dir}: no planning episodes in metrics.jsonl")
    returns = [r["return"] for r in plan]
    return {
        "episodes": len(plan),
        "mean": statistics.fmean(returns),
        "last10": statistics.fmean(returns[-10:]),
        "best": max(returns),
        "plan_ms": statistics.median(r["plan_ms"] for r in plan),
    }


def main() -> None:
    """Print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", metavar="LABEL=DIR")
    args = parser.parse_args()
    print("| run | planning episodes | mean | last 10 | best | plan ms / decision (median) |")
    print("|---|---:|---:|---:|---:|---:|")
    for item in args.runs:
        label, sep, path = item.partition("=")
        if not sep:
            parser.error(f"expected LABEL=DIR, got {item!r}")
        s = summarise(Path(path))
        print(
            f"| {label} | {s['episodes']} | {s['mean']:.0f} | {s['last10']:.0f} | "
            f"{s['best']:.0f} | {s['plan_ms']:.{0 if s['plan_ms'] >= 10 else 2}f} |"
        )


if __name__ == "__main__":
    main()
