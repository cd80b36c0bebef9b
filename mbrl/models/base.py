"""The one batched state-space interface every dynamics model offers and every planner uses.

Row layout convention (shared by models, the rollout engine and planners): a model state for
``B`` start observations and ``P`` particles has ``M = P * B`` rows ordered *particle-major*:
row ``p * B + b`` is particle ``p`` of start ``b``. Actions for a step are tiled the same way
(``actions (B, A) -> (P * B, A)``), and per-row results fold back with ``.view(P, B)``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from mbrl.data.buffer import TransitionBatch

ModelState = Any
"""A model's rollout state: a tensor ``(M, S)`` or a small dataclass of tensors with ``M`` rows."""

DIFFERENTIABLE = "differentiable"
"""Capability: ``step`` is differentiable w.r.t. state and action (iLQR, GP-MPC)."""
PARTICLES = "particles"
"""Capability: ``step`` samples, so several particles per start state are meaningful."""
DETERMINISTIC = "deterministic"
"""Capability: ``step`` is deterministic (MCTS may cache transitions)."""
ENSEMBLE = "ensemble"
"""Capability: the model is an ensemble of members: ``num_active`` (members used for
prediction) and ``member_disagreement(obs (B, O), action (B, A)) -> (B,)`` (MOPO's penalty)."""
GAUSSIAN_BELIEF = "gaussian_belief"
"""Capability: ``propagate(state: GaussianState, action (M, A), method) -> (next GaussianState,
cov[s, s'] (M, O, O))`` pushes Gaussian beliefs through the dynamics (GP-MPC)."""
CONDITIONING = "conditioning"
"""Capability: ``add_data(obs (k, O), action (k, A), next_obs (k, O))`` conditions the fitted
model on new transitions without refitting it (a GP's posterior update with its
hyperparameters kept), cheaply enough to run after every env step."""


def require_gaussian_belief(model: object, planner: str) -> None:
    """Raise ``TypeError`` unless ``model`` is a :class:`DynamicsModel` declaring
    :data:`GAUSSIAN_BELIEF` (the belief-propagating planners: GP-MPC, PILCO)."""
    caps = model.capabilities if isinstance(model, DynamicsModel) else frozenset()
    if GAUSSIAN_BELIEF not in caps:
        raise TypeError(
            f"{planner} needs a model with Gaussian belief propagation (the "
            f"{GAUSSIAN_BELIEF!r} capability, e.g. --model gp); {type(model).__name__} has "
            f"{sorted(caps)}"
        )


EXPECTATION = "expectation"
"""The propagation mode every model supports: the mean prediction (deterministic; for
ensembles the member mean, for GPs the posterior mean)."""


