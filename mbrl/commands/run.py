"""``mbrl run``: the model-based loop on any gymnasium env (default: Pendulum-v1, ensemble + CEM).

With ``--out DIR`` every episode ends with a checkpoint in DIR; ``mbrl run --resume DIR``
continues a run that was stopped from there. Outcomes other than success print one line:
bad input (exit code 2, before any work), an output that cannot be written (1), SIGTERM (143),
Ctrl-C (130); the last three also say where the data went.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mbrl.agents.config import POLICIES, RunConfig
from mbrl.agents.presets import PRESETS
from mbrl.commands.options import parse_key_values
from mbrl.util.signals import EXIT_SIGINT, EXIT_SIGTERM, Terminated, notes, sigterm_raises


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``run`` subcommand."""
    from mbrl.agents.setup import LATENT_MODEL, run_model_names
    from mbrl.planners.registry import planner_names

    defaults = RunConfig()
    p = subparsers.add_parser(
        "run",
        help="model-based RL loop: seed data, fit, plan with MPC, refit",
        description="Collect random seed episodes, then alternate model fitting and MPC episodes. "
        "Prints one line per episode. --out DIR writes, after every episode, metrics.jsonl, the "
        "model checkpoint(s), the buffer and state.json, and summary.json when the run "
        "finishes; a stopped run continues with 'mbrl run --resume DIR'.",
    )
    # Every flag defaults to None, so a typed value (even one equal to the built-in default) is
    # known to be explicit: env presets never replace it, and --resume can check it.
    p.add_argument("--env", help=f"gymnasium id, or module:Env-v0 (default {defaults.env_id})")
    p.add_argument(
        "--model",
        help=f"one of {run_model_names()} (default {defaults.model}); {LATENT_MODEL} runs the "
        "PlaNet loop (latent world model, see docs/rssm.md; its settings are --model-opt keys)",
    )
    p.add_argument(
        "--planner",
        help=f"one of {planner_names()} (default {defaults.planner}; mcts for a Discrete "
        "action space)",
    )
    p.add_argument(
        "--reward",
        choices=["known", "learned"],
        help=f"task functions (default {defaults.reward})",
    )
    p.add_argument(
        "--termination",
        choices=["mlp", "box"],
        help="learned termination model with --reward learned: mlp classifier or box (learned "
        f"limits on the next observation) (default: env preset or {defaults.termination})",
    )
    p.add_argument("--episodes", type=int, help=f"MPC episodes (default {defaults.episodes})")
    p.add_argument(
        "--seed-episodes",
        type=int,
        help="random episodes first; 0: the first MPC episode starts with random steps "
        f"until --min-seed-transitions (default: env preset or {defaults.seed_episodes})",
    )
    p.add_argument(
        "--min-seed-transitions",
        type=int,
        metavar="N",
        help="more random episodes while the data holds fewer than N transitions (default: "
        f"env preset or {defaults.min_seed_transitions})",
    )
    p.add_argument("--seed", type=int, help=f"random seed, >= 0 (default {defaults.seed})")
    p.add_argument("--device", help=f"cpu, cuda or cuda:N (default {defaults.device})")
    p.add_argument(
        "--out",
        help="output directory, written after every episode (default: none); must be missing "
        "or empty unless --overwrite",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the run files already in --out (other files there are kept)",
    )
    p.add_argument(
        "--resume",
        metavar="DIR",
        help="continue the stopped run in DIR from its last episode, with its saved config "
        "(other flags must agree with it; --quiet may be added)",
    )
    p.add_argument(
        "--buffer",
        metavar="FILE",
        help="start from the data of a buffer file (e.g. an earlier run's buffer.pt); the seed "
        "episodes it covers are skipped",
    )
    p.add_argument(
        "--load-model",
        metavar="FILE",
        help="start from the weights of a model checkpoint (e.g. an earlier run's model.pt)",
    )
    p.add_argument(
        "--horizon",
        type=int,
        help=f"planning horizon (default: env preset or {defaults.horizon})",
    )
    p.add_argument(
        "--gamma",
        type=float,
        help=f"planning discount (default: env preset or {defaults.gamma})",
    )
    p.add_argument(
        "--value",
        choices=["none", "learned"],
        help="learned: fit a state value to the real returns and let the planner score states "
        f"past its horizon with it (mcts; needs --gamma < 1) (default: env preset or "
        f"{defaults.value})",
    )
    p.add_argument(
        "--policy",
        choices=list(POLICIES),
        help="learned: fit a policy to the agent's own actions and let the planner roll out "
        "with it instead of random actions (mcts); imagine (--model rssm, Dreamer): an "
        "actor-critic trained in the RSSM's latent imagination acts instead of the planner "
        f"(default: env preset or {defaults.policy})",
    )
    p.add_argument(
        "--particles",
        type=int,
        help=f"particles per candidate (default: env preset or {defaults.n_particles})",
    )
    p.add_argument(
        "--dtype",
        choices=["float32", "bfloat16"],
        help=f"network compute dtype for planning (default {defaults.compute_dtype})",
    )
    p.add_argument("--max-episode-steps", type=int, help="cap on episode length, >= 1")
    p.add_argument(
        "--plan-budget-ms",
        type=float,
        metavar="MS",
        help="wall-clock budget per plan call in ms: every planner stops its work when it is "
        "spent (after one iteration) and acts on the best plan so far; p99 and deadline "
        "misses go to the metrics (default: none)",
    )
    p.add_argument(
        "--auto-size-ms",
        type=_auto_size,
        metavar="MS|off",
        help="target ms per plan call for a sampling planner whose population no one set "
        "(no --planner-opt population=, no preset): it is timed on this machine at set-up and "
        "shrunk until a call fits; with --plan-budget-ms, 85%% of the budget, and a preset's "
        "population is shrunk too; off keeps the "
        f"optimiser's defaults (default {defaults.auto_size_ms:g})",
    )
    p.add_argument(
        "--replan-every",
        type=int,
        metavar="K",
        help=f"replan every K steps, executing the plan open loop in between (default "
        f"{defaults.replan_every})",
    )
    p.add_argument(
        "--refit-every",
        type=int,
        metavar="K",
        help="refit the models every K env steps inside each MPC episode, on all data so far "
        "(default 0: before each MPC episode only); with --seed-episodes 0 the first episode "
        "starts with random steps until --min-seed-transitions, then plans",
    )
    p.add_argument(
        "--condition-steps",
        action="store_true",
        default=None,
        help="between fits, condition the model on every new transition before each plan "
        "(a GP's posterior update, hyperparameters kept; needs --model gp); with "
        "--refit-every K the hyperparameters are re-learned every K steps",
    )
    p.add_argument(
        "--explore",
        choices=("auto", "off", "always"),
        help="with a learned reward and an ensemble: auto adds a bonus for the members' "
        "disagreement to each step while the reward is sparse (the same on every step that "
        "did not end an episode, e.g. -1 until a goal), always adds it to every step, off "
        f"never (default {defaults.explore})",
    )
    p.add_argument(
        "--explore-weight",
        type=float,
        metavar="W",
        help="exploration bonus weight W: a step gets W x (reward range) x tanh(disagreement) "
        f"(default {defaults.explore_weight:g})",
    )
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
    p.add_argument(
        "--task-opt",
        action="append",
        metavar="KEY=VALUE",
        help="size of the learned reward/termination networks (repeatable; hidden_size, "
        "num_layers; default 200 x 3): they run at every rollout step, so smaller ones plan "
        "faster; with --reward learned (or an env without known task functions)",
    )
    p.add_argument(
        "--fit-opt",
        action="append",
        metavar="KEY=VALUE",
        help="model training override (repeatable, FitConfig fields), e.g. max_steps=500",
    )
    p.add_argument(
        "--tensorboard",
        metavar="DIR",
        help="write TensorBoard event files of the episode metrics, model losses and planning "
        "times to DIR (default: none; needs the tensorboard extra)",
    )
    p.add_argument("--no-preset", action="store_true", help="ignore the env's tuned defaults")
    p.add_argument("--quiet", action="store_true", help="no progress bars or episode lines")
    p.set_defaults(func=main)


