"""``mbrl dyna``: MBPO-style Dyna with stable-baselines3 SAC (or plain SAC, or tabular Dyna-Q)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from mbrl.commands.options import finite_float, int_at_least, output_dir
from mbrl.dyna import DYNA_MAZE_ENV_ID
from mbrl.dyna.mbpo import MBPOConfig, run_mbpo
from mbrl.models.registry import model_names

LATENT_MODEL = "rssm"

DYNAQ_DEFAULT_ENV = DYNA_MAZE_ENV_ID
"""``--env`` of ``--algo dynaq`` when none is given: MBPO's continuous default has no tabular
states, so Dyna-Q defaults to Sutton & Barto's maze."""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``dyna`` subcommand."""
    defaults = MBPOConfig()
    p = subparsers.add_parser(
        "dyna",
        help="MBPO: SAC on real + branched model rollouts (needs the sb3 extra); or Dyna-Q",
        description="--algo mbpo (default): SAC trained on a mix of real data and short model "
        "rollouts from real states, the model refitted every --model-every steps. --algo sac: "
        "the same SAC on real data only. --algo dynaq: tabular Dyna-Q on an env with discrete "
        "states and actions (e.g. mbrl/DynaMaze-v0, FrozenLake-v1, CliffWalking-v1). Prints "
        "evaluation returns as it goes; --out DIR writes metrics.jsonl and summary.json.",
    )
    p.add_argument(
        "--env",
        default=None,
        help=f"gymnasium id (default {defaults.env_id}; {DYNAQ_DEFAULT_ENV} for --algo dynaq)",
    )
    p.add_argument(
        "--algo",
        default="mbpo",
        choices=["mbpo", "sac", "dynaq", "imagine"],
        help="(default %(default)s); imagine: actor-critic trained in imagination "
        "(mbrl.imagination)",
    )
    p.add_argument(
        "--model",
        choices=[*model_names(), LATENT_MODEL],
        default=None,
        help=f"dynamics model (default {defaults.model}); {LATENT_MODEL} with --algo imagine: "
        "Dreamer, the actor-critic trained in the RSSM's latent imagination (the PlaNet loop "
        "of mbrl run --model rssm --policy imagine; --steps is rounded to whole episodes)",
    )
    p.add_argument(
        "--steps",
        type=int_at_least(1),
        default=defaults.total_steps,
        help="real env steps (default %(default)s); episodes for dynaq",
    )
    p.add_argument(
        "--seed",
        type=int_at_least(0),
        default=defaults.seed,
        help="random seed (default %(default)s)",
    )
    p.add_argument("--out", default=None, type=output_dir, help="output directory (default: none)")
    p.add_argument(
        "--utd",
        type=int_at_least(1),
        default=None,
        help="SAC gradient steps per env step (default 10 mbpo, 1 sac)",
    )
    p.add_argument(
        "--real-ratio",
        type=finite_float(minimum=0.0),
        default=defaults.real_ratio,
        help="real fraction of SAC minibatches (default %(default)s)",
    )
    p.add_argument(
        "--model-every",
        type=int_at_least(1),
        default=defaults.model_train_every,
        help="env steps between model refits and rollouts (default %(default)s)",
    )
    p.add_argument(
        "--rollout-length",
        type=int_at_least(1),
        nargs=2,
        default=None,
        metavar=("MIN", "MAX"),
        help="rollout length k growing from MIN to MAX over the run (default 1 1)",
    )
    p.add_argument(
        "--eval-every",
        type=int_at_least(1),
        default=defaults.eval_every,
        help="env steps between evaluations (default %(default)s)",
    )
    p.add_argument(
        "--planning-steps",
        type=int_at_least(0),
        default=50,
        help="dynaq: planning updates per step (default 50)",
    )
    p.add_argument("--device", default=defaults.device, help="cpu or cuda (default %(default)s)")
    p.add_argument("--quiet", action="store_true", help="no progress bar or evaluation lines")
    p.set_defaults(func=main)


def _main_dynaq(args: argparse.Namespace) -> int:
    from mbrl.dyna.dyna_q import DynaQConfig, make_toy_text_env, train_dyna_q

    env = make_toy_text_env(args.env)
    eval_env = make_toy_text_env(args.env)
    cfg = DynaQConfig(planning_steps=args.planning_steps)
    result = train_dyna_q(env, args.steps, cfg, args.seed, eval_env=eval_env)
    for i, (n, g) in enumerate(zip(result.episode_lengths, result.greedy_lengths, strict=True)):
        if not args.quiet:
            print(f"episode {i + 1:4d}: {n:6d} steps, greedy path {g if g is not None else '-'}")
    final = result.greedy_lengths[-1]
    print(
        f"done: {args.steps} Dyna-Q episodes (n={args.planning_steps}) on {args.env}; greedy path length {final}"
    )
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "summary.json").write_text(
            json.dumps(
                {
                    "env": args.env,
                    "algo": "dynaq",
                    "seed": args.seed,
                    "planning_steps": args.planning_steps,
                    "episode_lengths": result.episode_lengths,
                    "greedy_lengths": result.greedy_lengths,
                },
                indent=2,
            )
        )
    return 0


