"""MBPO-style Dyna with stable-baselines3's SAC (Janner et al. 2019).

The loop (``run_mbpo``): collect ``init_steps`` random real steps, then every env step SAC takes
``utd`` gradient steps on minibatches drawn ``real_ratio`` from the real replay buffer and the
rest from a model buffer; every ``model_train_every`` env steps the dynamics ensemble is refitted
on all real data (warm-started), and every ``rollout_every`` env steps ``rollouts_per_step *
rollout_every`` branched rollouts of length ``k`` (a :class:`~mbrl.dyna.branched.RolloutSchedule`)
from real states with the current SAC policy refill the model buffer (:func:`branched_rollouts`).
``algo="sac"`` runs the same SAC on real data only (the model-free baseline).

stable-baselines3 is imported when a run starts (``pip install 'mbrl[sb3]'``).
"""

from __future__ import annotations

import dataclasses
import functools
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
from mbrl.data.buffer import TransitionBatch, TransitionBuffer
from mbrl.dyna.branched import RolloutSchedule, branched_rollouts
from mbrl.dyna.job import import_sb3
from mbrl.models.checkpoint import save_checkpoint
from mbrl.models.registry import build_model, model_names, options_or_defaults
from mbrl.models.task_models import LearnedReward, LearnedTermination
from mbrl.models.training import FitConfig, fit
from mbrl.seeding import make_generator, seed_everything
from mbrl.spaces import observation_dim
from mbrl.task_fns import get_task_fns
from mbrl.validation import check_fraction, check_positive_int


@dataclass(frozen=True)
class MBPOConfig:
    """Settings of one MBPO (or plain SAC) run; defaults suit Pendulum-v1 on a small CPU.

    Attributes:
        env_id: gymnasium id with a ``Box`` action space (default ``Pendulum-v1``).
        algo: ``mbpo`` (model-based) or ``sac`` (the same SAC on real data only).
        total_steps: real env steps (default 5000).
        seed: seeds SAC, the env, the model and the rollouts (default 0).
        init_steps: random-action steps before learning starts (default 250).
        utd: SAC gradient steps per env step (default ``None``: 10 for ``mbpo``, 1 for ``sac``;
            MBPO's paper used 20).
        real_ratio: fraction of each SAC minibatch drawn from real data (default 0.05, MBPO).
        model: registered dynamics model name (default ``ensemble``).
        model_options: model config overrides (default None: 5 members of 3 x 200 for
            ``ensemble``, as MBPO, and the model's own defaults for any other model).
        fit: model training per refit (default: at most 500 warm-started steps, batch 256).
        model_train_every: env steps between model refits (default 250, MBPO).
        rollout_every: env steps between rollout batches (default 250, MBPO).
        rollouts_per_step: branched rollouts per env step (default 400, MBPO); each batch starts
            ``rollouts_per_step * rollout_every`` rollouts.
        rollout_schedule: rollout length ``k`` over env steps (default: constant 1).
        model_retain_steps: the model buffer keeps the rollouts of this many env steps (default
            1000, MBPO's one epoch).
        reward: ``known`` (registered task functions) or ``learned`` (fitted with the model).
        uncertainty_penalty: MOPO penalty on model rewards (default 0).
        batch_size / learning_rate / gamma / tau / net_arch: SAC settings (defaults: 256,
            3e-4, 0.99, 0.005 as MBPO and SB3; hidden layers (128, 128), half of MBPO's 256
            units, which halves the cost of a gradient step on a CPU).
        eval_every: env steps between evaluations (default 500); eval_episodes: episodes per
            evaluation (default 5); final_eval_episodes: at ``total_steps`` (default 10).
        device: torch device of SAC and the model (default cpu).
        out: directory for ``metrics.jsonl``, ``summary.json``, ``sac.zip`` and ``model.pt``.
        progress: progress bar and evaluation lines (default True).
    """

    env_id: str = "Pendulum-v1"
    algo: str = "mbpo"
    total_steps: int = 5000
    seed: int = 0
    init_steps: int = 250
    utd: int | None = None
    real_ratio: float = 0.05
    model: str = "ensemble"
    model_options: dict[str, Any] | None = None
    fit: FitConfig = field(
        default_factory=lambda: FitConfig(max_steps=500, batch_size=256, eval_every=50, patience=5)
    )
    model_train_every: int = 250
    rollout_every: int = 250
    rollouts_per_step: int = 400
    rollout_schedule: RolloutSchedule = field(default_factory=RolloutSchedule)
    model_retain_steps: int = 1000
    reward: str = "known"
    uncertainty_penalty: float = 0.0
    batch_size: int = 256
    learning_rate: float = 3e-4
    gamma: float = 0.99
    tau: float = 0.005
    net_arch: tuple[int, ...] = (128, 128)
    eval_every: int = 500
    eval_episodes: int = 5
    final_eval_episodes: int = 10
    device: str = "cpu"
    out: str | None = None
    progress: bool = True

    def __post_init__(self) -> None:
        if self.algo not in ("mbpo", "sac"):
            raise ValueError(f"algo must be 'mbpo' or 'sac', got {self.algo!r}")
        for name in (
            "total_steps",
            "model_train_every",
            "rollout_every",
            "rollouts_per_step",
            "model_retain_steps",
            "batch_size",
            "eval_every",
            "eval_episodes",
            "final_eval_episodes",
        ):
            check_positive_int(getattr(self, name), name)
        check_positive_int(self.init_steps, "init_steps", minimum=1)
        if self.utd is not None:
            check_positive_int(self.utd, "utd")
        check_fraction(self.real_ratio, "real_ratio")
        if self.model not in model_names():
            raise ValueError(f"model must be one of {model_names()}, got {self.model!r}")
        if self.reward not in ("known", "learned"):
            raise ValueError(f"reward must be 'known' or 'learned', got {self.reward!r}")
        if self.uncertainty_penalty < 0:
            raise ValueError(f"uncertainty_penalty must be >= 0, got {self.uncertainty_penalty}")
        if not self.net_arch or any(int(h) < 1 for h in self.net_arch):
            raise ValueError(f"net_arch must be positive layer sizes, got {self.net_arch}")

    @property
    def gradient_steps(self) -> int:
        """SAC gradient steps per env step: ``utd``, or 10 (mbpo) / 1 (sac) when unset."""
        if self.utd is not None:
            return self.utd
        return 10 if self.algo == "mbpo" else 1


