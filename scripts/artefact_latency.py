"""Latency of exported artefacts on the machine they will run on, with only torch installed.

Loads each ``.pt2`` with ``mbrl/export/loader.py`` (imported by path: no mbrl package needed)
and times ``--calls`` calls of one observation (the planner: ``plan``, cold start; a belief
policy: ``act``, the belief kept) on CPU for
each ``--threads`` count and, when CUDA is available, on the GPU (the program moved there by
the loader). One JSON line per measurement.

    python scripts/artefact_latency.py policy.pt2 planner.pt2 --threads 1 2 --calls 1000
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import json
import os
import sys
from pathlib import Path

import torch

_LOADER = Path(__file__).resolve().parents[1] / "mbrl" / "export" / "loader.py"


def _loader():
    spec = importlib.util.spec_from_file_location("mbrl_artefact_loader", _LOADER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv: list[str] | None = None) -> int:
    """Time every artefact on every device / thread count; print JSON lines."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("artefacts", nargs="+")
    p.add_argument("--calls", type=int, default=1000)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--threads", type=int, nargs="+", default=[torch.get_num_threads()])
    p.add_argument("--cuda", choices=["auto", "no"], default="auto")
    p.add_argument(
        "--clock",
        choices=["wall", "cpu"],
        default="wall",
        help="CPU rows: elapsed time, or process CPU time (a shared machine; see time_calls)",
    )
    p.add_argument("--json", default=None, help="also append the lines to this file")
    args = p.parse_args(argv)
    loader = _loader()
    cuda = args.cuda == "auto" and torch.cuda.is_available()
    rows = []
    for path in args.artefacts:
        for device in ["cpu"] + (["cuda"] if cuda else []):
            try:
                art = loader.load(path, device=device)
            except Exception as err:  # report and go on: one artefact's failure is a result
                row = {"artefact": Path(path).name, "device": device, "error": repr(err)[:500]}
                print(json.dumps(row), flush=True)
                rows.append(row)
                continue
            obs = torch.randn(art.obs_dim, generator=torch.Generator().manual_seed(0)) * 5
            # A planner plans cold; a belief policy acts, its belief carried across calls.
            kind = art.spec["kind"]
            fn = art.plan if kind == "planner" else art.act if kind == "belief_policy" else art
            call = functools.partial(fn, obs)
            for threads in args.threads if device == "cpu" else [torch.get_num_threads()]:
                torch.set_num_threads(threads)
                clock = args.clock if device == "cpu" else "wall"
                stats = loader.time_calls(call, args.calls, args.warmup, device, clock)
                row = {
                    "artefact": Path(path).name,
                    "kind": art.spec["kind"],
                    "device": device,
                    "threads": threads,
                    "calls": args.calls,
                    "clock": clock,
                    **stats,
                    "torch": torch.__version__,
                    "gpu": torch.cuda.get_device_name() if device == "cuda" else None,
                    "cpus_allowed": len(os.sched_getaffinity(0)),
                    "loadavg_1min": round(os.getloadavg()[0], 2),
                }
                rows.append(row)
                print(json.dumps(row), flush=True)
    if args.json:
        with open(args.json, "a") as fh:
            fh.writelines(json.dumps(r) + "\n" for r in rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
