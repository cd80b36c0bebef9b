"""The model-based loop: seed data -> fit -> act with MPC -> append -> refit.

One function, :func:`run`, used by ``mbrl run`` and by the benchmark suite.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from mbrl.agents.env_factory import make_env
from mbrl.agents.episode import EpisodeStats, run_episode
from mbrl.agents.mpc import MPCAgent
from mbrl.agents.presets import apply_preset
from mbrl.data.buffer import TransitionBuffer
from mbrl.models.box_termination import BoxTermination
from mbrl.models.checkpoint import save_checkpoint
from mbrl.models.policy_model import LearnedPolicy, fit_policy
from mbrl.models.registry import build_model
from mbrl.models.task_models import LearnedReward, LearnedTermination
from mbrl.models.training import FitConfig, FitReport, fit
from mbrl.models.value_model import LearnedValue, fit_value
from mbrl.planners.registry import PlannerContext, build_planner, planner_entry
from mbrl.seeding import make_generator, resolve_device, seed_everything
from mbrl.spaces import ActionCodec, observation_dim
from mbrl.task_fns import get_task_fns
from mbrl.validation import check_positive_int

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


@dataclass(frozen=True)
class RunConfig:
    """Settings of one model-based run (what ``mbrl run`` builds from its flags).

    Attributes:
        env_id: gymnasium id, ``module:Env-v0`` allowed (default ``Pendulum-v1``).
        model: registered model name (default ``ensemble``).
        planner: registered planner name (default ``cem``).
        reward: ``known`` (the env's registered task functions) or ``learned`` (reward and
            termination models fitted to data). Envs without known functions always learn.
        termination: how a learned termination is modelled (with ``reward="learned"``):
            ``mlp`` (default), a classifier over ``(obs, action, next_obs)``
            (:class:`~mbrl.models.task_models.LearnedTermination`), or ``box``, learned limits
            on the next observation (:class:`~mbrl.models.box_termination.BoxTermination`).
        episodes: MPC episodes after the seed episodes (default 10).
        seed: seeds the env, the model initialisation, training and planning (default 0).
        device: ``cpu`` or ``cuda[:N]`` for models and planning (default ``cpu``).
        out: directory for metrics, summary, checkpoints and buffer (default none).
        seed_episodes: random-action episodes collected first (default 1); more are collected
            while the buffer holds fewer than ``min_seed_transitions``.
        min_seed_transitions: least number of random transitions before the first fit
            (default 20: random episodes of some envs end after a step or two).
        horizon / n_particles / gamma: planning horizon, particles, discount (15 / 5 / 1.0).
        value: ``none`` (default) or ``learned``: fit a state value to the discounted returns
            of the real episodes (:mod:`mbrl.models.value_model`) after every episode and hand
            it to the planner, which scores states past its horizon with it. Needs a planner
            that accepts one (``mcts``) and ``gamma < 1``.
        policy: ``none`` (default) or ``learned``: fit a policy to the agent's own actions
            (:mod:`mbrl.models.policy_model`) after every episode and let the planner draw
            its rollouts' actions from it instead of uniformly at random. Needs a planner
            that accepts one (``mcts``).
        planner_options: planner config overrides, e.g. ``{"population": 300}``.
        model_options: model config overrides, e.g. ``{"hidden_size": 128}``.
        fit: training settings of the dynamics (and learned task) models.
        max_episode_steps: extra cap on episode length (default: the env's own limit).
        compute_dtype: ``float32`` or ``bfloat16`` (opt-in faster planning on AMX CPUs / GPUs).
        use_preset: apply the env's tuned defaults (:mod:`mbrl.agents.presets`) to fields
            still at their defaults (default True).
        explicit: names of fields the user set on purpose; presets never replace them, even
            when the value equals the default (``mbrl run`` fills it from the typed flags).
        progress: show progress bars and per-episode lines (default True).
    """

    env_id: str = "Pendulum-v1"
    model: str = "ensemble"
    planner: str = "cem"
    reward: str = "known"
    termination: str = "mlp"
    episodes: int = 10
    seed: int = 0
    device: str = "cpu"
    out: str | None = None
    seed_episodes: int = 1
    min_seed_transitions: int = 20
    horizon: int = 15
    n_particles: int = 5
    gamma: float = 1.0
    value: str = "none"
    policy: str = "none"
    planner_options: dict[str, Any] = field(default_factory=dict)
    model_options: dict[str, Any] = field(default_factory=dict)
    fit: FitConfig = field(default_factory=FitConfig)
    max_episode_steps: int | None = None
    compute_dtype: str = "float32"
    use_preset: bool = True
    progress: bool = True
    explicit: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        object.__setattr__(self, "explicit", frozenset(self.explicit))
        unknown = self.explicit - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise ValueError(f"explicit names unknown RunConfig fields: {sorted(unknown)}")
        check_positive_int(self.episodes, "episodes", minimum=0)
        check_positive_int(self.seed_episodes, "seed_episodes", minimum=0)
        check_positive_int(self.horizon, "horizon")
        check_positive_int(self.n_particles, "n_particles")
        if self.reward not in ("known", "learned"):
            raise ValueError(f"reward must be 'known' or 'learned', got {self.reward!r}")
        if self.termination not in ("mlp", "box"):
            raise ValueError(f"termination must be 'mlp' or 'box', got {self.termination!r}")
        if self.value not in ("none", "learned"):
            raise ValueError(f"value must be 'none' or 'learned', got {self.value!r}")
        if self.policy not in ("none", "learned"):
            raise ValueError(f"policy must be 'none' or 'learned', got {self.policy!r}")
        if not 0.0 < self.gamma <= 1.0:
            raise ValueError(f"gamma must be in (0, 1], got {self.gamma}")
        if self.compute_dtype not in _DTYPES:
            raise ValueError(
                f"compute_dtype must be one of {sorted(_DTYPES)}, got {self.compute_dtype!r}"
            )
        if self.seed_episodes + self.episodes < 1:
            raise ValueError("seed_episodes + episodes must be >= 1")


@dataclass(frozen=True)
class EpisodeRecord:
    """One logged episode (a line of ``metrics.jsonl``).

    Attributes:
        episode: index (seed episodes first); kind: ``seed`` or ``mpc``; return/steps: outcome;
        plan_ms: mean planning time per step (0 for seed episodes); model_val_loss: held-out
        score of the model used; env_steps: total env steps so far; fit_seconds: training time
        before the episode; terminated / truncated: how it ended.
    """

    episode: int
    kind: str
    episode_return: float
    steps: int
    plan_ms: float
    model_val_loss: float
    env_steps: int
    fit_seconds: float
    terminated: bool
    truncated: bool

    def to_json(self) -> dict[str, Any]:
        """JSON object with ``return`` as the key for ``episode_return``."""
        d = dataclasses.asdict(self)
        d["return"] = d.pop("episode_return")
        return d


@dataclass
class RunResult:
    """What :func:`run` returns: the records, and the objects for further use.

    Attributes:
        config: the effective config (preset applied); records: every episode.
        model: the fitted dynamics model; buffer: all real transitions; reward_fn /
        termination_fn: the task functions used for planning; value_fn: the learned value
        (``value="learned"``), else None; policy: the learned rollout policy
        (``policy="learned"``), else None.
    """

    config: RunConfig
    records: list[EpisodeRecord]
    model: torch.nn.Module
    buffer: TransitionBuffer
    reward_fn: Callable
    termination_fn: Callable | None
    value_fn: LearnedValue | None = None
    policy: LearnedPolicy | None = None

    @property
    def mpc_returns(self) -> list[float]:
        """Returns of the MPC (non-seed) episodes, in order."""
        return [r.episode_return for r in self.records if r.kind == "mpc"]


class _TaskModels:
    """Learned reward/termination models, fitted alongside the dynamics."""

    def __init__(
        self, obs_dim: int, action_dim: int, device: torch.device, termination: str | None
    ) -> None:
        self.reward = LearnedReward(obs_dim, action_dim).to(device)
        kinds = {"mlp": LearnedTermination, "box": BoxTermination}
        self.termination: LearnedTermination | BoxTermination | None = (
            kinds[termination](obs_dim, action_dim).to(device) if termination else None
        )

    def fit(self, buffer: TransitionBuffer, config: FitConfig, gen: torch.Generator) -> None:
        fit(self.reward, buffer, config, gen)
        if isinstance(self.termination, BoxTermination):
            self.termination.fit_bounds(buffer)
        elif self.termination is not None:
            fit(self.termination, buffer, config, gen)


class _SearchAids:
    """The learned value (``value="learned"``) and rollout policy (``policy="learned"``)
    handed to planners that accept them, fitted after the dynamics before every MPC episode."""

    def __init__(
        self, cfg: RunConfig, obs_dim: int, codec: ActionCodec, device: torch.device
    ) -> None:
        self.gamma = cfg.gamma
        self.value: LearnedValue | None = None
        self.policy: LearnedPolicy | None = None
        if cfg.value == "learned":
            _check_value_planner(cfg)
            self.value = LearnedValue(obs_dim).to(device)
        if cfg.policy == "learned":
            _check_policy_planner(cfg)
            low, high = (None, None) if codec.discrete else (codec.low, codec.high)
            self.policy = LearnedPolicy(obs_dim, codec.dim, codec.discrete, low, high).to(device)

    @property
    def policy_fn(self) -> Callable | None:
        """``sample(obs (M, O), generator) -> (M, A)`` of the policy, or None."""
        return self.policy.sample if self.policy is not None else None

    def fit(self, buffer: TransitionBuffer, config: FitConfig, gen: torch.Generator) -> None:
        if len(buffer) < 2:
            return
        if self.value is not None:
            fit_value(self.value, buffer, self.gamma, config, gen)
        if self.policy is not None:
            fit_policy(self.policy, buffer, config, gen)

    def save(self, out: Path, meta: dict) -> None:
        if self.value is not None:
            save_checkpoint(out / "value_model.pt", self.value, meta)
        if self.policy is not None:
            save_checkpoint(out / "policy_model.pt", self.policy, meta)


def _log(cfg: RunConfig, msg: str) -> None:
    if cfg.progress:
        tqdm.write(msg, file=sys.stdout)


def _json_default(value: Any) -> Any:
    """JSON for config values json cannot encode: sets as sorted lists, the rest as strings."""
    return sorted(value) if isinstance(value, set | frozenset) else str(value)


def _save_outputs(
    out: Path, cfg: RunConfig, records: list[EpisodeRecord], model, buffer, task_models, aids
) -> None:
    summary = {
        "env": cfg.env_id,
        "model": cfg.model,
        "planner": cfg.planner,
        "reward": cfg.reward,
        "seed": cfg.seed,
        "device": cfg.device,
        "compute_dtype": cfg.compute_dtype,
        "config": json.loads(json.dumps(dataclasses.asdict(cfg), default=_json_default)),
        "episodes": [
            {"return": r.episode_return, "steps": r.steps, "plan_ms": r.plan_ms, "kind": r.kind}
            for r in records
        ],
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    meta = {"env": cfg.env_id, "seed": cfg.seed}
    save_checkpoint(out / "model.pt", model, meta)
    if task_models is not None:
        save_checkpoint(out / "reward_model.pt", task_models.reward, meta)
        if task_models.termination is not None:
            save_checkpoint(out / "termination_model.pt", task_models.termination, meta)
    aids.save(out, meta)
    buffer.save(out / "buffer.pt")


def _check_value_planner(cfg: RunConfig) -> None:
    """Raise ``ValueError`` unless ``value="learned"`` can be used by this run's planner."""
    if not planner_entry(cfg.planner).planner_class.accepts_value_fn:
        raise ValueError(
            f"value='learned' (--value learned) needs a planner that uses a value function "
            f"(mcts); planner {cfg.planner!r} does not"
        )
    if not cfg.gamma < 1.0:
        raise ValueError(
            f"value='learned' (--value learned, possibly from the env preset) fits discounted "
            f"returns and needs gamma < 1 (e.g. --gamma 0.99), got gamma={cfg.gamma}; pass "
            f"--value none to plan without a value"
        )


def _check_policy_planner(cfg: RunConfig) -> None:
    """Raise ``ValueError`` unless ``policy="learned"`` can be used by this run's planner."""
    if not planner_entry(cfg.planner).planner_class.accepts_policy_fn:
        raise ValueError(
            f"policy='learned' (--policy learned) needs a planner that rolls out with a policy "
            f"(mcts); planner {cfg.planner!r} does not"
        )


class Terminated(Exception):
    """Raised inside :func:`run` when the process receives SIGTERM, so the buffer is saved."""


@contextlib.contextmanager
def _sigterm_raises():
    """Turn SIGTERM into :class:`Terminated` while the loop runs (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise Terminated(f"received signal {signum}")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run(config: RunConfig | None = None) -> RunResult:
    """Run the model-based loop described by ``config``.

    Everything is checked before the first env step: env id, action space vs planner, model and
    planner names and options. If anything fails mid-run (SIGTERM and Ctrl-C included), the
    transitions collected so far are saved (to ``out/buffer.pt``, or a temporary file named in
    the error) before the error propagates.

    Returns:
        :class:`RunResult`.
    """
    cfg = config or RunConfig()
    env = make_env(cfg.env_id)
    if cfg.use_preset:
        cfg = apply_preset(cfg, env.spec.id if env.spec else cfg.env_id)
    device = resolve_device(cfg.device)
    codec = ActionCodec.from_space(env.action_space)
    obs_dim = observation_dim(env.observation_space)
    planner_entry(cfg.planner).planner_class.check_action_space(codec)
    seed_everything(cfg.seed)
    gen = make_generator(cfg.seed, device)
    model = build_model(
        cfg.model, obs_dim, codec.dim, cfg.model_options, env.spec.id if env.spec else cfg.env_id
    ).to(device)
    if hasattr(model, "set_compute_dtype"):
        model.set_compute_dtype(_DTYPES[cfg.compute_dtype])
    known = get_task_fns(env.spec.id) if env.spec else None
    task_models = None
    if cfg.reward == "known" and known is not None:
        reward_fn, term_fn = known.planner_reward, known.termination
    else:
        if cfg.reward == "known":
            _log(cfg, f"no known reward for {cfg.env_id}: learning reward and termination models")
        learn_term = known is None or known.termination is not None
        task_models = _TaskModels(
            obs_dim, codec.dim, device, cfg.termination if learn_term else None
        )
        reward_fn, term_fn = task_models.reward, task_models.termination
    aids = _SearchAids(cfg, obs_dim, codec, device)
    ctx = PlannerContext(
        model,
        reward_fn,
        term_fn,
        codec,
        gen,
        cfg.horizon,
        cfg.n_particles,
        cfg.gamma,
        dict(cfg.planner_options),
        aids.value,
        aids.policy_fn,
    )
    planner = build_planner(cfg.planner, ctx)
    agent = MPCAgent(planner, codec, obs_dim, device)
    buffer = TransitionBuffer(obs_dim, codec.dim, capacity=1_000_000)
    out = Path(cfg.out) if cfg.out else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "metrics.jsonl").write_text("")
    env.action_space.seed(cfg.seed)
    records: list[EpisodeRecord] = []
    report = FitReport()
    signals = contextlib.ExitStack()
    signals.enter_context(_sigterm_raises())
    try:
        n_seed = cfg.seed_episodes
        ep = 0
        while ep < n_seed + cfg.episodes:
            is_seed = ep < n_seed
            fit_s = 0.0
            if is_seed:
                act_fn = lambda _obs: env.action_space.sample()  # noqa: E731
            else:
                start = time.perf_counter()
                report = fit(
                    model, buffer, dataclasses.replace(cfg.fit, progress=cfg.progress), gen
                )
                if task_models is not None:
                    task_models.fit(buffer, cfg.fit, gen)
                aids.fit(buffer, cfg.fit, gen)
                fit_s = time.perf_counter() - start
                agent.reset()
                agent.plan_seconds.clear()
                act_fn = agent.act
            stats: EpisodeStats = run_episode(
                env,
                act_fn,
                codec,
                buffer,
                seed=cfg.seed if ep == 0 else None,
                max_steps=cfg.max_episode_steps,
                progress=(f"episode {ep}" if cfg.progress else None),
            )
            plan_ms = 0.0 if is_seed else 1e3 * float(np.mean(agent.plan_seconds or [0.0]))
            rec = EpisodeRecord(
                ep,
                "seed" if is_seed else "mpc",
                stats.episode_return,
                stats.steps,
                plan_ms,
                float(report.best_val_score),
                buffer.total_added,
                fit_s,
                stats.terminated,
                stats.truncated,
            )
            records.append(rec)
            _log(
                cfg,
                f"episode {ep:3d} [{rec.kind:4s}] return {rec.episode_return:9.2f}  steps {rec.steps:4d}  "
                f"val_loss {rec.model_val_loss:8.4f}  plan {rec.plan_ms:7.1f} ms/step  fit {fit_s:5.1f} s",
            )
            if out is not None:
                with (out / "metrics.jsonl").open("a") as fh:
                    fh.write(json.dumps(rec.to_json()) + "\n")
            if (
                is_seed
                and ep == n_seed - 1
                and len(buffer) < cfg.min_seed_transitions
                and ep < 1000
            ):
                n_seed += 1  # too little random data to fit on: one more seed episode
            ep += 1
    except BaseException as err:
        if len(buffer) == 0:
            raise
        target = (out or Path(tempfile.mkdtemp(prefix="mbrl-crash-"))) / "buffer.pt"
        buffer.save(target)
        if hasattr(err, "add_note"):
            err.add_note(
                f"mbrl: the {len(buffer)} transitions collected so far were saved to {target}"
            )
        raise
    finally:
        signals.close()
        env.close()
    if out is not None:
        _save_outputs(out, cfg, records, model, buffer, task_models, aids)
    return RunResult(cfg, records, model, buffer, reward_fn, term_fn, aids.value, aids.policy)
