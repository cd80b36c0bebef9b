"""``mbrl bench speed``: rollout throughput vs a bare forward pass, and planner latency."""

from __future__ import annotations

import argparse
import json

from mbrl.bench.speed import speed_report
from mbrl.seeding import resolve_device


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``bench`` subcommand."""
    p = subparsers.add_parser(
        "bench",
        help="benchmarks: 'speed' times rollouts and planners at standard shapes",
        description="'mbrl bench speed' prints model-steps/s of the rollout engine next to a bare "
        "batched forward pass of the same network (measured in the same run, interleaved), and "
        "CEM/iCEM latency per action at the PETS and mbrl-lib shapes, in float32 and bfloat16.",
    )
    p.add_argument("mode", choices=["speed"], help="which benchmark")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default %(default)s)")
    p.add_argument(
        "--repeats", type=int, default=5, help="timed repeats per figure (default %(default)s)"
    )
    p.add_argument("--no-bf16", action="store_true", help="skip the bfloat16 rows")
    p.add_argument("--json", default=None, help="also write the rows to this JSON file")
    p.set_defaults(func=main)


def _format(rows: list[dict]) -> str:
    lines = []
    for r in rows:
        if r["what"] == "rollout":
            lines.append(
                f"rollout  {r['shape']:18s} {r['dtype']:9s} engine {r['engine Msteps/s']:7.2f} Msteps/s   "
                f"bare forward {r['bare Msteps/s']:7.2f} Msteps/s   ratio {r['ratio']:.3f}"
            )
        else:
            lines.append(f"{r['what']:17s} {r['shape']:18s} {r['dtype']:9s} {r['ms']:9.1f} ms")
    return "\n".join(lines)


def main(args: argparse.Namespace) -> int:
    """Run the speed benchmark and print the table."""
    device = resolve_device(args.device)
    rows = speed_report(device, repeats=args.repeats, include_bf16=not args.no_bf16)
    print(_format(rows))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=2)
    return 0
