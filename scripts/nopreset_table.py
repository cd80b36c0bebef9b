"""The no-preset suite's table: last-3 return per seed against random and the reference
controller, the share of the random-to-reference gap closed, and planning time per step.

    mbrl bench --suite scripts/suites/nopreset.toml --out results/nopreset
    python scripts/reference_controllers.py --episodes 30 --json results/references.json
    python scripts/nopreset_table.py results/nopreset results/references.json

Gap closed = ``(last3 - random) / (reference - random)``, from the mean returns of random
actions and of the reference (``scripts/reference_controllers.py``). Planning time: mean ms
per step over the MPC episodes, the first and the last MPC episode's mean (flat means the
cost does not grow with the data), the median of the episodes' p99 and the deadline misses.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any


def _cells(results: Path) -> list[dict[str, Any]]:
    """One dict per finished cell: its done marker and its episode lines."""
    out = []
    for marker in sorted((results / "cells").glob("*.json")):
        done = json.loads(marker.read_text())
        lines = marker.with_suffix(".jsonl").read_text().splitlines()
        episodes = [json.loads(line) for line in lines if line.strip()]
        out.append({**done, "episodes": episodes})
    return out


def _row(cell: dict[str, Any], refs: dict[str, Any]) -> str:
    row, mpc = cell["row"], [e for e in cell["episodes"] if e["kind"] != "seed"]
    env = row["env"]
    last3 = statistics.mean(e["return"] for e in mpc[-3:])
    random, reference = refs[env]["random"]["mean"], refs[env]["reference"]["mean"]
    closed = (last3 - random) / (reference - random)
    plan = [e["plan_ms"] for e in mpc]
    p99 = statistics.median(e.get("plan_ms_p99") or 0.0 for e in mpc)
    misses = sum(int(e.get("deadline_misses") or 0) for e in mpc)
    steps = sum(int(e["steps"]) for e in mpc)
    options = cell.get("planner_options", {})
    size = (
        f"{row['planner']} {options['population']} x {options['iterations']}"
        if "population" in options
        else f"{row['planner']} (not sized)"
    )
    return (
        f"| {env} | {row['tag']} | {row['seed']} | {size} | {last3:.1f} | {random:.1f} | "
        f"{reference:.1f} | {100 * closed:.0f}% | {statistics.mean(plan):.0f} | "
        f"{plan[0]:.0f} / {plan[-1]:.0f} | {p99:.0f} | {misses} / {steps} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, help="the suite's --out directory")
    parser.add_argument("references", type=Path, help="reference_controllers.py --json file")
    args = parser.parse_args()
    refs = json.loads(args.references.read_text())
    print(
        "| env | tag | seed | planner | last-3 | random | reference | gap closed | "
        "plan ms | first / last episode ms | p99 ms | misses / steps |"
    )
    print("|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for cell in _cells(args.results):
        if cell["row"]["status"] == "ok" and cell["row"]["env"] in refs:
            print(_row(cell, refs))


if __name__ == "__main__":
    main()