class DynamicsModel(nn.Module, ABC):
    """Base class of all dynamics models.

    Subclasses set ``obs_dim``, ``action_dim`` and ``capabilities`` and implement
    :meth:`initial_state`, :meth:`step` and :meth:`observe`. Models that learn from a
    :class:`~mbrl.data.TransitionBuffer` also implement the training hooks used by
    :func:`mbrl.models.fit`.

    **Propagation.** A model with several ways of moving particles (ensembles: ``ts_inf``,
    ``ts1``, ``expectation``; GPs: ``sample``, belief propagation, ``expectation``) lists them in
    ``propagations``, steps with its construction-time default ``propagation``, and implements
    :meth:`step_with` (and :meth:`initial_state_with` when the state type depends on the mode).
    :meth:`propagating` gives a view stepping with another mode, sharing every parameter;
    nothing ever switches the model itself. Models with one behaviour keep the defaults below
    (``propagations == ("expectation",)``: their one step is their mean).

    Attributes:
        obs_dim: observation size ``O``.
        action_dim: encoded action size ``A``.
        capabilities: the optional capabilities this model declares (see module constants).
        propagations: the modes :meth:`propagating` accepts.
    """

    capabilities: ClassVar[frozenset[str]] = frozenset()
    propagations: ClassVar[tuple[str, ...]] = (EXPECTATION,)
    obs_dim: int
    action_dim: int

    @property
    def propagation(self) -> str:
        """The mode :meth:`step` uses (fixed at construction)."""
        return EXPECTATION

    @property
    def min_fit_transitions(self) -> int:
        """The fewest transitions :func:`mbrl.models.fit` accepts (the run's seed phase
        collects at least this many); 1 unless a model needs more (a GP: its input size)."""
        return 1

    def propagating(self, mode: str | None) -> DynamicsModel:
        """This model stepping with propagation ``mode``, without changing the model.

        ``None`` or the model's own ``propagation`` return the model itself; another supported
        mode returns a :class:`PropagationView` that shares parameters, buffers and every other
        attribute with the model.

        Raises:
            ValueError: ``mode`` is not in ``propagations`` (the message lists them).
        """
        if mode is None or mode == self.propagation:
            return self
        if mode not in self.propagations:
            raise ValueError(
                f"{type(self).__name__} supports propagation modes {self.propagations}, "
                f"got {mode!r}"
            )
        return PropagationView(self, mode)

    def capabilities_with(self, propagation: str) -> frozenset[str]:
        """The capabilities of the model stepping with ``propagation`` (default: its own)."""
        return self.capabilities

    def initial_state_with(
        self,
        obs: Tensor,
        n_particles: int,
        generator: torch.Generator | None,
        propagation: str,
    ) -> ModelState:
        """:meth:`initial_state` for a rollout with ``propagation`` (default: the same)."""
        return self.initial_state(obs, n_particles, generator)

    def step_with(
        self,
        state: ModelState,
        action: Tensor,
        generator: torch.Generator | None,
        propagation: str,
    ) -> ModelState:
        """:meth:`step` with ``propagation`` (one of ``propagations``).

        Models with several modes override this and make :meth:`step` call it with their
        default; the base implementation serves single-behaviour models.
        """
        if propagation != self.propagation:
            raise ValueError(
                f"{type(self).__name__} supports propagation modes {self.propagations}, "
                f"got {propagation!r}"
            )
        return self.step(state, action, generator)

    @property
    def device(self) -> torch.device:
        """Device of the model's parameters/buffers (cpu for a model with neither)."""
        for t in self.parameters():
            return t.device
        for t in self.buffers():
            return t.device
        return torch.device("cpu")

    def check_obs(self, obs: Tensor, name: str = "obs") -> None:
        """Raise ``ValueError`` unless ``obs`` is ``(B, obs_dim)`` and finite."""
        if obs.ndim != 2 or obs.shape[1] != self.obs_dim:
            raise ValueError(
                f"{name} must have shape (B, {self.obs_dim}) for {type(self).__name__}, "
                f"got {tuple(obs.shape)}"
            )
        if not bool(torch.isfinite(obs).all()):
            raise ValueError(
                f"{name} contains NaN or inf; {type(self).__name__} cannot roll it out"
            )

    def initial_state(
        self, obs: Tensor, n_particles: int = 1, generator: torch.Generator | None = None
    ) -> ModelState:
        """State for ``obs (B, O)`` with ``n_particles`` particles each: ``M = P * B`` rows.

        The default tiles the observation (observation-space models). ``obs`` is trusted:
        boundary code (agents, ``plan``, :func:`mbrl.rollout.rollout`) validates it once with
        :meth:`check_obs`, so inner loops (CEM iterations) pay no check or host sync here.
        """
        return obs.repeat(n_particles, 1)

    @abstractmethod
    def step(
        self, state: ModelState, action: Tensor, generator: torch.Generator | None = None
    ) -> ModelState:
        """One transition of all ``M`` rows: ``action (M, A)``; noise drawn from ``generator``."""

    def observe(self, state: ModelState) -> Tensor:
        """What reward/termination functions read: ``(M, O)`` (the state itself by default)."""
        return state

    # Training hooks (learned models). ``E`` is ``ensemble_size``; 1 for single networks.
    ensemble_size: int = 1

    def update_normalizers(self, batch: TransitionBatch) -> None:
        """Refresh input/output statistics from training data ``batch (N, ...)``."""

    def training_loss(self, batch: TransitionBatch) -> Tensor:
        """Per-member training loss ``(E,)`` on a batch whose fields have leading dims ``(E, B)``."""
        raise NotImplementedError(f"{type(self).__name__} is not trainable from transitions")

    def validation_score(self, batch: TransitionBatch) -> Tensor:
        """Per-member held-out error ``(E,)`` (lower is better) on a batch of ``N`` rows."""
        raise NotImplementedError(f"{type(self).__name__} is not trainable from transitions")

    def on_fit_end(self, validation_scores: Tensor) -> None:
        """Called after fitting with the final per-member scores ``(E,)`` (e.g. to pick elites)."""