@dataclass
class MBPOResult:
    """What :func:`run_mbpo` returns.

    Attributes:
        config: the run's config; evals: one dict per evaluation (``env_steps``,
            ``mean_return``, ``std_return``, ``episodes``, ``seconds``, and for mbpo
            ``model_val``, ``rollout_length``, ``model_buffer``); final_return: mean return of
            the final evaluation; agent: the SB3 SAC; model: the dynamics model (mbpo);
            seconds: wall time.
    """

    config: MBPOConfig
    evals: list[dict[str, Any]]
    final_return: float
    agent: Any
    model: torch.nn.Module | None
    seconds: float

    def return_at(self, env_steps: int) -> float:
        """Mean return of the evaluation at ``env_steps`` (the last one at or before it)."""
        best = [e for e in self.evals if e["env_steps"] <= env_steps]
        if not best:
            raise ValueError(f"no evaluation at or before {env_steps} env steps")
        return float(best[-1]["mean_return"])


# ----------------------------------------------------------------------------- SB3 pieces
@functools.lru_cache(maxsize=1)
def mixed_replay_buffer_class() -> type:
    """SB3 ``ReplayBuffer`` subclass whose ``sample`` mixes real and model transitions.

    ``MixedReplayBuffer(..., model_buffer=TransitionBuffer, real_ratio=0.05, seed=0)`` stores
    the real transitions as SB3 does; ``sample(B)`` draws ``round(B * real_ratio)`` of them and
    the rest from ``model_buffer`` (all real while it is empty). Model-buffer actions are in
    env units and are scaled to SB3's ``[-1, 1]`` on the way out.
    """
    import_sb3()
    from stable_baselines3.common.buffers import ReplayBuffer
    from stable_baselines3.common.type_aliases import ReplayBufferSamples

    class MixedReplayBuffer(ReplayBuffer):
        def __init__(
            self,
            buffer_size: int,
            observation_space: gym.Space,
            action_space: gym.Space,
            device: torch.device | str = "auto",
            n_envs: int = 1,
            optimize_memory_usage: bool = False,
            handle_timeout_termination: bool = True,
            *,
            model_buffer: TransitionBuffer,
            real_ratio: float = 0.05,
            seed: int = 0,
        ) -> None:
            super().__init__(
                buffer_size,
                observation_space,
                action_space,
                device,
                n_envs=n_envs,
                optimize_memory_usage=optimize_memory_usage,
                handle_timeout_termination=handle_timeout_termination,
            )
            if n_envs != 1:
                raise ValueError(f"MixedReplayBuffer supports one env, got n_envs={n_envs}")
            check_fraction(real_ratio, "real_ratio")
            self.model_buffer = model_buffer
            self.real_ratio = float(real_ratio)
            self.generator = torch.Generator().manual_seed(int(seed))
            self._low = torch.as_tensor(action_space.low, dtype=torch.float32)
            self._high = torch.as_tensor(action_space.high, dtype=torch.float32)

        def real_size(self) -> int:
            """Number of real transitions stored."""
            return self.buffer_size if self.full else self.pos

        def real_batch(self) -> TransitionBatch:
            """All real transitions with env-unit actions (for model fitting)."""
            n = self.real_size()
            act = torch.as_tensor(self.actions[:n, 0], dtype=torch.float32)
            act = self._low + 0.5 * (act + 1.0) * (self._high - self._low)
            timeouts = torch.as_tensor(self.timeouts[:n, 0] > 0)
            dones = torch.as_tensor(self.dones[:n, 0] > 0)
            return TransitionBatch(
                torch.as_tensor(self.observations[:n, 0], dtype=torch.float32),
                act,
                torch.as_tensor(self.rewards[:n, 0], dtype=torch.float32),
                torch.as_tensor(self.next_observations[:n, 0], dtype=torch.float32),
                dones & ~timeouts,
                timeouts,
            )

        def sample(self, batch_size: int, env: Any = None) -> Any:
            n_model = 0
            if len(self.model_buffer) > 0:
                n_model = batch_size - int(round(batch_size * self.real_ratio))
            n_real = batch_size - n_model
            parts = []
            if n_real > 0:
                parts.append(super().sample(n_real, env))
            if n_model > 0:
                mb = self.model_buffer.sample(n_model, self.generator)
                scaled = 2.0 * (mb.action - self._low) / (self._high - self._low) - 1.0
                dev = self.device
                parts.append(
                    ReplayBufferSamples(
                        mb.obs.to(dev),
                        scaled.to(dev),
                        mb.next_obs.to(dev),
                        mb.terminated.to(dev, torch.float32).reshape(-1, 1),
                        mb.reward.to(dev).reshape(-1, 1),
                    )
                )
            if len(parts) == 1:
                return parts[0]
            return ReplayBufferSamples(*(torch.cat([p[i] for p in parts]) for i in range(5)))

    return MixedReplayBuffer