def _main_dreamer(args: argparse.Namespace) -> int:
    """``--algo imagine --model rssm``: the PlaNet loop with the actor in the planner's place,
    its episodes the ones ``--steps`` real env steps hold after the seed episodes."""
    import math

    from mbrl.agents.env_factory import make_env
    from mbrl.agents.loop import run
    from mbrl.agents.planet_config import PlanetConfig

    defaults = PlanetConfig()
    env = make_env(args.env)
    limit = env.spec.max_episode_steps if env.spec is not None else None
    env.close()
    if not limit:
        raise ValueError(
            f"--algo imagine --model {LATENT_MODEL} counts --steps in whole episodes, and "
            f"{args.env} has no episode step limit; use mbrl run --model rssm --policy imagine "
            "--episodes N --max-episode-steps T"
        )
    episodes = math.ceil(args.steps / limit) - defaults.seed_episodes
    if episodes < 1:
        raise ValueError(
            f"--steps {args.steps} holds {math.ceil(args.steps / limit)} episodes of {limit} "
            f"steps, not more than the {defaults.seed_episodes} random seed episodes; give "
            f"--steps > {defaults.seed_episodes * limit}"
        )
    cfg = PlanetConfig(
        env_id=args.env,
        policy="imagine",
        episodes=episodes,
        seed=args.seed,
        device=args.device,
        out=args.out,
        progress=not args.quiet,
    )
    print(
        f"imagine with --model {LATENT_MODEL}: mbrl run --model rssm --policy imagine --env "
        f"{args.env} --episodes {episodes} ({defaults.seed_episodes} random + {episodes} actor "
        f"episodes of {limit} env steps)"
    )
    planet = run(cfg.to_run_config()).planet
    assert planet is not None  # a model="rssm" run returns the PlaNet loop's result
    last = planet.plan_returns[-10:]
    print(
        f"done: Dreamer on {args.env}, {episodes} actor episodes, mean return of the last "
        f"{len(last)}: {sum(last) / len(last):.1f}"
    )
    if args.out:
        print(f"outputs in {args.out} (actor.pt, model.pt; resume with mbrl run --resume)")
    return 0


def main(args: argparse.Namespace) -> int:
    """Run MBPO / SAC / Dyna-Q from parsed flags; prints the final evaluation."""
    if args.env is None:
        args.env = DYNAQ_DEFAULT_ENV if args.algo == "dynaq" else MBPOConfig().env_id
    if args.algo == "dynaq":
        return _main_dynaq(args)
    if args.algo == "imagine":
        if args.model == LATENT_MODEL:
            return _main_dreamer(args)
        from mbrl.imagination.loop import main_from_args

        return main_from_args(args)
    if args.model == LATENT_MODEL:
        raise ValueError(
            f"--model {LATENT_MODEL} works with --algo imagine only (Dreamer); --algo "
            f"{args.algo} needs an observation-space model: {', '.join(model_names())}"
        )
    from mbrl.dyna.branched import RolloutSchedule

    schedule = RolloutSchedule()
    if args.rollout_length is not None:
        lo, hi = args.rollout_length
        schedule = RolloutSchedule(lo, hi, 0, max(1, args.steps))
    cfg = MBPOConfig(
        env_id=args.env,
        algo=args.algo,
        total_steps=args.steps,
        seed=args.seed,
        utd=args.utd,
        real_ratio=args.real_ratio,
        model_train_every=args.model_every,
        rollout_every=args.model_every,
        rollout_schedule=schedule,
        eval_every=args.eval_every,
        device=args.device,
        out=args.out,
        progress=not args.quiet,
        **({"model": args.model} if args.model else {}),
    )
    result = run_mbpo(cfg)
    print(
        f"done: {cfg.algo} on {cfg.env_id}, {cfg.total_steps} real steps, final eval return "
        f"{result.final_return:.1f} over {cfg.final_eval_episodes} episodes ({result.seconds:.0f} s)"
    )
    if cfg.out:
        print(f"outputs in {cfg.out}")
    return 0