class PropagationView(DynamicsModel):
    """``model`` stepping with propagation ``mode``: what :meth:`DynamicsModel.propagating`
    returns.

    The model is a submodule (parameters, buffers and devices are shared, nothing is copied);
    every attribute the view does not define (``num_active``, ``member_disagreement``,
    ``predict``, ``propagate``, ...) is the model's. ``initial_state`` and ``step`` call the
    model's :meth:`~DynamicsModel.initial_state_with` / :meth:`~DynamicsModel.step_with` with
    ``mode``; the model's own default is never touched.

    Args:
        model: the model viewed.
        mode: one of ``model.propagations``.
    """

    def __init__(self, model: DynamicsModel, mode: str) -> None:
        super().__init__()
        if mode not in model.propagations:
            raise ValueError(
                f"{type(model).__name__} supports propagation modes {model.propagations}, "
                f"got {mode!r}"
            )
        self.base = model
        self._mode = mode
        self.obs_dim, self.action_dim = model.obs_dim, model.action_dim
        self.ensemble_size = model.ensemble_size
        self.capabilities = model.capabilities_with(mode)  # type: ignore[misc]
        self.propagations = model.propagations  # type: ignore[misc]

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            base = self.__dict__.get("_modules", {}).get("base")
            if base is None:
                raise
            return getattr(base, name)

    @property
    def propagation(self) -> str:
        """The mode this view steps with."""
        return self._mode

    def propagating(self, mode: str | None) -> DynamicsModel:
        """``None``: this view; otherwise the model's :meth:`~DynamicsModel.propagating`."""
        return self if mode is None else self.base.propagating(mode)

    def check_obs(self, obs: Tensor, name: str = "obs") -> None:
        """The model's check."""
        self.base.check_obs(obs, name)

    def initial_state(
        self, obs: Tensor, n_particles: int = 1, generator: torch.Generator | None = None
    ) -> ModelState:
        """The model's initial state for ``obs (B, O)`` under this view's mode."""
        return self.base.initial_state_with(obs, n_particles, generator, self._mode)

    def step(
        self, state: ModelState, action: Tensor, generator: torch.Generator | None = None
    ) -> ModelState:
        """The model's step of ``M`` rows, ``action (M, A)``, with this view's mode."""
        return self.base.step_with(state, action, generator, self._mode)

    def observe(self, state: ModelState) -> Tensor:
        """The model's observation of ``state``: ``(M, O)``."""
        return self.base.observe(state)

    def update_normalizers(self, batch: TransitionBatch) -> None:
        """The model's hook."""
        self.base.update_normalizers(batch)

    def training_loss(self, batch: TransitionBatch) -> Tensor:
        """The model's hook."""
        return self.base.training_loss(batch)

    def validation_score(self, batch: TransitionBatch) -> Tensor:
        """The model's hook."""
        return self.base.validation_score(batch)

    def on_fit_end(self, validation_scores: Tensor) -> None:
        """The model's hook."""
        self.base.on_fit_end(validation_scores)
