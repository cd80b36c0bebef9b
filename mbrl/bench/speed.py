"""Speed of the rollout engine vs a bare batched forward pass, and planner latency per action.

Shapes follow PETS (Chua et al. 2018): ensemble of 5 x 4 hidden layers of 200, 500 candidates,
horizon 30, 20 particles, TS-inf; and mbrl-lib's PETS default CEM (population 350, horizon 15,
20 particles, 5 iterations).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import gymnasium as gym
import torch
from torch import Tensor

from mbrl.bench.timing import interleaved_medians
from mbrl.models.base import DynamicsModel
from mbrl.models.delta_model import DeltaModel, DeltaModelConfig
from mbrl.models.ensemble import GaussianEnsemble
from mbrl.models.registry import build_model, model_names
from mbrl.planners.cem import CEMConfig, CEMOptimizer
from mbrl.planners.registry import ICEM_DEFAULTS, PlannerContext, build_planner, planner_names
from mbrl.planners.sampling import SamplingPlanner
from mbrl.rollout import rollout
from mbrl.rollout.compiled import CompiledRollout, compile_planner
from mbrl.spaces import ActionCodec


@dataclass(frozen=True)
class SpeedShape:
    """A benchmark shape.

    Attributes:
        name: label; obs_dim / action_dim: sizes; candidates: ``N``; horizon: ``H``;
        particles: ``P``; ensemble_size / hidden_size / num_layers: the network.
    """

    name: str = "pets"
    obs_dim: int = 5
    action_dim: int = 1
    candidates: int = 500
    horizon: int = 30
    particles: int = 20
    ensemble_size: int = 5
    hidden_size: int = 200
    num_layers: int = 4

    @property
    def rows(self) -> int:
        """Model rows per step: ``N * P``."""
        return self.candidates * self.particles


PETS_SHAPE = SpeedShape()
MBRL_LIB_SHAPE = SpeedShape(name="mbrl-lib default", candidates=350, horizon=15)


def quadratic_reward(obs: Tensor, action: Tensor, next_obs: Tensor) -> Tensor:
    """A cheap stand-in reward ``(M,)`` so timings measure the model, not the task."""
    return -(next_obs.square().sum(-1) + 0.01 * action.square().sum(-1))


def make_model(
    shape: SpeedShape, device: torch.device, dtype: torch.dtype, seed: int = 0
) -> GaussianEnsemble:
    """A randomly initialised ensemble of ``shape``'s size with normalisers set to identity."""
    torch.manual_seed(seed)
    cfg = DeltaModelConfig(
        ensemble_size=shape.ensemble_size,
        hidden_size=shape.hidden_size,
        num_layers=shape.num_layers,
    )
    model = GaussianEnsemble(shape.obs_dim, shape.action_dim, cfg).to(device).eval()
    model.set_compute_dtype(dtype)
    return model


@dataclass(frozen=True)
class RolloutRow:
    """One rollout timing of a model kind and backend: model-steps/s of the engine and of the
    bare pass, and a note (e.g. a fallback reason)."""

    engine_steps_per_s: float
    forward_steps_per_s: float
    note: str = ""

    @property
    def ratio(self) -> float:
        """Engine / bare pass."""
        return self.engine_steps_per_s / self.forward_steps_per_s


KNOWN_MODEL_ENV = "Pendulum-v1"
"""Env whose known-physics model stands for the ``known`` kind (``O = 3``, ``A = 1``)."""


def _synthetic_data(
    obs_dim: int, action_dim: int, n: int, device: torch.device
) -> tuple[Tensor, Tensor, Tensor]:
    gen = torch.Generator().manual_seed(0)
    obs = torch.randn(n, obs_dim, generator=gen)
    act = torch.rand(n, action_dim, generator=gen) * 2 - 1
    nxt = obs + 0.1 * torch.tanh(obs.roll(1, dims=1) + act.sum(-1, keepdim=True))
    return obs.to(device), act.to(device), nxt.to(device)