def _auto_size(text: str) -> float:
    """``--auto-size-ms``: a positive finite number of ms, or ``off`` (read as 0: no sizing)."""
    if text.strip().lower() == "off":
        return 0.0
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a number of ms > 0 or 'off', got {text!r}")
    return value


@dataclass(frozen=True)
class _Flag:
    """A flag that sets a :class:`RunConfig` field: ``convert`` turns its parsed value into
    the field's value; ``dest`` is the argparse name."""

    flag: str
    dest: str
    convert: Callable[[Any], Any] = lambda v: v


def _fit_options(items: list[str]) -> dict[str, Any]:
    return parse_key_values(items, "--fit-opt")


_FLAGS: dict[str, _Flag] = {
    "env_id": _Flag("--env", "env"),
    "model": _Flag("--model", "model"),
    "planner": _Flag("--planner", "planner"),
    "reward": _Flag("--reward", "reward"),
    "termination": _Flag("--termination", "termination"),
    "episodes": _Flag("--episodes", "episodes"),
    "seed_episodes": _Flag("--seed-episodes", "seed_episodes"),
    "min_seed_transitions": _Flag("--min-seed-transitions", "min_seed_transitions"),
    "seed": _Flag("--seed", "seed"),
    "device": _Flag("--device", "device"),
    "out": _Flag("--out", "out"),
    "horizon": _Flag("--horizon", "horizon"),
    "gamma": _Flag("--gamma", "gamma"),
    "value": _Flag("--value", "value"),
    "policy": _Flag("--policy", "policy"),
    "n_particles": _Flag("--particles", "particles"),
    "compute_dtype": _Flag("--dtype", "dtype"),
    "max_episode_steps": _Flag("--max-episode-steps", "max_episode_steps"),
    "plan_budget_ms": _Flag("--plan-budget-ms", "plan_budget_ms"),
    "auto_size_ms": _Flag("--auto-size-ms", "auto_size_ms", lambda v: v or None),
    "replan_every": _Flag("--replan-every", "replan_every"),
    "refit_every": _Flag("--refit-every", "refit_every"),
    "condition_steps": _Flag("--condition-steps", "condition_steps"),
    "explore": _Flag("--explore", "explore"),
    "explore_weight": _Flag("--explore-weight", "explore_weight"),
    "planner_options": _Flag(
        "--planner-opt", "planner_opt", lambda v: parse_key_values(v, "--planner-opt")
    ),
    "model_options": _Flag(
        "--model-opt", "model_opt", lambda v: parse_key_values(v, "--model-opt")
    ),
    "task_options": _Flag("--task-opt", "task_opt", lambda v: parse_key_values(v, "--task-opt")),
    "fit": _Flag("--fit-opt", "fit_opt", _fit_options),
    "use_preset": _Flag("--no-preset", "no_preset", lambda v: not v),
    "initial_buffer": _Flag("--buffer", "buffer"),
    "initial_model": _Flag("--load-model", "load_model"),
    "tensorboard": _Flag("--tensorboard", "tensorboard"),
}
"""RunConfig field -> the flag that sets it (``--quiet`` sets ``progress``, never compared)."""

