"""Ensembles of MLPs predicting the state delta ``next_obs - obs`` (deterministic or Gaussian)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mbrl.data.buffer import TransitionBatch
from mbrl.models.base import (
    DETERMINISTIC,
    DIFFERENTIABLE,
    ENSEMBLE,
    EXPECTATION,
    PARTICLES,
    DynamicsModel,
    ModelState,
)
from mbrl.models.configs import register_config
from mbrl.models.coordinates import StateCoordinates
from mbrl.models.layers import EnsembleMLP
from mbrl.models.normalization import Normalizer
from mbrl.validation import check_positive_int

PROPAGATIONS = ("ts_inf", "ts1", EXPECTATION)


@register_config
@dataclass(frozen=True)
class DeltaModelConfig:
    """Architecture and propagation of a :class:`DeltaModel`.

    Attributes:
        ensemble_size: number of members ``E`` (default 5, as PETS).
        hidden_size: units per hidden layer (default 200, as PETS).
        num_layers: hidden layers per member (default 4, as PETS).
        activation: ``silu`` (PETS' swish), ``relu``, ``tanh`` or ``elu``.
        probabilistic: predict a Gaussian (mean, log-variance) per member and train with NLL;
            False gives deterministic members trained with MSE.
        num_elites: members used for prediction, chosen on held-out error after each fit
            (default ``None``: all members).
        propagation: how particles move through the ensemble in :meth:`DeltaModel.step`:
            ``ts_inf`` (each particle keeps one member for the whole rollout), ``ts1`` (a fresh
            random member per particle every step) or ``expectation`` (mean over members, no
            sampling: deterministic and differentiable).
        logvar_bounds: initial soft bounds (min, max) on the log-variance; learned (PETS).
        angle_dims: observation dimensions that are angles in ``[-pi, pi)`` (default none). The
            networks see them as ``(sin, cos)``, learn the wrapped delta, and predictions are
            wrapped back, so crossing ``+-pi`` is a small step rather than a jump of ``2 pi``.
        phasor_dims: ``(amplitude, phase)`` observation index pairs (default none), e.g. a
            ripple or an RF field. The model learns them as Cartesian ``(A cos, A sin)``
            vectors, where phasors add linearly and a near-zero amplitude has no wild phase
            (see :mod:`mbrl.models.coordinates`).
    """

    ensemble_size: int = 5
    hidden_size: int = 200
    num_layers: int = 4
    activation: str = "silu"
    probabilistic: bool = True
    num_elites: int | None = None
    propagation: str = "ts_inf"
    logvar_bounds: tuple[float, float] = (-10.0, 0.5)
    angle_dims: tuple[int, ...] = ()
    phasor_dims: tuple[tuple[int, int], ...] = ()

    def __post_init__(self) -> None:
        check_positive_int(self.ensemble_size, "ensemble_size")
        check_positive_int(self.hidden_size, "hidden_size")
        check_positive_int(self.num_layers, "num_layers")
        if self.num_elites is not None:
            check_positive_int(self.num_elites, "num_elites")
            if self.num_elites > self.ensemble_size:
                raise ValueError(
                    f"num_elites ({self.num_elites}) must be <= ensemble_size ({self.ensemble_size})"
                )
        if len(set(self.angle_dims)) != len(self.angle_dims) or any(
            not isinstance(d, int) or d < 0 for d in self.angle_dims
        ):
            raise ValueError(
                f"angle_dims must be distinct non-negative ints, got {self.angle_dims}"
            )
        # Tuples arrive as lists from JSON / CLI options; keep the config hashable.
        object.__setattr__(self, "phasor_dims", tuple(tuple(p) for p in self.phasor_dims))
        if self.propagation not in PROPAGATIONS:
            raise ValueError(f"propagation must be one of {PROPAGATIONS}, got {self.propagation!r}")


class DeltaModel(DynamicsModel):
    """``E`` MLPs mapping normalised ``[obs, action]`` to a normalised delta of ``obs``.

    ``step(state (M, O), action (M, A)) -> next state (M, O)`` with ``config.propagation``;
    :meth:`step_with` (and :meth:`propagating` views) take the mode as an argument.

    Member assignment (``ts_inf``): row ``r`` of ``M`` uses active member ``(r * E') // M`` at
    every step, i.e. ``E'`` contiguous blocks of ``floor(M / E')`` or ``ceil(M / E')`` rows, so a
    particle keeps its member for the whole rollout for any ``M``. Particle-major row order
    puts each start observation's particles in different blocks. When ``E'`` divides ``M`` the
    blocks are evaluated as one batched matmul per layer with no gather; otherwise rows are
    scattered into ``E'`` blocks padded to ``ceil(M / E')`` rows (still one batched call).
    ``ts1`` applies the same blocks to a fresh random permutation of the rows at every step.

    Args:
        obs_dim: observation size ``O``.
        action_dim: encoded action size ``A``.
        config: architecture; see :class:`DeltaModelConfig`.
    """

    capabilities: ClassVar[frozenset[str]] = frozenset({DIFFERENTIABLE, PARTICLES, ENSEMBLE})
    propagations: ClassVar[tuple[str, ...]] = PROPAGATIONS

    def __init__(
        self, obs_dim: int, action_dim: int, config: DeltaModelConfig | None = None
    ) -> None:
        super().__init__()
        check_positive_int(obs_dim, "obs_dim")
        check_positive_int(action_dim, "action_dim")
        self.config = config if config is not None else DeltaModelConfig()
        cfg = self.config
        self.obs_dim, self.action_dim = int(obs_dim), int(action_dim)
        self.ensemble_size = cfg.ensemble_size
        self.coords = StateCoordinates(obs_dim, cfg.angle_dims, cfg.phasor_dims)
        in_dim = self.coords.feature_dim + action_dim
        out = 2 * obs_dim if cfg.probabilistic else obs_dim
        self.net = EnsembleMLP(
            cfg.ensemble_size, in_dim, out, cfg.hidden_size, cfg.num_layers, cfg.activation
        )
        self.input_norm = Normalizer(in_dim)
        self.output_norm = Normalizer(obs_dim)
        lo, hi = cfg.logvar_bounds
        self.min_logvar = nn.Parameter(torch.full((1, obs_dim), float(lo)))
        self.max_logvar = nn.Parameter(torch.full((1, obs_dim), float(hi)))
        self.register_buffer("elites", torch.arange(cfg.ensemble_size))
        self._propagation = cfg.propagation
        self.capabilities = self.capabilities_with(cfg.propagation)  # type: ignore[misc]
        self.compute_dtype = torch.float32

    @property
    def propagation(self) -> str:
        """The default mode of :meth:`step` (``config.propagation``)."""
        return self._propagation

    def capabilities_with(self, propagation: str) -> frozenset[str]:
        """``expectation`` is deterministic (no particles); ``ts_inf``/``ts1`` sample members
        (and Gaussian noise when probabilistic)."""
        if propagation == EXPECTATION or (
            self.ensemble_size == 1 and not self.config.probabilistic
        ):
            return frozenset({DIFFERENTIABLE, DETERMINISTIC, ENSEMBLE})
        return frozenset({DIFFERENTIABLE, PARTICLES, ENSEMBLE})

    def set_compute_dtype(self, dtype: torch.dtype) -> None:
        """Run the networks in ``dtype`` (e.g. ``torch.bfloat16``) for inference.

        Only no-grad calls (planning rollouts) use it; states stay in their own dtype (float32)
        so the ``state + delta`` accumulation keeps full precision, and training always runs in
        float32.
        """
        if dtype not in (torch.float32, torch.bfloat16, torch.float16):
            raise ValueError(f"compute dtype must be float32, bfloat16 or float16, got {dtype}")
        self.compute_dtype = dtype

    def init_kwargs(self) -> dict:
        """Constructor arguments (for checkpoints)."""
        return {"obs_dim": self.obs_dim, "action_dim": self.action_dim, "config": self.config}

    def _features(self, z: Tensor, action: Tensor) -> Tensor:
        """Network input ``(..., O [+ n_angles] + A)`` from model coordinates ``z (..., O)``."""
        return torch.cat([self.coords.features(z), action.to(z.dtype)], dim=-1)

    def _target(self, batch: TransitionBatch) -> tuple[Tensor, Tensor]:
        """Model coordinates of ``batch.obs`` and the (wrapped) delta to ``batch.next_obs``."""
        z = self.coords.to_model(batch.obs)
        return z, self.coords.wrap(self.coords.to_model(batch.next_obs) - z)

    def _advance(self, z: Tensor, delta: Tensor) -> Tensor:
        """Observation after adding ``delta (M, O)`` to ``z (M, O)``, both in model coordinates."""
        return self.coords.from_model(self.coords.wrap(z + delta))

    # ----------------------------------------------------------------- prediction
    @property
    def num_active(self) -> int:
        """Number of members used for prediction (the elites)."""
        return int(self.elites.shape[0])

    def _members_forward(self, inp: Tensor, members: Tensor | None) -> tuple[Tensor, Tensor | None]:
        """Normalised ``inp (E', N, I)`` -> normalised delta mean and log-variance ``(E', N, O)``."""
        if self.compute_dtype != inp.dtype and not torch.is_grad_enabled():
            out = self.net(inp.to(self.compute_dtype), members).to(inp.dtype)
        else:
            out = self.net(inp, members)
        if not self.config.probabilistic:
            return out, None
        mean, logvar = out.split(self.obs_dim, dim=-1)
        max_lv, min_lv = self.max_logvar.to(out.dtype), self.min_logvar.to(out.dtype)
        logvar = max_lv - F.softplus(max_lv - logvar)
        logvar = min_lv + F.softplus(logvar - min_lv)
        return mean, logvar

    def _member_blocks(self, inp: Tensor, elites: Tensor | None) -> tuple[Tensor, Tensor | None]:
        """Each row of ``inp (M, I)`` through its member ``(r * E') // M``: ``(M, O)`` mean and
        log-variance (see the class docstring), in one batched call."""
        m_rows, n_act = inp.shape[0], self.num_active
        if m_rows % n_act == 0:
            mean, logvar = self._members_forward(inp.view(n_act, m_rows // n_act, -1), elites)
            return mean.reshape(m_rows, -1), None if logvar is None else logvar.reshape(m_rows, -1)
        cap = -(-m_rows // n_act)
        rows = torch.arange(m_rows, device=inp.device)
        member = rows * n_act // m_rows
        first = (member * m_rows + n_act - 1) // n_act  # first row of each row's block
        slot = member * cap + rows - first
        padded = inp.new_zeros(n_act * cap, inp.shape[1]).index_copy(0, slot, inp)
        mean, logvar = self._members_forward(padded.view(n_act, cap, -1), elites)
        mean = mean.reshape(n_act * cap, -1)[slot]
        return mean, None if logvar is None else logvar.reshape(n_act * cap, -1)[slot]

    def _delta(self, inp: Tensor, generator: torch.Generator | None, propagation: str) -> Tensor:
        """Normalised inputs ``(M, I)`` -> sampled normalised delta ``(M, O)`` per propagation."""
        m_rows = inp.shape[0]
        n_act = self.num_active
        elites = self.elites if n_act < self.ensemble_size else None
        if propagation == EXPECTATION:
            mean, _ = self._members_forward(inp.unsqueeze(0).expand(n_act, -1, -1), elites)
            return mean.mean(0)
        if propagation not in PROPAGATIONS:
            raise ValueError(f"propagation must be one of {PROPAGATIONS}, got {propagation!r}")
        perm = None
        if propagation == "ts1" and n_act > 1:
            perm = torch.randperm(m_rows, generator=generator, device=inp.device)
            inp = inp[perm]
        mean, logvar = self._member_blocks(inp, elites)
        delta = mean
        if logvar is not None:
            noise = torch.randn(
                mean.shape, generator=generator, device=mean.device, dtype=mean.dtype
            )
            delta = mean + torch.exp(0.5 * logvar) * noise
        if perm is not None:
            delta = torch.empty_like(delta).index_copy_(0, perm, delta)
        return delta

    def step(
        self, state: ModelState, action: Tensor, generator: torch.Generator | None = None
    ) -> ModelState:
        """``state (M, O)``, ``action (M, A)`` -> next observation ``(M, O)`` (state's dtype)."""
        return self.step_with(state, action, generator, self._propagation)

    def step_with(
        self,
        state: ModelState,
        action: Tensor,
        generator: torch.Generator | None,
        propagation: str,
    ) -> ModelState:
        """:meth:`step` with ``propagation`` (``ts_inf``, ``ts1`` or ``expectation``)."""
        z = self.coords.to_model(state)
        inp = self.input_norm.normalize(self._features(z, action))
        delta = self._delta(inp, generator, propagation)
        return self._advance(z, self.output_norm.denormalize(delta))

    def predict(self, obs: Tensor, action: Tensor) -> tuple[Tensor, Tensor]:
        """Ensemble-moment prediction of the next observation.

        Args:
            obs: ``(B, O)``; action: ``(B, A)``.

        Returns:
            ``(mean (B, O), variance (B, O))`` over the active members (aleatoric + epistemic).
            With ``phasor_dims`` the variance of those dimensions is that of the Cartesian
            ``(A cos, A sin)`` components the model predicts, not of amplitude and phase.
        """
        self.check_obs(obs)
        z = self.coords.to_model(obs)
        inp = self.input_norm.normalize(self._features(z, action))
        n_act = self.num_active
        elites = self.elites if n_act < self.ensemble_size else None
        mean, logvar = self._members_forward(inp.unsqueeze(0).expand(n_act, -1, -1), elites)
        std = self.output_norm.std.to(obs.dtype)
        mean_delta = self.output_norm.denormalize(mean)
        var = mean_delta.var(0, unbiased=False)
        if logvar is not None:
            var = var + (logvar.exp() * std.square()).mean(0)
        return self._advance(z, mean_delta.mean(0)), var

    def member_disagreement(self, obs: Tensor, action: Tensor, normalised: bool = False) -> Tensor:
        """Max over members of the distance of each member's mean from the ensemble mean: ``(B,)``.

        Args:
            obs: ``(B, O)``; action: ``(B, A)``.
            normalised: measure the distance in the standardised delta units the members are
                trained in (every output dimension weighs alike, whatever its scale; what an
                exploration bonus needs on an env nobody tuned) instead of observation units
                (MOPO's penalty).
        """
        inp = self.input_norm.normalize(self._features(self.coords.to_model(obs), action))
        mean, _ = self._members_forward(
            inp.unsqueeze(0).expand(self.num_active, -1, -1), self.elites
        )
        if not normalised:
            mean = self.output_norm.denormalize(mean)
        return (mean - mean.mean(0, keepdim=True)).norm(dim=-1).amax(0)

    # ------------------------------------------------------------------- training
    def update_normalizers(self, batch: TransitionBatch) -> None:
        """Input stats from ``[obs, action]`` and output stats from ``next_obs - obs``."""
        z, delta = self._target(batch)
        self.input_norm.fit(self._features(z, batch.action))
        self.output_norm.fit(delta)

    def _normalised_pair(self, batch: TransitionBatch) -> tuple[Tensor, Tensor]:
        z, delta = self._target(batch)
        inp = self.input_norm.normalize(self._features(z, batch.action))
        return inp, self.output_norm.normalize(delta)

    def training_loss(self, batch: TransitionBatch) -> Tensor:
        """Per-member loss ``(E,)`` on fields with leading dims ``(E, B)``: NLL (Gaussian) or MSE."""
        inp, target = self._normalised_pair(batch)
        mean, logvar = self._members_forward(inp, None)
        if logvar is None:
            return (mean - target).square().mean(dim=(1, 2))
        nll = ((mean - target).square() * torch.exp(-logvar) + logvar).mean(dim=(1, 2))
        bound_penalty = 0.01 * (self.max_logvar.sum() - self.min_logvar.sum())
        return nll + bound_penalty / self.ensemble_size

    def validation_score(self, batch: TransitionBatch) -> Tensor:
        """Per-member MSE ``(E,)`` of the normalised delta on ``N`` held-out rows."""
        inp, target = self._normalised_pair(batch)
        mean, _ = self._members_forward(inp.unsqueeze(0).expand(self.ensemble_size, -1, -1), None)
        return (mean - target).square().mean(dim=(1, 2))

    def on_fit_end(self, validation_scores: Tensor) -> None:
        """Keep the ``num_elites`` members with the lowest held-out error for prediction."""
        k = self.config.num_elites or self.ensemble_size
        self.elites = torch.argsort(validation_scores)[:k].sort().values.to(self.elites.device)