def evaluate_policy_returns(
    agent: Any, env: gym.Env, episodes: int, seed: int
) -> tuple[float, float]:
    """Mean and std of the deterministic policy's returns over ``episodes`` episodes, reset
    with seeds ``seed, seed + 1, ...`` (the same episodes for every policy)."""
    returns = []
    for i in range(episodes):
        obs, _ = env.reset(seed=seed + i)
        done, total = False, 0.0
        while not done:
            action, _ = agent.predict(obs, deterministic=True)
            obs, reward, terminated, truncated, _ = env.step(action)
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
    return float(np.mean(returns)), float(np.std(returns))


def _sac_batch_policy(agent: Any, low: torch.Tensor, high: torch.Tensor) -> Any:
    """``obs (B, O) -> env-unit actions (B, A)`` sampled from SAC's current actor."""

    def policy(obs: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            scaled = agent.actor(obs.to(agent.device), deterministic=False).cpu()
        return low + 0.5 * (scaled + 1.0) * (high - low)

    return policy


# ----------------------------------------------------------------------------- the loop
def run_mbpo(config: MBPOConfig | None = None) -> MBPOResult:
    """Run MBPO (or plain SAC with ``algo="sac"``) as described by ``config``.

    Returns:
        :class:`MBPOResult` with evaluations every ``eval_every`` env steps and a final one.

    Raises:
        ValueError: stable-baselines3 missing, an env without a ``Box`` action space, or bad
            settings.
    """
    cfg = config or MBPOConfig()
    sb3 = import_sb3()
    from stable_baselines3.common.callbacks import BaseCallback

    start = time.perf_counter()
    env = make_env(cfg.env_id)
    eval_env = make_env(cfg.env_id)
    if not isinstance(env.action_space, gym.spaces.Box):
        raise ValueError(f"SAC needs a Box action space; {cfg.env_id} has {env.action_space}")
    obs_dim = observation_dim(env.observation_space)
    act_dim = int(env.action_space.shape[0])
    spec_id = env.spec.id if env.spec is not None else cfg.env_id
    seed_everything(cfg.seed)
    gen = make_generator(cfg.seed, cfg.device)
    use_model = cfg.algo == "mbpo"
    low = torch.as_tensor(env.action_space.low, dtype=torch.float32)
    high = torch.as_tensor(env.action_space.high, dtype=torch.float32)
    obs_bounds = (
        torch.as_tensor(env.observation_space.low, dtype=torch.float32, device=cfg.device),
        torch.as_tensor(env.observation_space.high, dtype=torch.float32, device=cfg.device),
    )
    max_k = max(cfg.rollout_schedule.min_length, cfg.rollout_schedule.max_length)
    model_buffer = TransitionBuffer(
        obs_dim,
        act_dim,
        capacity=cfg.rollouts_per_step * cfg.model_retain_steps * max_k if use_model else 1,
    )
    model = reward_model = term_model = None
    reward_fn = term_fn = None
    if use_model:
        options = options_or_defaults(cfg.model, cfg.model_options)
        model = build_model(cfg.model, obs_dim, act_dim, options, spec_id)
        model = model.to(cfg.device)
        known = get_task_fns(spec_id)
        if cfg.reward == "known" and known is not None:
            reward_fn, term_fn = known.reward, known.termination
        else:
            reward_model = LearnedReward(obs_dim, act_dim).to(cfg.device)
            reward_fn = reward_model
            if known is None or known.termination is not None:
                term_model = LearnedTermination(obs_dim, act_dim).to(cfg.device)
                term_fn = term_model
    agent = sb3.SAC(
        "MlpPolicy",
        env,
        learning_rate=cfg.learning_rate,
        buffer_size=max(cfg.total_steps, 1),
        learning_starts=cfg.init_steps,
        batch_size=cfg.batch_size,
        tau=cfg.tau,
        gamma=cfg.gamma,
        train_freq=1,
        gradient_steps=cfg.gradient_steps,
        replay_buffer_class=mixed_replay_buffer_class(),
        replay_buffer_kwargs={
            "model_buffer": model_buffer,
            "real_ratio": cfg.real_ratio if use_model else 1.0,
            "seed": cfg.seed,
        },
        policy_kwargs={"net_arch": list(cfg.net_arch)},
        seed=cfg.seed,
        device=cfg.device,
        verbose=0,
    )
    out = Path(cfg.out) if cfg.out else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "metrics.jsonl").write_text("")
    evals: list[dict[str, Any]] = []
    state: dict[str, Any] = {"model_val": float("nan"), "k": 0}
    eval_seed = 10_000 + 100 * cfg.seed
    bar = tqdm(total=cfg.total_steps, desc=f"{cfg.algo} {spec_id}", disable=not cfg.progress)

    def log(msg: str) -> None:
        if cfg.progress:
            tqdm.write(msg, file=sys.stdout)

    def train_models(buffer: Any) -> None:
        data = buffer.real_batch()
        report = fit(model, data, cfg.fit, gen)
        state["model_val"] = report.best_val_score
        if reward_model is not None:
            fit(reward_model, data, cfg.fit, gen)
        if term_model is not None and bool(data.terminated.any()):
            fit(term_model, data, cfg.fit, gen)

    def rollouts(buffer: Any, n_steps: int) -> None:
        k = cfg.rollout_schedule.length(n_steps)
        state["k"] = k
        n = cfg.rollouts_per_step * cfg.rollout_every
        idx = torch.randint(0, buffer.real_size(), (n,), generator=gen, device=gen.device)
        starts = torch.as_tensor(buffer.observations[idx.cpu().numpy(), 0], dtype=torch.float32)
        branched_rollouts(
            model,
            starts.to(cfg.device),
            _sac_batch_policy(agent, low, high),
            reward_fn,
            term_fn,
            k,
            gen,
            buffer=model_buffer,
            obs_bounds=obs_bounds,
            uncertainty_penalty=cfg.uncertainty_penalty,
        )

    def record(n_steps: int, episodes: int) -> None:
        mean, std = evaluate_policy_returns(agent, eval_env, episodes, eval_seed)
        row: dict[str, Any] = {
            "env_steps": n_steps,
            "mean_return": mean,
            "std_return": std,
            "episodes": episodes,
            "seconds": time.perf_counter() - start,
        }
        if use_model:
            row.update(
                model_val=state["model_val"],
                rollout_length=state["k"],
                model_buffer=len(model_buffer),
            )
        evals.append(row)
        extra = (
            f"  model val {state['model_val']:.4f}  k={state['k']}  model buffer {len(model_buffer)}"
            if use_model
            else ""
        )
        log(
            f"[{cfg.algo} seed {cfg.seed}] step {n_steps:6d}: eval return {mean:8.1f} +- {std:6.1f}{extra}  ({row['seconds']:.0f} s)"
        )
        if out is not None:
            with open(out / "metrics.jsonl", "a") as fh:
                fh.write(json.dumps(row) + "\n")

    class _Callback(BaseCallback):
        def _on_step(self) -> bool:
            n = self.num_timesteps
            buffer = self.model.replay_buffer
            bar.update(1)
            if use_model and cfg.init_steps <= n < cfg.total_steps:
                since = n - cfg.init_steps
                if since % cfg.model_train_every == 0:
                    train_models(buffer)
                if since % cfg.rollout_every == 0:
                    rollouts(buffer, n)
            if n % cfg.eval_every == 0 and n < cfg.total_steps:
                record(n, cfg.eval_episodes)
            return True

    try:
        agent.learn(total_timesteps=cfg.total_steps, callback=_Callback(), progress_bar=False)
    finally:
        bar.close()
    record(cfg.total_steps, cfg.final_eval_episodes)
    seconds = time.perf_counter() - start
    result = MBPOResult(cfg, evals, evals[-1]["mean_return"], agent, model, seconds)
    if out is not None:
        summary = {
            "env": spec_id,
            "algo": cfg.algo,
            "seed": cfg.seed,
            "final_return": result.final_return,
            "seconds": seconds,
            "evals": evals,
            "config": json.loads(json.dumps(dataclasses.asdict(cfg), default=str)),
        }
        (out / "summary.json").write_text(json.dumps(summary, indent=2))
        agent.save(out / "sac.zip", exclude=["replay_buffer_kwargs", "replay_buffer_class"])
        if model is not None:
            save_checkpoint(out / "model.pt", model, {"env": spec_id, "seed": cfg.seed})
    env.close()
    eval_env.close()
    return result


def run_sac(config: MBPOConfig | None = None) -> MBPOResult:
    """The model-free baseline: :func:`run_mbpo` with ``algo="sac"`` (real data only)."""
    return run_mbpo(dataclasses.replace(config or MBPOConfig(), algo="sac"))