_PRESET_FIELDS = frozenset(
    {"episodes", "seed_episodes", "horizon", "n_particles", "gamma", "value", "policy"}
    | {"termination", "min_seed_transitions"}
    | {key for preset in PRESETS.values() for key in preset if not key.endswith("_options")}
)
"""Fields an env preset may tune (every field a preset sets, and those it may come to set):
typed ones are marked ``explicit``."""


def _typed(args: argparse.Namespace) -> dict[str, Any]:
    """RunConfig field -> the flag's value, for the flags typed on the command line."""
    typed = {}
    for field, spec in _FLAGS.items():
        value = getattr(args, spec.dest, None)
        if value is not None and value is not False:
            typed[field] = spec.convert(value)
    return typed


def _fit_config(options: dict[str, Any]) -> Any:
    from mbrl.models.training import FitConfig
    from mbrl.util.configs import config_from_options

    try:
        return config_from_options(FitConfig, options)
    except (TypeError, ValueError) as err:
        raise type(err)(f"--fit-opt: {err}") from err


def config_from_args(args: argparse.Namespace) -> RunConfig:
    """The :class:`RunConfig` of parsed ``mbrl run`` flags; typed flags an env preset could
    tune are marked explicit.

    With ``--model rssm`` the same config describes the PlaNet run (see
    :func:`mbrl.agents.planet_config.planet_config`: untyped flags take the PlaNet defaults).

    Raises:
        ValueError / TypeError: a bad flag value (RunConfig's checks), naming it.
    """
    typed = _typed(args)
    if "fit" in typed:
        typed["fit"] = _fit_config(typed["fit"])
    return RunConfig(
        **typed,
        progress=not args.quiet,
        explicit=frozenset(_PRESET_FIELDS & set(typed)),
    )


