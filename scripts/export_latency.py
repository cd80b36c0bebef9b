"""Export a run's policy and planner, check parity, and report latency per call.

For each of ``--what`` (default both) the run directory's object is exported (``mbrl
export``), the artefact is loaded with :mod:`mbrl.export.loader`, compared with the Python
object on ``--parity`` random observations (max absolute difference), and timed over
``--calls`` calls of one observation (median and p99) on CPU with each of ``--threads`` and,
when CUDA is available (``--cuda auto``), on the GPU. One JSON object per line goes to stdout
and, with ``--json``, to a file.

    python scripts/export_latency.py RUN_DIR --out-dir artefacts/ \
        --planner-opt iterations=3 --planner-opt population=200 --threads 1 2

Timings on a shared machine include the other processes' load: report them as measured
there, with the load (``os.getloadavg``) printed alongside.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import torch

from mbrl.agents.env_factory import make_env
from mbrl.commands.options import parse_key_values
from mbrl.export import (
    export_run,
    load,
    measure_latency,
    planner_parity,
    policy_parity,
    random_observations,
)


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv``, export, check and time; one JSON line per measurement."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run_dir")
    p.add_argument("--out-dir", required=True, help="where the .pt2 artefacts are written")
    p.add_argument(
        "--what", nargs="+", default=["policy", "planner"], choices=["policy", "planner"]
    )
    p.add_argument("--planner-opt", action="append", metavar="KEY=VALUE")
    p.add_argument("--horizon", type=int, default=None)
    p.add_argument("--policy-source", default="auto")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--parity", type=int, default=1000, help="random observations compared")
    p.add_argument("--calls", type=int, default=1000, help="timed calls per measurement")
    p.add_argument("--threads", type=int, nargs="+", default=[torch.get_num_threads()])
    p.add_argument("--cuda", choices=["auto", "no"], default="auto")
    p.add_argument("--json", default=None, help="also append the JSON lines to this file")
    args = p.parse_args(argv)

    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    lines: list[dict] = []

    def emit(row: dict) -> None:
        row = {**row, "loadavg_1min": round(os.getloadavg()[0], 2), "cpus": os.cpu_count()}
        lines.append(row)
        print(json.dumps(row), flush=True)

    devices = ["cpu"] + (["cuda"] if args.cuda == "auto" and torch.cuda.is_available() else [])
    for what in args.what:
        exported, source = export_run(
            args.run_dir,
            what,
            out_dir / f"{what}.pt2",
            seed=args.seed,
            planner_options=parse_key_values(args.planner_opt, "--planner-opt"),
            horizon=args.horizon,
            policy_source=args.policy_source,
        )
        spec = exported.spec
        env = make_env(spec["env_id"])
        space = env.observation_space
        env.close()
        deployed = load(exported.path)
        call = deployed.plan if what == "planner" else deployed
        if args.parity:
            obs = random_observations(space, args.parity, seed=args.seed)
            if what == "planner":
                diff = planner_parity(source, args.seed, call, obs)
            else:
                diff = policy_parity(source, call, obs)
            emit(
                {
                    "what": what,
                    "parity_max_abs_diff": diff,
                    "observations": args.parity,
                    "settings": spec.get("planner", spec["source"]),
                }
            )
        one = random_observations(space, 1, seed=args.seed + 1)[0]
        for device in devices:
            runner = load(exported.path, device=device)
            fn = runner.plan if what == "planner" else runner
            x = one.to(device)
            for threads in args.threads if device == "cpu" else [torch.get_num_threads()]:
                torch.set_num_threads(threads)
                report = measure_latency(
                    f"{what} artefact", lambda fn=fn, x=x: fn(x), args.calls, device=device
                )
                emit({"what": what, **report.to_json()})
    if args.json:
        with open(args.json, "a") as fh:
            fh.writelines(json.dumps(row) + "\n" for row in lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
