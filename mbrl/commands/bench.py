"""``mbrl bench``: the planner benchmark suite (``--suite``) and the speed benchmark (``speed``)."""

from __future__ import annotations

import argparse
import json
import sys

from mbrl.bench.executors import EXECUTOR_NAMES, make_executor
from mbrl.bench.speed import speed_report
from mbrl.bench.suite import load_suite, run_suite, suite_names
from mbrl.models.registry import model_names
from mbrl.planners.registry import planner_names
from mbrl.seeding import resolve_device
from mbrl.util.signals import EXIT_SIGTERM, Terminated, sigterm_raises


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``bench`` subcommand."""
    p = subparsers.add_parser(
        "bench",
        help="benchmarks: '--suite NAME --out DIR' runs a planner grid; 'speed' times rollouts",
        description="'mbrl bench --suite NAME --out DIR' runs a grid of envs x models x planners "
        "x seeds (a shipped suite name or a TOML file), each cell an isolated run, resumable: "
        "per-episode JSON lines in DIR/cells, DIR/summary.csv; then 'mbrl report DIR'. "
        "'mbrl bench speed' prints model-steps/s of the rollout engine next to a bare batched "
        "forward pass (measured in the same run, interleaved) per model kind, and planner "
        "latency per action at the PETS shape.",
    )
    p.add_argument("mode", nargs="?", choices=["speed"], help="'speed' for the speed benchmark")
    g = p.add_argument_group("suite")
    g.add_argument(
        "--suite",
        default=None,
        help=f"shipped suite {suite_names()} or a path to a suite .toml file",
    )
    g.add_argument("--out", default=None, help="results directory (resumable)")
    g.add_argument(
        "--executor",
        default="local",
        choices=list(EXECUTOR_NAMES),
        help="local process pool (default), ray cluster, or inline (this process)",
    )
    g.add_argument(
        "--workers",
        type=int,
        default=None,
        help="local executor: processes (default: CPUs // threads per cell)",
    )
    g.add_argument(
        "--ray-address",
        default=None,
        help="ray executor: cluster address for ray.init (default: start Ray locally)",
    )
    g.add_argument("--list", action="store_true", help="list the suite's cells and exit")
    g.add_argument("--quiet", action="store_true", help="no progress bar or per-cell lines")
    s = p.add_argument_group("speed")
    s.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default %(default)s)")
    s.add_argument(
        "--repeats", type=int, default=5, help="timed repeats per figure (default %(default)s)"
    )
    s.add_argument("--no-bf16", action="store_true", help="skip the bfloat16 rows")
    s.add_argument(
        "--models",
        default=None,
        help=f"comma-separated model kinds to time (default: those of {model_names()} that "
        "build at the standard shape)",
    )
    s.add_argument(
        "--planners",
        default=None,
        help=f"comma-separated planners to time (default: those of {planner_names()} that "
        "plan with the PETS ensemble)",
    )
    s.add_argument(
        "--compiled",
        action="store_true",
        help="also time the CUDA-graph / torch.compile rollout path against eager",
    )
    s.add_argument("--json", default=None, help="also write the rows to this JSON file")
    p.set_defaults(func=main)


def _format(rows: list[dict]) -> str:
    lines = []
    for r in rows:
        if r["what"] == "rollout":
            label = f"rollout {r.get('model', 'ensemble')}"
            if r.get("backend", "eager") != "eager":
                label += f" [{r['backend']}]"
            lines.append(
                f"{label:28s} {r['shape']:18s} {r['dtype']:9s} engine {r['engine Msteps/s']:8.3f} "
                f"Msteps/s   bare forward {r['bare Msteps/s']:8.3f} Msteps/s   ratio {r['ratio']:.3f}"
                + (f"   ({r['note']})" if r.get("note") else "")
            )
        elif r["what"] == "skipped":
            lines.append(f"skipped {r['item']}: {r['reason']}")
        else:
            lines.append(
                f"{r['what']:28s} {r['shape']:18s} {r['dtype']:9s} {r['ms']:9.1f} ms"
                + (f"   ({r['note']})" if r.get("note") else "")
            )
    return "\n".join(lines)


def _names(text: str | None) -> list[str] | None:
    return None if text is None else [t.strip() for t in text.split(",") if t.strip()]


def _main_speed(args: argparse.Namespace) -> int:
    device = resolve_device(args.device)
    rows = speed_report(
        device,
        repeats=args.repeats,
        include_bf16=not args.no_bf16,
        models=_names(args.models),
        planners=_names(args.planners),
        compiled=args.compiled,
        log=lambda msg: print(f"timing {msg} ...", file=sys.stderr, flush=True),
    )
    print(_format(rows))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=2)
    return 0


def _main_suite(args: argparse.Namespace) -> int:
    suite = load_suite(args.suite, check_device=args.executor != "ray")
    if args.list:
        for spec in suite.cells:
            print(spec.cell_id)
        print(f"{len(suite.cells)} cells")
        return 0
    if not args.out:
        raise ValueError("--out DIR is required with --suite (results go there; re-run to resume)")
    threads = max(s.threads for s in suite.cells)
    with make_executor(
        args.executor, workers=args.workers, threads=threads, ray_address=args.ray_address
    ) as executor:
        summary = run_suite(suite, args.out, executor, progress=not args.quiet)
    if summary.failed:
        print(f"{len(summary.failed)} cell(s) failed: {', '.join(summary.failed)}")
        print(f"re-run the same command to retry them; 'mbrl report {args.out}' for the report")
        return 1
    print(f"next: mbrl report {args.out}")
    return 0


def main(args: argparse.Namespace) -> int:
    """Dispatch: ``speed`` runs the speed benchmark, ``--suite`` the benchmark suite.

    Returns:
        0 (1 when cells failed); 143 on SIGTERM, after ending the worker processes (one line
        on stderr; finished cells are kept and a re-run resumes).
    """
    if args.mode == "speed":
        if args.suite:
            raise ValueError("give either 'speed' or --suite NAME, not both")
        return _main_speed(args)
    if args.suite:
        try:
            with sigterm_raises():  # unwinds through the executor, which ends its workers
                return _main_suite(args)
        except Terminated:
            where = f"; finished cells are kept in {args.out}: re-run to resume" if args.out else ""
            print(
                f"mbrl bench: terminated by SIGTERM; worker processes ended{where}", file=sys.stderr
            )
            return EXIT_SIGTERM
    raise ValueError(
        f"say what to run: 'mbrl bench speed' or 'mbrl bench --suite NAME --out DIR' "
        f"(suites: {suite_names()})"
    )
