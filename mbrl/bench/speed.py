"""Speed of the rollout engine vs a bare batched forward pass, and planner latency per action.

Shapes follow PETS (Chua et al. 2018): ensemble of 5 x 4 hidden layers of 200, 500 candidates,
horizon 30, 20 particles, TS-inf; and mbrl-lib's PETS default CEM (population 350, horizon 15,
20 particles, 5 iterations).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from mbrl.bench.timing import interleaved_medians
from mbrl.models.delta_model import DeltaModelConfig
from mbrl.models.ensemble import GaussianEnsemble
from mbrl.planners.cem import CEMConfig, CEMOptimizer
from mbrl.planners.registry import ICEM_DEFAULTS
from mbrl.planners.sampling import SamplingPlanner
from mbrl.rollout import rollout


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
class RolloutSpeed:
    """Model-steps (rows x steps) per second of the engine and of the bare forward pass."""

    engine_steps_per_s: float
    forward_steps_per_s: float

    @property
    def ratio(self) -> float:
        """Engine / bare forward (1.0 = no overhead beyond the network)."""
        return self.engine_steps_per_s / self.forward_steps_per_s


@torch.no_grad()
def rollout_speed(
    shape: SpeedShape, device: torch.device, dtype: torch.dtype = torch.float32, repeats: int = 5
) -> RolloutSpeed:
    """Time one full rollout of ``shape`` against ``H`` bare forward passes of the same net.

    The bare pass is the network alone on a ``(E, N*P/E, O+A)`` tensor in ``dtype``: the
    roofline the engine (normalisation, sampling, reward, termination mask) is measured against.
    """
    model = make_model(shape, device, dtype)
    gen = torch.Generator(device=device).manual_seed(0)
    obs = torch.randn(shape.obs_dim, device=device)
    actions = (
        torch.rand(shape.candidates, shape.horizon, shape.action_dim, device=device, generator=gen)
        * 2
        - 1
    )
    e = shape.ensemble_size
    bare_in = torch.randn(e, shape.rows // e, shape.obs_dim + shape.action_dim, device=device).to(
        dtype
    )

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

    def bare() -> object:
        out = None
        for _ in range(shape.horizon):
            out = model.net(bare_in)
        return out

    med = interleaved_medians({"engine": engine, "bare": bare}, repeats, device)
    steps = shape.rows * shape.horizon
    return RolloutSpeed(steps / med["engine"], steps / med["bare"])


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


def speed_report(device: torch.device, repeats: int = 5, include_bf16: bool = True) -> list[dict]:
    """Rows of the speed table: rollout throughput and CEM/iCEM latency per route and shape."""
    dtypes = [torch.float32] + ([torch.bfloat16] if include_bf16 else [])
    rows: list[dict] = []
    for dtype in dtypes:
        speed = rollout_speed(PETS_SHAPE, device, dtype, repeats)
        rows.append(
            {
                "what": "rollout",
                "shape": PETS_SHAPE.name,
                "dtype": str(dtype).removeprefix("torch."),
                "engine Msteps/s": speed.engine_steps_per_s / 1e6,
                "bare Msteps/s": speed.forward_steps_per_s / 1e6,
                "ratio": speed.ratio,
            }
        )
    for shape in (PETS_SHAPE, MBRL_LIB_SHAPE):
        for dtype in dtypes:
            for label, cfg in (
                ("cem", CEMConfig(population=shape.candidates, iterations=5)),
                ("icem", ICEM_DEFAULTS),
            ):
                rows.append(
                    {
                        "what": f"{label} ms/action",
                        "shape": shape.name,
                        "dtype": str(dtype).removeprefix("torch."),
                        "ms": cem_latency_ms(
                            shape, device, dtype, cfg, repeats=max(2, repeats // 2)
                        ),
                    }
                )
    return rows