def speed_shape_for(kind: str, shape: SpeedShape) -> SpeedShape:
    """``shape`` as model ``kind`` runs it: the ``known`` kind has its env's sizes; kinds other
    than ``ensemble``, ``mlp`` and ``known`` (GPs: ~0.01 M model-steps/s on one CPU core, half
    a minute per PETS-shape rollout) run a tenth of the candidates."""
    if kind == "known":
        return replace(shape, name=f"{shape.name}/{KNOWN_MODEL_ENV}", obs_dim=3, action_dim=1)
    if kind not in ("ensemble", "mlp"):
        n = max(1, shape.candidates // 10)
        return replace(shape, name=f"{shape.name}/{n} cand.", candidates=n)
    return shape


def make_speed_model(
    kind: str, shape: SpeedShape, device: torch.device, dtype: torch.dtype = torch.float32
) -> tuple[DynamicsModel, SpeedShape]:
    """A model of registered kind ``kind`` at ``shape`` (returned with the shape it really has).

    ``ensemble``: :func:`make_model`; ``mlp``: one deterministic member of the same hidden
    sizes; ``known``: the known model of :data:`KNOWN_MODEL_ENV` (its own ``O``/``A``); ``gp``
    and other kinds: built by the registry and, if trainable by ``fit_data``, fitted to 200
    synthetic transitions.

    Raises:
        ValueError: unknown kind, or a kind that cannot be built at this shape.
    """
    if kind not in model_names():
        raise ValueError(f"unknown model kind {kind!r}; choose one of {model_names()}")
    shape = speed_shape_for(kind, shape)
    if kind == "ensemble":
        return make_model(shape, device, dtype), shape
    torch.manual_seed(0)
    if kind == "mlp":
        cfg = {"hidden_size": shape.hidden_size, "num_layers": shape.num_layers}
        model = build_model("mlp", shape.obs_dim, shape.action_dim, cfg)
    elif kind == "known":
        model = build_model("known", shape.obs_dim, shape.action_dim, {}, KNOWN_MODEL_ENV)
    else:
        model = build_model(kind, shape.obs_dim, shape.action_dim, {}, KNOWN_MODEL_ENV)
    model = model.to(device).eval()
    if isinstance(model, DeltaModel):
        model.set_compute_dtype(dtype)
    elif dtype != torch.float32:
        raise ValueError(f"model kind {kind!r} has no {dtype} compute path")
    if hasattr(model, "fit_data"):
        # Fitting needs autograd even when the caller times under torch.no_grad().
        with warnings.catch_warnings(), torch.enable_grad():
            warnings.simplefilter("ignore")
            model.fit_data(*_synthetic_data(shape.obs_dim, shape.action_dim, 200, device))
    return model, shape


@torch.no_grad()
def model_rollout_speed(
    kind: str,
    shape: SpeedShape,
    device: torch.device,
    dtype: torch.dtype = torch.float32,
    repeats: int = 5,
    backend: str = "eager",
) -> RolloutRow:
    """Model-steps/s of a rollout of model ``kind`` at ``shape`` vs its bare pass, interleaved.

    The bare pass is the network alone (``model.net`` on an ``(E, N*P/E, O+A)`` tensor) for
    network models, and ``model.step`` on pre-tiled ``(N*P, O)`` / ``(N*P, A)`` tensors for
    others. ``backend`` is a :class:`~mbrl.rollout.compiled.CompiledRollout` mode
    (``eager`` = :func:`mbrl.rollout.rollout`).
    """
    model, shape = make_speed_model(kind, shape, device, dtype)
    gen = torch.Generator(device=device).manual_seed(0)
    obs = torch.randn(shape.obs_dim, device=device)
    actions = (
        torch.rand(shape.candidates, shape.horizon, shape.action_dim, device=device, generator=gen)
        * 2
        - 1
    )
    note = ""
    if backend == "eager":

        def engine() -> object:
            return rollout(
                model,
                obs,
                actions,
                quadratic_reward,
                n_particles=shape.particles,
                generator=gen,
                validate=False,
            )

    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fast = CompiledRollout(
                model, quadratic_reward, n_particles=shape.particles, generator=gen, mode=backend
            )
            fast(obs, actions)  # capture / compile outside the timed region

        def engine() -> object:
            return fast(obs, actions)

    if isinstance(model, DeltaModel):
        e = model.ensemble_size
        bare_in = torch.randn(
            e, shape.rows // e, shape.obs_dim + shape.action_dim, device=device
        ).to(dtype)

        def bare() -> object:
            out = None
            for _ in range(shape.horizon):
                out = model.net(bare_in)
            return out

    else:
        state = model.initial_state(obs.expand(shape.rows, -1), 1, gen)
        act = actions[:, 0].repeat(shape.particles, 1)
        note = "bare = model.step"

        def bare() -> object:
            out = state
            for _ in range(shape.horizon):
                out = model.step(state, act, gen)
            return out

    med = interleaved_medians({"engine": engine, "bare": bare}, repeats, device)
    if backend != "eager":
        note = "; ".join(
            x for x in (note, f"backend {fast.backend}", fast.fallback_reason or "") if x
        )
    steps = shape.rows * shape.horizon
    return RolloutRow(steps / med["engine"], steps / med["bare"], note)


PLANNER_SHAPE_OPTIONS: dict[str, dict[str, Any]] = {
    "cem": {"population": 500, "iterations": 5},
    "mppi": {"population": 500, "iterations": 5},
    "shooting": {"population": 500},
}
"""Options that put each sampling planner at the PETS shape (500 candidates; 5 iterations for
the iterative ones, as PETS' CEM); other planners use their defaults."""


@torch.no_grad()
def planner_latency_ms(
    name: str,
    shape: SpeedShape,
    device: torch.device,
    dtype: torch.dtype = torch.float32,
    repeats: int = 3,
    backend: str = "eager",
) -> tuple[float, str]:
    """Median ms per ``plan`` call of registered planner ``name`` with the ensemble of ``shape``.

    Uses :data:`PLANNER_SHAPE_OPTIONS`, horizon ``shape.horizon``, ``shape.particles``
    particles and a Box ``[-1, 1]^A`` action space. ``backend`` != ``eager`` scores
    candidates with :func:`~mbrl.rollout.compiled.compile_planner` (sampling planners only).

    Returns:
        ``(milliseconds, note)``.

    Raises:
        ValueError / TypeError: the planner cannot be built for this model and action space.
    """
    model = make_model(shape, device, dtype)
    gen = torch.Generator(device=device).manual_seed(0)
    codec = ActionCodec.from_space(gym.spaces.Box(-1.0, 1.0, (shape.action_dim,)))
    ctx = PlannerContext(
        model,
        quadratic_reward,
        None,
        codec,
        gen,
        shape.horizon,
        shape.particles,
        1.0,
        dict(PLANNER_SHAPE_OPTIONS.get(name, {})),
    )
    planner = build_planner(name, ctx)
    note = ""
    if backend != "eager":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fast = compile_planner(planner, mode=backend)
        note = f"backend {fast.backend}" + (
            f"; {fast.fallback_reason}" if fast.fallback_reason else ""
        )
    obs = torch.randn(shape.obs_dim, device=device)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        med = interleaved_medians({"plan": lambda: planner.plan(obs)}, repeats, device)
    if backend != "eager" and fast.backend != backend:
        note = f"backend {fast.backend}; {fast.fallback_reason}"
    return 1e3 * med["plan"], note


@torch.no_grad()
def cem_latency_ms(
    shape: SpeedShape,
    device: torch.device,
    dtype: torch.dtype = torch.float32,
    config: CEMConfig | None = None,
    repeats: int = 3,
) -> float:
    """Median milliseconds per ``plan`` call of CEM (5 iterations by default) at ``shape``."""
    model = make_model(shape, device, dtype)
    gen = torch.Generator(device=device).manual_seed(0)
    cfg = config or CEMConfig(population=shape.candidates, iterations=5)
    low = -torch.ones(shape.action_dim, device=device)
    opt = CEMOptimizer(cfg, low, -low, gen)
    planner = SamplingPlanner(
        model,
        quadratic_reward,
        None,
        opt,
        shape.horizon,
        n_particles=shape.particles,
        generator=gen,
    )
    obs = torch.randn(shape.obs_dim, device=device)
    med = interleaved_medians({"plan": lambda: planner.plan(obs)}, repeats, device)
    return 1e3 * med["plan"]


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def speed_report(
    device: torch.device,
    repeats: int = 5,
    include_bf16: bool = True,
    models: Sequence[str] | None = None,
    planners: Sequence[str] | None = None,
    compiled: bool = False,
    log: Callable[[str], None] | None = None,
    compiled_backends: Sequence[str] = ("graph", "compile"),
) -> list[dict]:
    """Rows of the speed table.

    - rollout throughput of the PETS ensemble (float32, and bfloat16 unless
      ``include_bf16=False``) and of every other model kind in ``models`` (float32), each
      with the ratio to its bare pass measured in the same run;
    - CEM / iCEM latency per action at the PETS and mbrl-lib shapes (both dtypes);
    - latency per action of every other planner in ``planners`` at the PETS shape (float32);
    - with ``compiled``: the ensemble rollout and CEM latency through
      :class:`~mbrl.rollout.compiled.CompiledRollout` (``graph`` and ``compile`` backends;
      on CPU the graph row notes its eager fallback).

    ``compiled_backends`` picks which of those run (``compile`` on CPU means minutes of
    inductor compilation). ``models`` / ``planners`` default to every registered one; those that cannot run at the
    standard shape give a ``{"what": "skipped", "item", "reason"}`` row.
    """
    say = log or (lambda _msg: None)
    dtypes = [torch.float32] + ([torch.bfloat16] if include_bf16 else [])
    kinds = list(models) if models is not None else model_names()
    names = list(planners) if planners is not None else planner_names()
    for n in names:
        if n not in planner_names():
            raise ValueError(f"unknown planner {n!r}; choose one of {planner_names()}")
    for k in kinds:
        if k not in model_names():
            raise ValueError(f"unknown model kind {k!r}; choose one of {model_names()}")
    rows: list[dict] = []

    def rollout_row(
        kind: str, shape_name: str, dtype: torch.dtype, r: RolloutRow, backend: str
    ) -> dict:
        return {
            "what": "rollout",
            "model": kind,
            "backend": backend,
            "shape": shape_name,
            "dtype": _dtype_name(dtype),
            "engine Msteps/s": r.engine_steps_per_s / 1e6,
            "bare Msteps/s": r.forward_steps_per_s / 1e6,
            "ratio": r.ratio,
            "note": r.note,
        }

    if "ensemble" in kinds:
        for dtype in dtypes:
            say(f"rollout ensemble {_dtype_name(dtype)}")
            row = model_rollout_speed("ensemble", PETS_SHAPE, device, dtype, repeats)
            rows.append(rollout_row("ensemble", PETS_SHAPE.name, dtype, row, "eager"))
    for kind in kinds:
        if kind == "ensemble":
            continue
        say(f"rollout {kind}")
        try:
            shape = speed_shape_for(kind, PETS_SHAPE)
            r = model_rollout_speed(kind, PETS_SHAPE, device, torch.float32, repeats)
        except (ValueError, TypeError, NotImplementedError, RuntimeError) as err:
            rows.append({"what": "skipped", "item": f"model {kind}", "reason": str(err)})
            continue
        rows.append(rollout_row(kind, shape.name, torch.float32, r, "eager"))
    if compiled:
        for backend in compiled_backends:
            say(f"rollout ensemble [{backend}]")
            r = model_rollout_speed("ensemble", PETS_SHAPE, device, torch.float32, repeats, backend)
            rows.append(rollout_row("ensemble", PETS_SHAPE.name, torch.float32, r, backend))
    for shape in (PETS_SHAPE, MBRL_LIB_SHAPE):
        for dtype in dtypes:
            for label, cfg in (
                ("cem", CEMConfig(population=shape.candidates, iterations=5)),
                ("icem", ICEM_DEFAULTS),
            ):
                if label not in names:
                    continue
                say(f"{label} {shape.name} {_dtype_name(dtype)}")
                rows.append(
                    {
                        "what": f"{label} ms/action",
                        "shape": shape.name,
                        "dtype": _dtype_name(dtype),
                        "ms": cem_latency_ms(
                            shape, device, dtype, cfg, repeats=max(2, repeats // 2)
                        ),
                    }
                )
    for name in names:
        if name in ("cem", "icem"):
            continue
        say(f"{name} {PETS_SHAPE.name}")
        try:
            ms, note = planner_latency_ms(
                name, PETS_SHAPE, device, torch.float32, repeats=max(2, repeats // 2)
            )
        except (ValueError, TypeError, NotImplementedError) as err:
            rows.append({"what": "skipped", "item": f"planner {name}", "reason": str(err)})
            continue
        rows.append(
            {
                "what": f"{name} ms/action",
                "shape": PETS_SHAPE.name,
                "dtype": "float32",
                "ms": ms,
                "note": note,
            }
        )
    if compiled and "cem" in names:
        for backend in ("eager", *compiled_backends):
            say(f"cem [{backend}]")
            ms, note = planner_latency_ms(
                "cem", PETS_SHAPE, device, torch.float32, max(2, repeats // 2), backend
            )
            rows.append(
                {
                    "what": f"cem [{backend}] ms/action",
                    "shape": PETS_SHAPE.name,
                    "dtype": "float32",
                    "ms": ms,
                    "note": note,
                }
            )
    return rows
