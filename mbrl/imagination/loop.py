"""``imagine_and_learn``: collect, fit the model, train the actor-critic in imagination, act.

The loop (Dreamer's, on state observations):

1. ``seed_steps`` random-action env steps fill the buffer;
2. every round: the dynamics model is refitted on all real data
   (:func:`mbrl.models.training.fit`, warm-started; learned reward / termination too when the
   env has no known task functions), then ``updates_per_round`` actor-critic updates each
   imagine ``batch_size`` rollouts from start states drawn from the real buffer
   (:class:`~mbrl.imagination.actor_critic.ActorCritic`);
3. the actor acts for ``steps_per_round`` real env steps (sampling its Gaussian, or its mean
   with ``explore=False``), episodes continuing across rounds;
4. until ``total_steps`` real steps; then ``eval_episodes`` episodes with the actor's mean.

Every real episode's return is reported (:class:`ImagineResult`), so the loop compares with
MBPO and SAC at equal real steps (:mod:`mbrl.dyna.mbpo`). With ``out`` the directory gets
``imagine.json`` (the config), ``metrics.jsonl`` (one line per episode), ``summary.json``,
and checkpoints ``actor.pt`` (a :class:`~mbrl.models.policy_model.LearnedPolicy`: ``mbrl
export DIR --what policy`` deploys it), ``critic.pt`` and ``model.pt``, all in the safe
checkpoint format (:mod:`mbrl.models.checkpoint`).
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from tqdm.auto import tqdm

from mbrl.agents.env_factory import make_env
from mbrl.data.buffer import TransitionBuffer
from mbrl.imagination.actor_critic import ActorCritic, ImaginationConfig
from mbrl.models.checkpoint import save_checkpoint
from mbrl.models.registry import build_model, model_names, options_or_defaults
from mbrl.models.task_models import LearnedReward, LearnedTermination
from mbrl.models.training import FitConfig, fit
from mbrl.seeding import make_generator, seed_everything
from mbrl.spaces import ActionCodec, observation_dim
from mbrl.task_fns import get_task_fns
from mbrl.validation import check_positive_int

IMAGINE_FORMAT = "mbrl-imagine-run"


@dataclass(frozen=True)
class ImagineLoopConfig:
    """Settings of :func:`imagine_and_learn` (defaults suit Pendulum-v1 on a small CPU).

    Attributes:
        env_id: gymnasium id with a ``Box`` action space (default ``Pendulum-v1``).
        seed: seeds the env, the networks, the fits and the imagination (default 0).
        total_steps: real env steps, the random ones included (default 5000).
        seed_steps: random-action steps first (default 500).
        steps_per_round: actor steps between training rounds (default 250).
        updates_per_round: actor-critic updates per round (default 200).
        model: registered dynamics model (default ``ensemble``).
        model_options: model config overrides (default None: 5 members of 3 x 200 for
            ``ensemble``, as MBPO, and the model's own defaults for any other model).
        fit: model training per round (default: at most 500 warm-started steps, batch 256).
        reward: ``known`` (the env's planning reward and termination when registered) or
            ``learned`` (fitted with the model).
        imagination: :class:`ImaginationConfig`.
        explore: act by sampling the actor's Gaussian (default True) or with its mean.
        eval_episodes: episodes with the actor's mean at every evaluation (default 5).
        eval_every: real env steps between evaluations during training, checked at the end
            of each round (default 0: only the final evaluation at ``total_steps``). The
            evaluation episodes are reset with the same seeds as MBPO's, so the curves of
            :func:`mbrl.dyna.mbpo.run_mbpo` and of this loop are comparable.
        device: torch device (default cpu).
        out: directory for checkpoints and metrics (default none).
        progress: per-episode lines (default True).
    """

    env_id: str = "Pendulum-v1"
    seed: int = 0
    total_steps: int = 5000
    seed_steps: int = 500
    steps_per_round: int = 250
    updates_per_round: int = 200
    model: str = "ensemble"
    model_options: dict[str, Any] | None = None
    fit: FitConfig = field(
        default_factory=lambda: FitConfig(max_steps=500, batch_size=256, eval_every=50, patience=5)
    )
    reward: str = "known"
    imagination: ImaginationConfig = field(default_factory=ImaginationConfig)
    explore: bool = True
    eval_episodes: int = 5
    eval_every: int = 0
    device: str = "cpu"
    out: str | None = None
    progress: bool = True

    def __post_init__(self) -> None:
        for name in ("total_steps", "seed_steps", "steps_per_round", "updates_per_round"):
            check_positive_int(getattr(self, name), name)
        check_positive_int(self.eval_episodes, "eval_episodes", minimum=0)
        check_positive_int(self.eval_every, "eval_every", minimum=0)
        if self.eval_every and not self.eval_episodes:
            raise ValueError("eval_every needs eval_episodes >= 1")
        check_positive_int(self.seed, "seed", minimum=0)
        if self.seed_steps >= self.total_steps:
            raise ValueError(
                f"seed_steps ({self.seed_steps}) must be below total_steps ({self.total_steps})"
            )
        if self.model not in model_names():
            raise ValueError(f"model must be one of {model_names()}, got {self.model!r}")
        if self.reward not in ("known", "learned"):
            raise ValueError(f"reward must be 'known' or 'learned', got {self.reward!r}")
        if not isinstance(self.imagination, ImaginationConfig):
            raise TypeError(
                f"imagination must be an ImaginationConfig, got {type(self.imagination).__name__}"
            )


@dataclass
class ImagineResult:
    """What :func:`imagine_and_learn` returns.

    Attributes:
        config: the run's config.
        episodes: one dict per real episode: ``episode``, ``kind`` (``seed`` or ``actor``),
            ``return``, ``steps``, ``env_steps`` (real steps when it ended).
        eval_returns: returns of the final episodes with the actor's mean.
        evals: one dict per evaluation, the final one last: ``env_steps``,
            ``mean_return``, ``std_return``, ``episodes`` (the keys of MBPO's evaluations).
        rounds: one dict per training round (env steps, model validation score, last
            actor-critic statistics, seconds).
        actor_critic: the trained :class:`ActorCritic`; model: the dynamics model.
        seconds: wall time.
    """

    config: ImagineLoopConfig
    episodes: list[dict[str, Any]]
    eval_returns: list[float]
    rounds: list[dict[str, Any]]
    actor_critic: ActorCritic
    model: torch.nn.Module
    seconds: float
    evals: list[dict[str, Any]] = field(default_factory=list)

    @property
    def returns(self) -> list[float]:
        """Real return of every episode, in order."""
        return [e["return"] for e in self.episodes]

    @property
    def final_return(self) -> float:
        """Mean of :attr:`eval_returns` (NaN without evaluation episodes)."""
        return float(np.mean(self.eval_returns)) if self.eval_returns else float("nan")


class _Episodes:
    """Steps one env across rounds, records every finished episode."""

    def __init__(self, env: gym.Env, seed: int, log: Any) -> None:
        self.env, self.log = env, log
        self.obs, _ = env.reset(seed=seed)
        self.total = 0.0
        self.length = 0
        self.steps = 0
        self.done: list[dict[str, Any]] = []

    def step(
        self, action: np.ndarray, kind: str, buffer: TransitionBuffer, codec: ActionCodec
    ) -> None:
        next_obs, reward, terminated, truncated, _ = self.env.step(action)
        buffer.add(self.obs, codec.encode(action), float(reward), next_obs, terminated, truncated)
        self.total += float(reward)
        self.length += 1
        self.steps += 1
        self.obs = next_obs
        if terminated or truncated:
            row = {
                "episode": len(self.done),
                "kind": kind,
                "return": self.total,
                "steps": self.length,
                "env_steps": self.steps,
            }
            self.done.append(row)
            self.log(
                f"episode {row['episode']:3d} [{kind}] return {self.total:9.2f} steps {self.length}"
            )
            self.obs, _ = self.env.reset()
            self.total, self.length = 0.0, 0


def _evaluate(
    env: gym.Env, ac: ActorCritic, codec: ActionCodec, episodes: int, seed: int
) -> list[float]:
    returns = []
    device = ac.actor.action_mid.device
    for i in range(episodes):
        obs, _ = env.reset(seed=seed + i)
        total, done = 0.0, False
        while not done:
            with torch.no_grad():
                act = ac.actor.mode(torch.as_tensor(obs, dtype=torch.float32, device=device)[None])
            obs, reward, terminated, truncated, _ = env.step(codec.decode(act[0]))
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
    return returns


def imagine_and_learn(
    env_id: str | None = None, config: ImagineLoopConfig | None = None, **overrides: Any
) -> ImagineResult:
    """Run the imagination actor-critic loop (module docstring) on ``env_id``.

    Args:
        env_id: gymnasium id (default ``config.env_id``).
        config: :class:`ImagineLoopConfig` (default: its defaults).
        overrides: fields replacing ``config``'s (e.g. ``total_steps=2000``).

    Returns:
        :class:`ImagineResult` with every real episode's return.

    Raises:
        ValueError / TypeError: bad settings, or an env without a ``Box`` action space.
    """
    cfg = config or ImagineLoopConfig()
    if env_id is not None:
        overrides = {"env_id": env_id, **overrides}
    if overrides:
        cfg = dataclasses.replace(cfg, **overrides)
    start = time.perf_counter()
    env = make_env(cfg.env_id)
    eval_env = make_env(cfg.env_id)
    try:
        return _run(cfg, env, eval_env, start)
    finally:
        env.close()
        eval_env.close()


def _run(cfg: ImagineLoopConfig, env: gym.Env, eval_env: gym.Env, start: float) -> ImagineResult:
    if not isinstance(env.action_space, gym.spaces.Box):
        raise TypeError(
            f"the imagination actor-critic needs a Box action space; {cfg.env_id} has "
            f"{env.action_space}"
        )
    spec_id = env.spec.id if env.spec is not None else cfg.env_id
    codec = ActionCodec.from_space(env.action_space)
    obs_dim = observation_dim(env.observation_space)
    seed_everything(cfg.seed)
    gen = make_generator(cfg.seed, cfg.device)
    env.action_space.seed(cfg.seed)

    def log(msg: str) -> None:
        if cfg.progress:
            tqdm.write(f"[imagine {spec_id} seed {cfg.seed}] {msg}", file=sys.stdout)

    options = options_or_defaults(cfg.model, cfg.model_options)
    model = build_model(cfg.model, obs_dim, codec.dim, options, spec_id).to(cfg.device)
    known = get_task_fns(spec_id)
    reward_model = term_model = None
    if cfg.reward == "known" and known is not None:
        reward_fn, term_fn = known.planner_reward, known.termination
    else:
        reward_model = LearnedReward(obs_dim, codec.dim).to(cfg.device)
        reward_fn, term_fn = reward_model, None
        if known is None or known.termination is not None:
            term_model = term_fn = LearnedTermination(obs_dim, codec.dim).to(cfg.device)
    low, high = codec.bounds(cfg.device)
    ac = ActorCritic(obs_dim, low, high, cfg.imagination, cfg.device)
    buffer = TransitionBuffer(obs_dim, codec.dim, capacity=cfg.total_steps, device=cfg.device)
    episodes = _Episodes(env, cfg.seed, log)
    for _ in range(cfg.seed_steps):
        episodes.step(env.action_space.sample(), "seed", buffer, codec)
    ac.fit_normalizers(buffer.all().obs)
    rounds: list[dict[str, Any]] = []
    evals: list[dict[str, Any]] = []
    eval_seed = 10_000 + 100 * cfg.seed

    def record(n_episodes: int) -> list[float]:
        returns = _evaluate(eval_env, ac, codec, n_episodes, eval_seed)
        evals.append(
            {
                "env_steps": episodes.steps,
                "mean_return": float(np.mean(returns)),
                "std_return": float(np.std(returns)),
                "episodes": n_episodes,
                "seconds": time.perf_counter() - start,
            }
        )
        return returns

    next_eval = cfg.eval_every
    while episodes.steps < cfg.total_steps:
        data = buffer.all()
        report = fit(model, data, cfg.fit, gen)
        if reward_model is not None:
            fit(reward_model, data, cfg.fit, gen)
        if term_model is not None and bool(data.terminated.any()):
            fit(term_model, data, cfg.fit, gen)
        stats: dict[str, float] = {}
        for _ in range(cfg.updates_per_round):
            starts = buffer.sample(cfg.imagination.batch_size, gen).obs
            stats = ac.update(model, starts, reward_fn, term_fn, gen)
        rounds.append(
            {
                "env_steps": episodes.steps,
                "model_val": report.best_val_score,
                **stats,
                "seconds": time.perf_counter() - start,
            }
        )
        log(
            f"round at {episodes.steps} steps: model val {report.best_val_score:.4f}, imagined "
            f"return {stats.get('imagined_return', float('nan')):.2f}, action std "
            f"{stats.get('action_std', float('nan')):.3f}"
        )
        for _ in range(min(cfg.steps_per_round, cfg.total_steps - episodes.steps)):
            obs = torch.as_tensor(episodes.obs, dtype=torch.float32, device=cfg.device)[None]
            with torch.no_grad():
                act = ac.actor.sample(obs, gen) if cfg.explore else ac.actor.mode(obs)
            episodes.step(codec.decode(act[0]), "actor", buffer, codec)
        if next_eval and next_eval <= episodes.steps < cfg.total_steps:
            record(cfg.eval_episodes)
            log(f"eval at {episodes.steps} steps: mean return {evals[-1]['mean_return']:.2f}")
            while next_eval <= episodes.steps:
                next_eval += cfg.eval_every
    eval_returns = record(cfg.eval_episodes) if cfg.eval_episodes else []
    if eval_returns:
        log(f"final: mean return {np.mean(eval_returns):.2f} over {len(eval_returns)} episodes")
    result = ImagineResult(
        cfg, episodes.done, eval_returns, rounds, ac, model, time.perf_counter() - start, evals
    )
    if cfg.out is not None:
        _save(Path(cfg.out), result, spec_id, reward_model, term_model)
    return result


def _save(
    out: Path,
    result: ImagineResult,
    env_id: str,
    reward_model: torch.nn.Module | None,
    term_model: torch.nn.Module | None,
) -> None:
    cfg = result.config
    out.mkdir(parents=True, exist_ok=True)
    config = json.loads(json.dumps(dataclasses.asdict(cfg), default=str))
    config["env_id"] = env_id
    doc = {"format": IMAGINE_FORMAT, "version": 1, "config": config}
    (out / "imagine.json").write_text(json.dumps(doc, indent=2))
    (out / "metrics.jsonl").write_text("".join(json.dumps(e) + "\n" for e in result.episodes))
    summary = {
        "env": env_id,
        "seed": cfg.seed,
        "returns": result.returns,
        "eval_returns": result.eval_returns,
        "evals": result.evals,
        "final_return": result.final_return,
        "rounds": result.rounds,
        "seconds": result.seconds,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    meta = {"env": env_id, "seed": cfg.seed, "final_return": result.final_return}
    save_checkpoint(out / "actor.pt", result.actor_critic.actor, meta)
    save_checkpoint(out / "critic.pt", result.actor_critic.critic, meta)
    save_checkpoint(out / "model.pt", result.model, meta)
    if reward_model is not None:
        save_checkpoint(out / "reward_model.pt", reward_model, meta)
    if term_model is not None:
        save_checkpoint(out / "termination_model.pt", term_model, meta)


def main_from_args(args: Any) -> int:
    """Run :func:`imagine_and_learn` from parsed ``mbrl dyna``-style flags (``env``,
    ``steps``, ``seed``, ``out``, ``device``, ``quiet``; optional ``model_every``: env steps
    per round, ``model``: an observation-space model name) and print every episode's return
    and the final evaluation."""
    defaults = ImagineLoopConfig()
    steps = int(getattr(args, "steps", None) or defaults.total_steps)
    cfg = ImagineLoopConfig(
        env_id=getattr(args, "env", None) or defaults.env_id,
        seed=int(getattr(args, "seed", 0)),
        total_steps=steps,
        seed_steps=min(defaults.seed_steps, max(1, steps // 4)),
        steps_per_round=int(getattr(args, "model_every", None) or defaults.steps_per_round),
        model=getattr(args, "model", None) or defaults.model,
        device=getattr(args, "device", None) or defaults.device,
        out=getattr(args, "out", None),
        progress=not getattr(args, "quiet", False),
    )
    result = imagine_and_learn(config=cfg)
    returns = ", ".join(f"{r:.1f}" for r in result.returns)
    print(f"real returns per episode: {returns}")
    print(
        f"done: imagine on {cfg.env_id}, {cfg.total_steps} real steps, final eval return "
        f"{result.final_return:.1f} over {len(result.eval_returns)} episodes "
        f"({result.seconds:.0f} s)"
    )
    if cfg.out:
        print(f"outputs in {cfg.out} (actor.pt: mbrl export {cfg.out} --what policy)")
    return 0
