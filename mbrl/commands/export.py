"""``mbrl export RUN_DIR --what policy|planner --out FILE.pt2``: a deployable artefact.

Also runnable as ``python -m mbrl.export ...`` (the same arguments). ``--check N`` compares
the loaded artefact with the Python object on ``N`` random observations and ``--latency N``
times ``N`` calls of one observation (median and p99).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from mbrl.commands.options import int_at_least, parse_key_values

HELP = "export a run's policy or CEM planner as a torch.export artefact (.pt2) for deployment"


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``export`` subcommand."""
    p = subparsers.add_parser(
        "export",
        help=HELP,
        description="Export the planner (fixed CEM iterations with the model inside) or a "
        "policy (an imagination actor, the run's learned policy, or one distilled from the MPC "
        "episodes) of RUN_DIR as a self-contained torch.export program with its input/output "
        "spec. Load it with mbrl/export/loader.py, which needs only torch.",
    )
    add_arguments(p)
    p.set_defaults(func=main)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The arguments of ``mbrl export`` (shared with ``python -m mbrl.export``)."""
    from mbrl.export import POLICY_SOURCES, WHAT

    p.add_argument("run_dir", metavar="RUN_DIR", help="an `mbrl run --out` directory")
    p.add_argument("--what", required=True, choices=WHAT, help="what to export")
    p.add_argument("--out", required=True, help="the artefact file to write (.pt2)")
    p.add_argument(
        "--seed", type=int_at_least(0), default=0, help="planner noise seed (default %(default)s)"
    )
    p.add_argument("--device", default="cpu", help="device the artefact runs on (default cpu)")
    p.add_argument(
        "--max-batch",
        type=int_at_least(2),
        default=4096,
        help="largest batch of observations accepted (default %(default)s)",
    )
    p.add_argument(
        "--planner-opt",
        action="append",
        metavar="KEY=VALUE",
        help="CEM setting replacing the run's (repeatable), e.g. iterations=3 population=200",
    )
    p.add_argument(
        "--horizon", type=int_at_least(1), default=None, help="horizon replacing the run's"
    )
    p.add_argument(
        "--policy-source",
        choices=POLICY_SOURCES,
        default="auto",
        help="policy: actor.pt, policy_model.pt, or distilled from the MPC episodes "
        "(default auto: the first that exists, in that order)",
    )
    p.add_argument(
        "--import",
        dest="imports",
        action="append",
        metavar="MODULE",
        default=[],
        help="import MODULE first (repeatable; the current directory is searched too): one "
        "registering the run's env or a model class of your own",
    )
    p.add_argument(
        "--check",
        type=int_at_least(0),
        default=0,
        metavar="N",
        help="compare with the Python object on N random observations (default 0: no)",
    )
    p.add_argument(
        "--latency",
        type=int_at_least(0),
        default=0,
        metavar="N",
        help="time N calls of one observation, print median and p99 (default 0: no)",
    )


def main(args: argparse.Namespace) -> int:
    """Run ``mbrl export`` with parsed ``args``; prints the artefact, and the checks asked."""
    import importlib

    from mbrl.agents.env_factory import make_env
    from mbrl.export import export_run, load, measure_latency, random_observations
    from mbrl.export.checks import planner_parity, policy_parity

    if args.imports and "" not in sys.path and os.getcwd() not in sys.path:
        # As `python -m` would: a user's module next to the run is importable.
        sys.path.insert(0, os.getcwd())
    for module in args.imports:
        try:
            importlib.import_module(module)
        except ImportError as err:
            raise ValueError(f"--import {module}: {err}") from err

    exported, source = export_run(
        args.run_dir,
        args.what,
        args.out,
        seed=args.seed,
        device=args.device,
        max_batch=args.max_batch,
        planner_options=parse_key_values(args.planner_opt, "--planner-opt"),
        horizon=args.horizon,
        policy_source=args.policy_source,
    )
    spec = exported.spec
    print(f"wrote {exported.path} ({spec['kind']} of {spec['env_id']}, device {spec['device']})")
    print("inputs: " + json.dumps([(t["name"], t["shape"]) for t in spec["inputs"]]))
    print("outputs: " + json.dumps([(t["name"], t["shape"]) for t in spec["outputs"]]))
    for key in ("planner", "belief"):
        if key in spec:
            print(f"{key}: " + json.dumps(spec[key]))
    if not (args.check or args.latency):
        return 0
    deployed = load(exported.path)
    env = make_env(spec["env_id"])
    try:
        space = env.observation_space
    finally:
        env.close()
    is_planner = spec["kind"] == "planner"
    if spec["kind"] == "belief_policy":
        return _check_belief_policy(args, deployed, source, space)
    call = deployed.plan if is_planner else deployed
    if args.check:
        obs = random_observations(space, args.check, seed=args.seed)
        if is_planner:
            diff = planner_parity(source, args.seed, call, obs)
        else:
            diff = policy_parity(source, call, obs)
        print(f"parity: max |artefact - python| over {args.check} observations = {diff:.3g}")
    if args.latency:
        one = random_observations(space, 1, seed=args.seed)[0]
        report = measure_latency(
            f"{spec['kind']} artefact", lambda: call(one), args.latency, device=args.device
        )
        print(f"latency: {report.line()}")
    return 0


BELIEF_CHECK_STEPS = 20
"""Observations per sequence in ``--check`` of a belief policy (each from the zero belief)."""


def _check_belief_policy(
    args: argparse.Namespace, deployed: Any, source: tuple[Any, Any], space: Any
) -> int:
    """``--check N``: N sequences of random observations stepped through the artefact and
    the Python filter + actor; ``--latency N``: N calls of ``act`` (the belief kept)."""
    from mbrl.export import measure_latency, random_observations
    from mbrl.export.checks import belief_policy_parity

    rssm, actor = source
    if args.check:
        flat = random_observations(space, BELIEF_CHECK_STEPS * args.check, seed=args.seed)
        obs = flat.reshape(BELIEF_CHECK_STEPS, args.check, -1)
        diff = belief_policy_parity(rssm, actor, deployed.step, obs)
        print(
            f"parity: max |artefact - python| over {args.check} sequences of "
            f"{BELIEF_CHECK_STEPS} observations (actions and beliefs) = {diff:.3g}"
        )
    if args.latency:
        one = random_observations(space, 1, seed=args.seed)[0]
        deployed.reset()
        report = measure_latency(
            "belief_policy artefact", lambda: deployed.act(one), args.latency, device=args.device
        )
        print(f"latency: {report.line()}")
    return 0


def cli(argv: list[str] | None = None) -> int:
    """``python -m mbrl.export``: parse ``argv`` and run; bad input exits with code 2."""
    parser = argparse.ArgumentParser(prog="python -m mbrl.export", description=HELP)
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return main(args)
    except (ValueError, TypeError) as err:
        print(f"mbrl export: error: {err}", file=sys.stderr)
        return 2
