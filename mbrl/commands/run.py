"""``mbrl run``: the model-based loop on any gymnasium env (default: Pendulum-v1, ensemble + CEM)."""

from __future__ import annotations

import argparse

from mbrl.agents.loop import RunConfig, run
from mbrl.agents.setup import LATENT_MODEL, run_model_names
from mbrl.commands.options import parse_key_values
from mbrl.planners.registry import planner_names


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``run`` subcommand."""
    defaults = RunConfig()
    p = subparsers.add_parser(
        "run",
        help="model-based RL loop: seed data, fit, plan with MPC, refit",
        description="Collect random seed episodes, then alternate model fitting and MPC episodes. "
        "Prints one line per episode; --out DIR writes metrics.jsonl, summary.json, the model "
        "checkpoint and the buffer.",
    )
    p.add_argument(
        "--env",
        default=defaults.env_id,
        help="gymnasium id, or module:Env-v0 (default %(default)s)",
    )
    p.add_argument(
        "--model",
        default=defaults.model,
        help=f"one of {run_model_names()} (default %(default)s); {LATENT_MODEL} runs the "
        "PlaNet loop (latent world model, see docs/rssm.md; its settings are --model-opt keys)",
    )
    p.add_argument(
        "--planner",
        default=defaults.planner,
        help=f"one of {planner_names()} (default %(default)s)",
    )
    p.add_argument(
        "--reward",
        default=defaults.reward,
        choices=["known", "learned"],
        help="task functions (default %(default)s)",
    )
    p.add_argument(
        "--termination",
        default=None,
        choices=["mlp", "box"],
        help="learned termination model with --reward learned: mlp classifier or box (learned "
        f"limits on the next observation) (default: env preset or {defaults.termination})",
    )
    # Flags an env preset may tune default to None, so a value the user typed (even one equal to
    # the built-in default) is known to be explicit and never replaced by the preset.
    p.add_argument(
        "--episodes", type=int, default=None, help=f"MPC episodes (default {defaults.episodes})"
    )
    p.add_argument(
        "--seed-episodes",
        type=int,
        default=None,
        help=f"random episodes first (default: env preset or {defaults.seed_episodes})",
    )
    p.add_argument(
        "--seed", type=int, default=defaults.seed, help="random seed (default %(default)s)"
    )
    p.add_argument(
        "--device", default=defaults.device, help="cpu, cuda or cuda:N (default %(default)s)"
    )
    p.add_argument("--out", default=None, help="output directory (default: none)")
    p.add_argument(
        "--horizon",
        type=int,
        default=None,
        help=f"planning horizon (default: env preset or {defaults.horizon})",
    )
    p.add_argument(
        "--gamma",
        type=float,
        default=None,
        help=f"planning discount (default: env preset or {defaults.gamma})",
    )
    p.add_argument(
        "--value",
        default=None,
        choices=["none", "learned"],
        help="learned: fit a state value to the real returns and let the planner score states "
        f"past its horizon with it (mcts; needs --gamma < 1) (default: env preset or "
        f"{defaults.value})",
    )
    p.add_argument(
        "--policy",
        default=None,
        choices=["none", "learned"],
        help="learned: fit a policy to the agent's own actions and let the planner roll out "
        f"with it instead of random actions (mcts) (default: env preset or {defaults.policy})",
    )
    p.add_argument(
        "--particles",
        type=int,
        default=None,
        help=f"particles per candidate (default: env preset or {defaults.n_particles})",
    )
    p.add_argument(
        "--dtype",
        default=defaults.compute_dtype,
        choices=["float32", "bfloat16"],
        help="network compute dtype for planning (default %(default)s)",
    )
    p.add_argument("--max-episode-steps", type=int, default=None, help="cap on episode length")
    p.add_argument(
        "--planner-opt",
        action="append",
        metavar="KEY=VALUE",
        help="planner config override (repeatable), e.g. population=300",
    )
    p.add_argument(
        "--model-opt",
        action="append",
        metavar="KEY=VALUE",
        help="model config override (repeatable), e.g. hidden_size=128",
    )
    p.add_argument("--no-preset", action="store_true", help="ignore the env's tuned defaults")
    p.add_argument("--quiet", action="store_true", help="no progress bars or episode lines")
    p.set_defaults(func=main)


_PRESET_FLAGS = {
    "episodes": "episodes",
    "seed_episodes": "seed_episodes",
    "horizon": "horizon",
    "n_particles": "particles",
    "gamma": "gamma",
    "value": "value",
    "policy": "policy",
    "termination": "termination",
}
"""RunConfig field -> argparse dest of the flags that default to None (see ``register``)."""


def config_from_args(args: argparse.Namespace) -> RunConfig:
    """The :class:`RunConfig` of parsed ``mbrl run`` flags; typed flags are marked explicit.

    With ``--model rssm`` the same config describes the PlaNet run (see
    :func:`mbrl.agents.planet_config.planet_config`: untyped flags take the PlaNet defaults).
    """
    defaults = RunConfig()
    given = {field: getattr(args, dest) for field, dest in _PRESET_FLAGS.items()}
    return RunConfig(
        env_id=args.env,
        model=args.model,
        planner=args.planner,
        reward=args.reward,
        seed=args.seed,
        device=args.device,
        out=args.out,
        compute_dtype=args.dtype,
        max_episode_steps=args.max_episode_steps,
        planner_options=parse_key_values(args.planner_opt, "--planner-opt"),
        model_options=parse_key_values(args.model_opt, "--model-opt"),
        use_preset=not args.no_preset,
        progress=not args.quiet,
        explicit=frozenset(f for f, v in given.items() if v is not None),
        **{f: getattr(defaults, f) if v is None else v for f, v in given.items()},
    )


def main(args: argparse.Namespace) -> int:
    """Run the loop from parsed flags; prints the last-3 mean return at the end."""
    cfg = config_from_args(args)
    result = run(cfg)
    returns = result.mpc_returns
    if returns:
        tail = returns[-3:]
        what = "planning" if result.planet is not None else "MPC"
        print(
            f"done: {len(returns)} {what} episodes on {result.config.env_id}; "
            f"mean return of the last {len(tail)}: {sum(tail) / len(tail):.2f}"
        )
    if cfg.out:
        print(f"outputs in {cfg.out}")
    return 0
