"""``mbrl surrogate``: learn a surrogate env from real transitions and save it as a directory.

The directory opens anywhere with ``gymnasium.make("mbrl/Surrogate-v0", path=DIR)`` (after
``import mbrl``) or ``gymnasium.make("mbrl.dyna:mbrl/Surrogate-v0", path=DIR)``.
"""

from __future__ import annotations

import argparse

from mbrl.commands.options import finite_float, int_at_least, output_dir, parse_key_values
from mbrl.dyna.job import SB3_ALGOS, SurrogateJobConfig, build_surrogate


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``surrogate`` subcommand."""
    defaults = SurrogateJobConfig()
    p = subparsers.add_parser(
        "surrogate",
        help="collect transitions, fit a model, save it as a gymnasium env (mbrl/Surrogate-v0)",
        description="Collect --steps real transitions (random actions, or a saved SB3 policy), fit "
        "a dynamics model (and reward/termination models when the env has no known ones), and "
        "write the surrogate to --out. Load it with "
        "gymnasium.make('mbrl/Surrogate-v0', path=OUT) after `import mbrl`.",
    )
    p.add_argument("--env", default=defaults.env_id, help="gymnasium id (default %(default)s)")
    p.add_argument(
        "--steps",
        type=int_at_least(2),
        default=defaults.steps,
        help="real transitions (default %(default)s)",
    )
    p.add_argument(
        "--out", required=True, type=output_dir, help="directory to write the surrogate to"
    )
    p.add_argument(
        "--seed",
        type=int_at_least(0),
        default=defaults.seed,
        help="random seed (default %(default)s)",
    )
    p.add_argument(
        "--model",
        default=defaults.model,
        choices=["ensemble", "mlp"],
        help="dynamics model (default %(default)s)",
    )
    p.add_argument(
        "--model-opt",
        action="append",
        metavar="KEY=VALUE",
        help="model config override (repeatable), e.g. hidden_size=128",
    )
    p.add_argument(
        "--reward",
        default=defaults.reward,
        choices=["known", "learned"],
        help="reward/termination: the env's known functions or learned models (default %(default)s)",
    )
    p.add_argument("--policy", default=None, help="collect with this saved SB3 policy (.zip)")
    p.add_argument(
        "--policy-algo",
        default=defaults.policy_algo,
        choices=list(SB3_ALGOS),
        help="SB3 algorithm of --policy (default %(default)s)",
    )
    p.add_argument(
        "--start-states",
        default=defaults.start_states,
        choices=["all", "initial"],
        help="episode starts: every collected state or only observed initial states "
        "(default %(default)s)",
    )
    p.add_argument(
        "--max-episode-steps",
        type=int_at_least(1),
        default=None,
        help="surrogate episode length (default: env's)",
    )
    p.add_argument(
        "--penalty",
        type=finite_float(minimum=0.0),
        default=0.0,
        help="MOPO uncertainty penalty on the reward (default %(default)s)",
    )
    p.add_argument(
        "--fit-steps",
        type=int_at_least(1),
        default=defaults.fit.max_steps,
        help="max model gradient steps (default %(default)s)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars or log lines")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    """Build the surrogate from parsed flags and print where it is and how to load it."""
    import dataclasses

    defaults = SurrogateJobConfig()
    cfg = SurrogateJobConfig(
        env_id=args.env,
        steps=args.steps,
        out=args.out,
        seed=args.seed,
        model=args.model,
        model_options=parse_key_values(args.model_opt, "--model-opt"),
        reward=args.reward,
        policy=args.policy,
        policy_algo=args.policy_algo,
        start_states=args.start_states,
        max_episode_steps=args.max_episode_steps,
        uncertainty_penalty=args.penalty,
        fit=dataclasses.replace(defaults.fit, max_steps=args.fit_steps),
        progress=not args.quiet,
    )
    result = build_surrogate(cfg)
    meta = result.env.surrogate_info
    print(
        f"surrogate of {meta['env_id']} in {result.path}: {len(result.buffer)} transitions, "
        f"model held-out score {result.fit_report.best_val_score:.4g}, reward {meta['reward']}, "
        f"termination {meta['termination']}, {meta['n_start_states']} start states"
    )
    print(f"load it with: gymnasium.make('mbrl/Surrogate-v0', path={str(result.path)!r})")
    return 0
