"""Generating a surrogate as a job: collect transitions, fit models, save a loadable directory.

Used by ``mbrl surrogate --env ID --steps N --out DIR``; the result opens with
``gymnasium.make("mbrl/Surrogate-v0", path=DIR)``.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from mbrl.agents.env_factory import make_env
from mbrl.data.buffer import TransitionBuffer
from mbrl.dyna.surrogate import SurrogateEnv, load_surrogate, save_surrogate
from mbrl.models.registry import build_model, model_names
from mbrl.models.task_models import LearnedReward, LearnedTermination
from mbrl.models.training import FitConfig, FitReport, fit
from mbrl.seeding import make_generator, seed_everything
from mbrl.spaces import ActionCodec, observation_dim
from mbrl.task_fns import get_task_fns
from mbrl.util.paths import check_output_dir
from mbrl.validation import check_positive_int

SB3_ALGOS = ("sac", "td3", "ddpg", "ppo", "a2c", "dqn")
"""stable-baselines3 algorithms a ``--policy`` zip can be loaded with."""


@dataclass(frozen=True)
class SurrogateJobConfig:
    """One surrogate-generation job.

    Attributes:
        env_id: gymnasium id (``module:Env-v0`` allowed; default ``Pendulum-v1``).
        steps: real transitions to collect (default 5000).
        out: directory to write the surrogate to (required).
        seed: seeds the env, the action sampling, the model init and training (default 0).
        model: registered model name, ``ensemble`` or ``mlp`` (default ``ensemble``).
        model_options: model config overrides (default: none; the architecture defaults of
            :class:`~mbrl.models.DeltaModelConfig`).
        reward: ``known`` (the env's registered task functions) or ``learned``; envs without
            known functions always learn (default ``known``).
        policy: path of a saved stable-baselines3 policy (``.zip``) to collect with instead of
            random actions (default: random actions).
        policy_algo: the SB3 algorithm of ``policy`` (default ``sac``).
        start_states: ``all`` (every collected observation) or ``initial`` (the observations
            episodes started from) as the surrogate's start-state set (default ``all``).
        max_episode_steps: surrogate episode length (default: the env's own limit, else 1000).
        uncertainty_penalty: default MOPO penalty of the saved surrogate (default 0).
        fit: training settings of the dynamics (and learned task) models (default: at most
            3000 gradient steps, patience 5).
        progress: progress bars and log lines (default True).
    """

    env_id: str = "Pendulum-v1"
    steps: int = 5000
    out: str | None = None
    seed: int = 0
    model: str = "ensemble"
    model_options: dict[str, Any] = field(default_factory=dict)
    reward: str = "known"
    policy: str | None = None
    policy_algo: str = "sac"
    start_states: str = "all"
    max_episode_steps: int | None = None
    uncertainty_penalty: float = 0.0
    fit: FitConfig = field(default_factory=lambda: FitConfig(max_steps=3000, patience=5))
    progress: bool = True

    def __post_init__(self) -> None:
        check_positive_int(self.steps, "steps", minimum=2)
        if self.model not in model_names():
            raise ValueError(f"model must be one of {model_names()}, got {self.model!r}")
        if self.reward not in ("known", "learned"):
            raise ValueError(f"reward must be 'known' or 'learned', got {self.reward!r}")
        if self.start_states not in ("all", "initial"):
            raise ValueError(f"start_states must be 'all' or 'initial', got {self.start_states!r}")
        if self.policy_algo not in SB3_ALGOS:
            raise ValueError(f"policy_algo must be one of {SB3_ALGOS}, got {self.policy_algo!r}")
        if self.max_episode_steps is not None:
            check_positive_int(self.max_episode_steps, "max_episode_steps")
        if self.uncertainty_penalty < 0:
            raise ValueError(f"uncertainty_penalty must be >= 0, got {self.uncertainty_penalty}")


@dataclass
class SurrogateJobResult:
    """What :func:`build_surrogate` returns.

    Attributes:
        path: the written directory; env: the surrogate, loaded back from ``path``;
        buffer: the collected transitions (also in ``path/buffer.pt``); fit_report: the
        dynamics model's training report; episodes: real episodes (complete or cut) collected;
        mean_random_return: mean return of the complete collected episodes (nan if none);
        seconds: wall time.
    """

    path: Path
    env: SurrogateEnv
    buffer: TransitionBuffer
    fit_report: FitReport
    episodes: int
    mean_random_return: float
    seconds: float


def load_sb3_policy(path: str, algo: str = "sac") -> Callable[[np.ndarray], Any]:
    """``obs (O,) -> action`` of a stable-baselines3 model saved at ``path`` (stochastic actions).

    Raises:
        ValueError: stable-baselines3 missing, an unknown ``algo``, or a file that does not load.
    """
    sb3 = import_sb3()
    classes = {"sac": "SAC", "td3": "TD3", "ddpg": "DDPG", "ppo": "PPO", "a2c": "A2C", "dqn": "DQN"}
    if algo not in classes:
        raise ValueError(f"policy_algo must be one of {sorted(classes)}, got {algo!r}")
    try:
        agent = getattr(sb3, classes[algo]).load(path, device="cpu")
    except Exception as err:  # SB3 raises many kinds of errors for bad files
        raise ValueError(f"cannot load {algo.upper()} policy from {path!r}: {err}") from err

    def policy(obs: np.ndarray) -> Any:
        action, _ = agent.predict(obs, deterministic=False)
        return action

    return policy


def import_sb3() -> Any:
    """``import stable_baselines3`` with a clear error when the ``sb3`` extra is missing."""
    try:
        import stable_baselines3
    except ImportError as err:
        raise ValueError(
            "this needs stable-baselines3: install the sb3 extra (pip install 'mbrl[sb3]')"
        ) from err
    return stable_baselines3


def collect_transitions(
    env: Any,
    steps: int,
    policy: Callable[[np.ndarray], Any] | None,
    codec: ActionCodec,
    seed: int,
    progress: bool = False,
) -> tuple[TransitionBuffer, torch.Tensor, list[float]]:
    """Exactly ``steps`` real transitions (random actions when ``policy`` is None).

    Returns:
        ``(buffer, initial_obs (E, O), returns of the complete episodes)``; the last episode
        is cut (marked truncated) when ``steps`` ends inside it.
    """
    obs_dim = observation_dim(env.observation_space)
    buffer = TransitionBuffer(obs_dim, codec.dim, capacity=steps)
    env.action_space.seed(seed)
    act = policy if policy is not None else (lambda _o: env.action_space.sample())
    obs, _ = env.reset(seed=seed)
    initial, returns, ep_return = [np.asarray(obs, np.float32)], [], 0.0
    bar = tqdm(total=steps, desc="collect", disable=not progress, leave=False)
    try:
        for t in range(steps):
            action = act(obs)
            next_obs, reward, terminated, truncated, _ = env.step(action)
            last = t == steps - 1
            ep_return += float(reward)
            buffer.add(
                obs,
                codec.encode(action),
                float(reward),
                next_obs,
                bool(terminated),
                bool(truncated) or last,
            )
            bar.update(1)
            if terminated or truncated:
                returns.append(ep_return)
                ep_return = 0.0
                if not last:
                    obs, _ = env.reset()
                    initial.append(np.asarray(obs, np.float32))
            else:
                obs = next_obs
    finally:
        bar.close()
    return buffer, torch.as_tensor(np.stack(initial)), returns


def _log(cfg: SurrogateJobConfig, msg: str) -> None:
    if cfg.progress:
        tqdm.write(msg, file=sys.stdout)


def build_surrogate(config: SurrogateJobConfig) -> SurrogateJobResult:
    """Collect ``config.steps`` transitions, fit the dynamics (and reward/termination) models,
    and save the surrogate to ``config.out`` (plus the data as ``buffer.pt``).

    Raises:
        ValueError: no ``out``, an ``out`` that is a file or not writable (checked before any
            work), a bad env id, or an env whose spaces mbrl cannot model.
    """
    cfg = config
    if not cfg.out:
        raise ValueError("out must name the directory to write the surrogate to")
    # Before collecting and fitting: a bad directory must not cost the user that work.
    check_output_dir(cfg.out, "out")
    start = time.perf_counter()
    env = make_env(cfg.env_id)
    codec = ActionCodec.from_space(env.action_space)
    obs_dim = observation_dim(env.observation_space)
    spec_id = env.spec.id if env.spec is not None else cfg.env_id
    policy = load_sb3_policy(cfg.policy, cfg.policy_algo) if cfg.policy else None
    seed_everything(cfg.seed)
    gen = make_generator(cfg.seed)
    model = build_model(cfg.model, obs_dim, codec.dim, cfg.model_options, spec_id)
    known = get_task_fns(spec_id)
    _log(
        cfg,
        f"collecting {cfg.steps} transitions from {spec_id} ({'policy' if policy else 'random actions'})",
    )
    buffer, initial, returns = collect_transitions(
        env, cfg.steps, policy, codec, cfg.seed, cfg.progress
    )
    fit_cfg = dataclasses.replace(cfg.fit, progress=cfg.progress)
    report = fit(model, buffer, fit_cfg, gen)
    _log(
        cfg,
        f"dynamics model: held-out score {report.best_val_score:.4g} after {report.steps} steps ({report.seconds:.1f} s)",
    )
    reward: str | LearnedReward = "known"
    termination: str | LearnedTermination = "known"
    if cfg.reward == "learned" or known is None:
        reward = LearnedReward(obs_dim, codec.dim)
        r_rep = fit(reward, buffer, fit_cfg, gen)
        _log(cfg, f"reward model: held-out MSE (standardised) {r_rep.best_val_score:.4g}")
        learn_term = known is None or known.termination is not None
        if learn_term and bool(buffer.all().terminated.any()):
            termination = LearnedTermination(obs_dim, codec.dim)
            t_rep = fit(termination, buffer, fit_cfg, gen)
            _log(cfg, f"termination model: held-out balanced error {t_rep.best_val_score:.4g}")
        elif learn_term:
            termination = "none"
            _log(cfg, "no terminations in the data: the surrogate never terminates")
        else:
            termination = "known"
    starts = buffer.all().obs if cfg.start_states == "all" else initial
    max_steps = cfg.max_episode_steps or (env.spec.max_episode_steps if env.spec else None) or 1000
    mean_ret = float(np.mean(returns)) if returns else float("nan")
    out = Path(cfg.out)
    save_surrogate(
        out,
        model,
        env.observation_space,
        env.action_space,
        starts,
        env_id=cfg.env_id if ":" in cfg.env_id else spec_id,
        reward=reward,
        termination=termination,
        max_episode_steps=int(max_steps),
        uncertainty_penalty=cfg.uncertainty_penalty,
        info={
            "steps": cfg.steps,
            "seed": cfg.seed,
            "model": cfg.model,
            "model_options": cfg.model_options,
            "collection": f"policy {cfg.policy} ({cfg.policy_algo})" if cfg.policy else "random",
            "start_states": cfg.start_states,
            "model_val_score": report.best_val_score,
            "mean_collection_return": mean_ret,
        },
    )
    buffer.save(out / "buffer.pt")
    env.close()
    loaded = load_surrogate(out)
    seconds = time.perf_counter() - start
    _log(cfg, f"surrogate written to {out} ({seconds:.1f} s)")
    return SurrogateJobResult(out, loaded, buffer, report, len(initial), mean_ret, seconds)