def _conflicts(args: argparse.Namespace, saved: RunConfig) -> list[str]:
    """The typed flags that disagree with the saved config of the run being resumed."""
    out = []
    for field, value in _typed(args).items():
        flag = _FLAGS[field].flag
        have = getattr(saved, field)
        if field == "out":
            same = Path(value).resolve() == Path(args.resume).resolve()
        elif field in ("planner_options", "model_options", "task_options"):
            same = all(k in have and have[k] == v for k, v in value.items())
        elif field == "fit":
            same = all(getattr(have, k, object()) == v for k, v in value.items())
        else:
            same = value == have
        if not same:
            shown = "" if isinstance(value, bool) else f" {getattr(args, _FLAGS[field].dest)}"
            out.append(f"{flag}{shown} (the run has {field}={have!r})")
    return out


def _resume(args: argparse.Namespace) -> Any:
    from mbrl.agents.loop import resume, saved_run_config
    from mbrl.agents.writer import check_out_dir

    if args.overwrite:
        raise ValueError("--overwrite cannot be combined with --resume (it would drop the run)")
    check_out_dir(args.resume, resume=True)
    conflicts = _conflicts(args, saved_run_config(args.resume))
    if conflicts:
        raise ValueError(
            f"--resume {args.resume!r} continues the run with the config it was started with "
            f"({Path(args.resume) / 'config.json'}); these flags disagree with it: "
            f"{'; '.join(conflicts)}. Drop them, or start a new run with another --out"
        )
    return resume(args.resume, progress=False if args.quiet else None)


def _one_line(err: BaseException, what: str) -> str:
    return "; ".join([f"mbrl run: {what}", *notes(err)])


def main(args: argparse.Namespace) -> int:
    """Run (or with ``--resume`` continue) the loop from parsed flags; prints the last-3 mean
    return at the end.

    Returns:
        0; 1 when an output cannot be written; 130 on Ctrl-C; 143 on SIGTERM (each with one
        line on stderr saying where the data went); 2 when ``--tensorboard`` is given without
        the tensorboard package (one line naming the extra). Bad input raises ``ValueError``
        / ``TypeError`` before any work (the CLI prints it and exits with 2).
    """
    from mbrl.agents.loop import RunOutputError, run
    from mbrl.agents.tensorboard import TensorBoardMissing, check_tensorboard

    try:
        if args.tensorboard:
            check_tensorboard()  # before any work (a resumed run's is checked at its set-up)
        with sigterm_raises():
            if args.resume:
                result = _resume(args)
            else:
                result = run(config_from_args(args), overwrite=args.overwrite)
    except TensorBoardMissing as err:
        print(f"mbrl run: error: {err}", file=sys.stderr)
        return 2
    except Terminated as err:
        print(_one_line(err, "terminated by SIGTERM"), file=sys.stderr)
        return EXIT_SIGTERM
    except KeyboardInterrupt as err:
        print(_one_line(err, "interrupted"), file=sys.stderr)
        return EXIT_SIGINT
    except RunOutputError as err:
        print(_one_line(err, f"error: {err}"), file=sys.stderr)
        return 1
    returns = result.mpc_returns
    if returns:
        tail = returns[-3:]
        what = "planning" if result.planet is not None else "MPC"
        print(
            f"done: {len(returns)} {what} episodes on {result.config.env_id}; "
            f"mean return of the last {len(tail)}: {sum(tail) / len(tail):.2f}"
        )
    if result.config.out:
        print(f"outputs in {result.config.out}")
    return 0
