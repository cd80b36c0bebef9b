"""Gaussian-process dynamics (gpytorch): ``next_obs = obs + f(obs, action)``, one GP per output.

:class:`GPDynamics` models the normalised state delta with ``O`` independent GPs (a batched
gpytorch model) over the normalised inputs ``[obs, action]`` (``D = O + A``), with ARD
squared-exponential or Matern kernels and a learned noise variance per output. The prior
mean is zero or (``GPConfig.mean="linear"``) a linear function of the inputs fitted before
the hyperparameters, the kernel part modelling its residual (linear extrapolation).

Fitting (``fit_transitions``, called by :func:`mbrl.models.fit`):

* ``N <= sparse_threshold``: hyperparameters by the exact marginal likelihood (L-BFGS-B);
* ``N > sparse_threshold``: the collapsed sparse bound on a random subset with fixed
  inducing inputs, early-stopped on held-out points (default; or the gpytorch SVGP,
  ``sparse_method="svgp"``), so fitting time stays bounded as data grows (see
  :mod:`mbrl.models.gp.sparse`; ~7 CPU-seconds at 16k Pendulum transitions).

Prediction uses a :class:`~mbrl.models.gp.core.GPPosterior`: the exact posterior while
``N <= num_inducing``, otherwise the optimal sparse posterior over all data with
``num_inducing`` inducing points (greedy-variance or k-means selection, or the SVGP's learned
ones). This keeps planning cost ``O(num_inducing^2)`` per row and step, independent of the
data size.

Rollouts (the :mod:`mbrl.rollout` engine and planners):

* tensor states ``(M, O)`` (``propagation="sample"``, used by CEM/MPPI/shooting): every
  ``step`` draws each row's next observation from the GP's marginal predictive distribution,
  independently per row and per step (the standard "sampling" propagation for shooting;
  it ignores the posterior correlation between steps of one trajectory);
* tensor states with ``propagation="expectation"``: the posterior mean, deterministic and
  differentiable (what iLQR and other gradient planners plan through, via
  ``model.propagating("expectation")``, whatever the configured propagation);
* :class:`~mbrl.models.gp.moments.GaussianState` states (``moment_matching`` or
  ``linearization``): the belief ``N(mean (M, O), cov (M, O, O))`` is propagated in closed form,
  ``observe`` returns its mean. :meth:`GPDynamics.propagate` also returns ``cov[s_t, s_t+1]``
  (the GP-MPC planner takes reward expectations over the joint).

Coordinates (``GPConfig.angle_dims`` / ``phasor_dims``, the delta models'
:class:`~mbrl.models.coordinates.StateCoordinates`): the GPs learn the delta of the *model
coordinates* ``z`` (phasors as Cartesian pairs, angles wrapped) from inputs
``[features(z), action]`` (angles as ``sin``, ``cos``); tensor states stay observations,
Gaussian beliefs live in ``z`` (:meth:`GPDynamics.to_model` / :meth:`GPDynamics.from_model`).
:meth:`GPDynamics.propagate` also takes a Gaussian action correlated with the state (a
moment-matched policy, :mod:`mbrl.planners.pilco`).

Cheap update: :meth:`GPDynamics.add_data` conditions on new transitions with fixed
hyperparameters: a block update of the Cholesky factor (exact posterior) or added whitened
sufficient statistics (sparse posterior), no optimisation.

Bad input: fewer transitions than inputs ``D`` or non-finite values raise ``ValueError``
before anything changes; a fit that does not converge warns (:class:`GPFitWarning`) and keeps
the previous model (the first fit, having none, keeps the unconverged one and says so); a
numerical failure warns and keeps the previous model, or raises :class:`GPFitError` when
there is none.
"""

from __future__ import annotations

import copy
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from mbrl.data.buffer import TransitionBatch
from mbrl.models.base import (
    CONDITIONING,
    DETERMINISTIC,
    DIFFERENTIABLE,
    EXPECTATION,
    GAUSSIAN_BELIEF,
    PARTICLES,
    DynamicsModel,
    ModelState,
)
from mbrl.models.checkpoint import register_checkpointable
from mbrl.models.configs import register_config
from mbrl.models.coordinates import StateCoordinates
from mbrl.models.gp.core import (
    GPPosterior,
    check_kernel,
    exact_posterior,
    fit_linear_mean,
    greedy_variance,
    kmeans,
    predict_latent,
    predict_with_jacobian,
    sparse_posterior,
    sparse_statistics,
)
from mbrl.models.gp.exact import (
    FitFailure,
    GPHyperparameters,
    HyperFitResult,
    add_points_exact,
    fit_exact_hyperparameters,
)
from mbrl.models.gp.moments import GaussianState, feature_moments, moment_match_gain
from mbrl.models.gp.sparse import fit_collapsed_hyperparameters, fit_sparse_hyperparameters
from mbrl.models.normalization import Normalizer
from mbrl.models.registry import register_model
from mbrl.models.training import FitConfig, FitReport
from mbrl.util.configs import config_from_options
from mbrl.validation import check_positive_int

PROPAGATIONS = ("sample", "moment_matching", "linearization", EXPECTATION)
BELIEF_PROPAGATIONS = ("moment_matching", "linearization")
MEANS = ("zero", "linear")
SPARSE_METHODS = ("collapsed", "svgp")
INDUCING_INITS = ("kmeans", "greedy")
GAUSSIAN_METHODS = ("moment_matching", "linearization", "mean")


class GPFitWarning(UserWarning):
    """A GP fit did not converge or failed numerically; the previous model was kept."""


class GPFitError(RuntimeError):
    """A GP fit failed numerically and there is no previous model to fall back on."""


@register_config
@dataclass(frozen=True)
class GPConfig:
    """Kernel, fitting and propagation settings of :class:`GPDynamics`.

    Attributes:
        kernel: ``rbf`` (squared exponential, ARD; default), ``matern52`` or ``matern32``.
        propagation: what :meth:`GPDynamics.initial_state` starts and ``step`` does in the
            rollout engine: ``sample`` (tensor particles, a fresh posterior sample per row and
            step; default), ``expectation`` (tensor states, the posterior mean),
            ``moment_matching`` (exact for ``rbf``) or ``linearization`` (Gaussian beliefs, see
            :class:`~mbrl.models.gp.moments.GaussianState`). Any of them is also available
            as a view through :meth:`GPDynamics.propagating`.
        predict_noise: predictions of the next observation include the learned noise
            variance (default True); False predicts the latent function only.
        sparse_threshold: above this many transitions the hyperparameters are fitted by a
            sparse method (``sparse_method``) instead of the exact marginal likelihood
            (default 1000: exact fits cost ``O(N^3)`` per iteration, ~0.5 s at N = 1000 on
            one CPU core).
        num_inducing: inducing points of the sparse posterior used for prediction whenever
            the data has more points (default 256), and of the SVGP fit.
        inducing_init: how those inducing inputs are chosen from the data: ``greedy``
            (default; greedy conditional variance with the fitted hyperparameters, per output;
            Burt et al. 2020: on 16k Pendulum transitions ~30 % lower held-out error than
            k-means centres, see ``scripts/bench_gp_fit.py``) or ``kmeans`` (k-means++
            seeding, then Lloyd iterations; hyperparameter-free).
        max_iter: L-BFGS-B iterations of the exact and the collapsed fits before they count
            as not converged (default 200).
        gtol: L-BFGS-B projected-gradient tolerance (default 1e-5).
        sparse_method: ``collapsed`` (default; Titsias' collapsed bound on ``sparse_subset``
            points with fixed inducing inputs and early stopping, see
            :mod:`mbrl.models.gp.sparse`) or ``svgp`` (gpytorch SVGP, ``sparse_steps`` Adam
            minibatch steps).
        sparse_subset: points the collapsed bound is fitted on (default 1536; a random
            subset: the hyperparameters need far fewer points than the posterior, which is
            conditioned on all of them).
        sparse_fit_inducing: fixed inducing inputs of the collapsed fit (default 128; its
            cost is ``O(sparse_subset * sparse_fit_inducing^2)`` per evaluation).
        sparse_holdout: random points held out of the collapsed fit for early stopping on
            their predictive log-loss (default 500; 0 disables early stopping).
        sparse_init_subset: points of an exact marginal-likelihood fit that starts the
            collapsed fit when there is no previous fit to warm-start from (default 256; 0:
            start from the defaults). It keeps the collapsed bound out of its "all noise"
            optimum.
        sparse_patience: held-out checks (one per 5 L-BFGS-B iterations) without improvement
            before the collapsed fit stops (default 2).
        sparse_steps: Adam steps of the SVGP fit (default 400; fixed, so time is bounded).
        sparse_batch_size: SVGP minibatch rows (default 512).
        sparse_lr: SVGP Adam learning rate (default 0.02).
        lengthscale_bounds: ``(min, max)`` of the ARD lengthscales in normalised input units
            (default ``(1e-2, 1e3)``).
        outputscale_bounds: ``(min, max)`` of the signal variance in normalised output units
            (default ``(1e-4, 100)``: excludes the degenerate huge-signal/huge-lengthscale
            optimum).
        noise_bounds: ``(min, max)`` of the noise variance in normalised output units
            (default ``(1e-5, 10)``: a noise standard deviation of at least 0.3% of the
            target scale keeps the kernel matrix well conditioned).
        warm_start: start hyperparameters from the previous fit (default True).
        mean: prior mean of the GPs: ``zero`` (default; far from the data predictions revert to
            the mean delta) or ``linear`` (a per-output linear function ``W x + b`` of the
            normalised inputs, fitted by ridge least squares on the training data before the
            hyperparameters; the kernel part models the residual, so predictions extrapolate
            linearly -- right for (near-)linear dynamics such as beam steering). Predictions,
            samples, Jacobians and every belief propagation include it (moment matching
            exactly). ``W`` and ``b`` are buffers saved in checkpoints.
        mean_ridge: ridge penalty of the linear mean, per data point in normalised units
            (default 1e-4: negligible for well-spread inputs, keeps collinear ones finite).
        mean_robust: fit the linear mean by robust IRLS (Huber, then Tukey bisquare) instead
            of plain ridge least squares (default False), so that gross outliers -- e.g.
            readings clipped at a detector's range -- do not bend it; the kernel part still
            sees their residuals. Needs clearly more transitions than inputs (the residual
            scale comes from their median).
        angle_dims: observation dimensions that are angles in ``[-pi, pi)`` (default none), as
            for the delta models (:class:`~mbrl.models.coordinates.StateCoordinates`): the GPs
            see each as ``(sin, cos)`` inputs and learn its wrapped delta; predictions are
            wrapped back. Moment matching propagates beliefs through the ``(sin, cos)``
            features exactly (trigonometric moments, as PILCO).
        hyper_prior: fit the exact GP's hyperparameters to their posterior density under a
            weak log-normal prior (default True; :data:`~mbrl.models.gp.exact.PRIOR`) instead
            of the marginal likelihood alone. On 10-40 transitions the fit then always
            converges (without it 2-3 of 5 AWAKE and spill fits on 20-40 points hit
            ``max_iter``) in half the iterations, and the held-out log-loss is several times
            lower (e.g. Pendulum at 10 points: 41 -> -0.5 nats per dimension; the error of
            the mean moves within +-20 %); with hundreds of points the prior's pull fades.
            See docs/benchmarks.md. The sparse fits (above ``sparse_threshold``) use no prior.
        phasor_dims: ``(amplitude, phase)`` observation index pairs (default none), e.g. the
            ripple phasors of ``mbrl/SpillControl-v0``: learnt as Cartesian
            ``(A cos, A sin)`` components, where phasors add linearly and a near-zero amplitude
            has no wild phase. Gaussian beliefs (:class:`GaussianState`) then live in these
            *model coordinates* (see :meth:`GPDynamics.propagate`).
    """

    kernel: str = "rbf"
    propagation: str = "sample"
    predict_noise: bool = True
    sparse_threshold: int = 1000
    num_inducing: int = 256
    max_iter: int = 200
    gtol: float = 1e-5
    inducing_init: str = "greedy"
    sparse_method: str = "collapsed"
    sparse_subset: int = 1536
    sparse_fit_inducing: int = 128
    sparse_holdout: int = 500
    sparse_init_subset: int = 256
    sparse_patience: int = 2
    sparse_steps: int = 400
    sparse_batch_size: int = 512
    sparse_lr: float = 0.02
    lengthscale_bounds: tuple[float, float] = (1e-2, 1e3)
    outputscale_bounds: tuple[float, float] = (1e-4, 1e2)
    noise_bounds: tuple[float, float] = (1e-5, 10.0)
    warm_start: bool = True
    mean: str = "zero"
    mean_ridge: float = 1e-4
    mean_robust: bool = False
    angle_dims: tuple[int, ...] = ()
    phasor_dims: tuple[tuple[int, int], ...] = ()
    hyper_prior: bool = True

    def __post_init__(self) -> None:
        check_kernel(self.kernel)
        # Tuples arrive as lists from JSON / CLI options / checkpoints; keep the config hashable.
        try:
            object.__setattr__(self, "angle_dims", tuple(self.angle_dims))
            object.__setattr__(self, "phasor_dims", tuple(tuple(p) for p in self.phasor_dims))
        except TypeError as err:
            raise TypeError(
                f"angle_dims must be a sequence of ints and phasor_dims a sequence of "
                f"(amplitude, phase) index pairs, got {self.angle_dims!r}, {self.phasor_dims!r}"
            ) from err
        if self.mean not in MEANS:
            raise ValueError(f"mean must be one of {MEANS}, got {self.mean!r}")
        if not (
            isinstance(self.mean_ridge, int | float)
            and self.mean_ridge >= 0
            and math.isfinite(self.mean_ridge)
        ):
            raise ValueError(f"mean_ridge must be a finite number >= 0, got {self.mean_ridge!r}")
        for name in ("mean_robust", "hyper_prior"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be a bool, got {getattr(self, name)!r}")
        if self.propagation not in PROPAGATIONS:
            raise ValueError(f"propagation must be one of {PROPAGATIONS}, got {self.propagation!r}")
        if self.propagation == "moment_matching" and self.kernel != "rbf":
            raise ValueError(
                f"propagation='moment_matching' needs kernel='rbf' (exact moments exist only for "
                f"the squared-exponential kernel), got kernel={self.kernel!r}"
            )
        for name in (
            "sparse_threshold",
            "num_inducing",
            "max_iter",
            "sparse_steps",
            "sparse_batch_size",
            "sparse_subset",
            "sparse_fit_inducing",
            "sparse_patience",
        ):
            check_positive_int(getattr(self, name), name)
        check_positive_int(self.sparse_holdout, "sparse_holdout", minimum=0)
        check_positive_int(self.sparse_init_subset, "sparse_init_subset", minimum=0)
        if self.sparse_method not in SPARSE_METHODS:
            raise ValueError(
                f"sparse_method must be one of {SPARSE_METHODS}, got {self.sparse_method!r}"
            )
        if self.inducing_init not in INDUCING_INITS:
            raise ValueError(
                f"inducing_init must be one of {INDUCING_INITS}, got {self.inducing_init!r}"
            )
        for name in ("lengthscale_bounds", "outputscale_bounds", "noise_bounds"):
            value = getattr(self, name)
            if not (
                isinstance(value, tuple | list)
                and len(value) == 2
                and all(isinstance(v, int | float) and math.isfinite(v) for v in value)
                and 0 < value[0] < value[1]
            ):
                raise ValueError(f"{name} must be (min, max) with 0 < min < max, got {value!r}")
        for name in ("gtol", "sparse_lr"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and value > 0 and math.isfinite(value)):
                raise ValueError(f"{name} must be a finite number > 0, got {value!r}")


@dataclass(frozen=True)
class GPFitInfo:
    """What the last :meth:`GPDynamics.fit_data` call did.

    Attributes:
        num_points: training transitions ``N``.
        hyper_fit: ``exact`` (marginal likelihood) or ``sparse`` (collapsed bound or SVGP
            ELBO, ``GPConfig.sparse_method``).
        posterior: ``exact`` or ``sparse`` (the prediction posterior's kind).
        converged: the hyperparameter fit converged.
        accepted: the fit replaced the model (False: the previous model was kept).
        message: optimiser message or failure reason.
        iterations: optimiser iterations / gradient steps.
        seconds: wall time.
    """

    num_points: int
    hyper_fit: str
    posterior: str
    converged: bool
    accepted: bool
    message: str
    iterations: int
    seconds: float


_DTYPE = torch.float64  # GP algebra runs in double precision (Cholesky of kernel matrices)


def _check_data(
    obs: Tensor, action: Tensor, next_obs: Tensor, obs_dim: int, action_dim: int
) -> None:
    n = obs.shape[0] if obs.ndim == 2 else -1
    for name, value, width in (
        ("obs", obs, obs_dim),
        ("action", action, action_dim),
        ("next_obs", next_obs, obs_dim),
    ):
        if value.ndim != 2 or value.shape[1] != width or value.shape[0] != n:
            raise ValueError(
                f"{name} must have shape (N, {width}) with the same N as obs, got {tuple(value.shape)}"
            )
        if not bool(torch.isfinite(value).all()):
            bad = int((~torch.isfinite(value)).sum())
            raise ValueError(
                f"{name} contains {bad} non-finite value(s) (NaN or inf); refusing to fit the GP"
            )


@register_checkpointable
class GPDynamics(DynamicsModel):
    """GP dynamics model: ``O`` independent GPs on ``[obs, action] -> next_obs - obs``.

    ``step(state (M, O), action (M, A)) -> (M, O)`` samples (or, with ``expectation``, steps
    the posterior mean); ``step(GaussianState, action)`` propagates a Gaussian belief
    (``mean (M, O)``, ``cov (M, O, O)``). See the module docstring for fitting and propagation.

    Args:
        obs_dim: observation size ``O``.
        action_dim: encoded action size ``A``.
        config: see :class:`GPConfig`.
        fitted: shapes of the fitted data buffers (``{"posterior": "exact", "points": N}`` or
            ``{"posterior": "sparse", "points": Z}``) -- set by checkpoints so the rebuilt model
            accepts the saved buffers; ``None`` builds an unfitted model.

    Attributes:
        last_fit: :class:`GPFitInfo` of the last fit (``None`` before).
    """

    capabilities: ClassVar[frozenset[str]] = frozenset(
        {DIFFERENTIABLE, PARTICLES, GAUSSIAN_BELIEF, CONDITIONING}
    )
    propagations: ClassVar[tuple[str, ...]] = PROPAGATIONS

    def __init__(
        self,
        obs_dim: int,
        action_dim: int,
        config: GPConfig | None = None,
        fitted: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        check_positive_int(obs_dim, "obs_dim")
        check_positive_int(action_dim, "action_dim")
        if config is not None and not isinstance(config, GPConfig):
            raise TypeError(f"config must be a GPConfig, got {type(config).__name__}")
        self.config = config if config is not None else GPConfig()
        self.capabilities = self.capabilities_with(self.config.propagation)  # type: ignore[misc]
        self.obs_dim, self.action_dim = int(obs_dim), int(action_dim)
        self.coords = StateCoordinates(
            self.obs_dim, self.config.angle_dims, self.config.phasor_dims
        )
        # The index buffers follow from the config (saved in init_kwargs): not in the
        # state_dict, so checkpoints of models without coordinates keep loading.
        for name, buf in list(self.coords.named_buffers(recurse=False)):
            self.coords.register_buffer(name, buf, persistent=False)
        self.input_dim = self.coords.feature_dim + self.action_dim
        self._feature_order = self._input_feature_order()
        self.hyper = GPHyperparameters(
            self.config.kernel,
            self.obs_dim,
            self.input_dim,
            self.config.lengthscale_bounds,
            self.config.outputscale_bounds,
            self.config.noise_bounds,
        ).to(_DTYPE)
        self.input_norm = Normalizer(self.input_dim)
        self.output_norm = Normalizer(self.obs_dim)
        self._kind: str | None = None
        self.register_buffer("num_data", torch.zeros((), dtype=torch.long))
        for name in ("train_x", "train_y", "inducing", "stat_a", "stat_b"):
            self.register_buffer(name, None)
        linear = self.config.mean == "linear"
        o, d = self.obs_dim, self.input_dim
        # Linear prior mean W x + b in normalised units (None: zero mean).
        self.register_buffer("mean_weight", torch.zeros(o, d, dtype=_DTYPE) if linear else None)
        self.register_buffer("mean_bias", torch.zeros(o, dtype=_DTYPE) if linear else None)
        if fitted is not None:
            self._allocate(fitted)
        self._post: GPPosterior | None = None
        self.last_fit: GPFitInfo | None = None
        self.register_load_state_dict_post_hook(lambda module, _keys: module._invalidate())

    # ------------------------------------------------------------------ state / checkpoints
    def _allocate(self, fitted: dict[str, Any]) -> None:
        kind, n = fitted.get("posterior"), fitted.get("points")
        if kind not in ("exact", "sparse") or not isinstance(n, int) or n < 1:
            raise ValueError(
                f"fitted must be {{'posterior': 'exact' | 'sparse', 'points': int >= 1}}, got {fitted!r}"
            )
        o, d = self.obs_dim, self.input_dim
        if kind == "exact":
            self._set_exact(torch.zeros(n, d, dtype=_DTYPE), torch.zeros(o, n, dtype=_DTYPE))
        else:
            self._set_sparse(
                torch.zeros(o, n, d, dtype=_DTYPE),
                torch.zeros(o, n, n, dtype=_DTYPE),
                torch.zeros(o, n, dtype=_DTYPE),
            )

    @property
    def min_fit_transitions(self) -> int:
        """The GP input size ``D`` (observation features + action): fewer points cannot fit
        its hyperparameters."""
        return self.input_dim

    def _set_exact(self, x: Tensor, y: Tensor) -> None:
        self._kind = "exact"
        self.train_x, self.train_y = x, y
        self.inducing = self.stat_a = self.stat_b = None

    def _set_sparse(self, inducing: Tensor, stat_a: Tensor, stat_b: Tensor) -> None:
        self._kind = "sparse"
        self.inducing, self.stat_a, self.stat_b = inducing, stat_a, stat_b
        self.train_x = self.train_y = None

    def init_kwargs(self) -> dict[str, Any]:
        """Constructor arguments (for checkpoints), including the fitted buffer shapes."""
        fitted = None
        if self._kind == "exact":
            fitted = {"posterior": "exact", "points": int(self.train_x.shape[0])}
        elif self._kind == "sparse":
            fitted = {"posterior": "sparse", "points": int(self.inducing.shape[1])}
        return {
            "obs_dim": self.obs_dim,
            "action_dim": self.action_dim,
            "config": self.config,
            "fitted": fitted,
        }

    def _invalidate(self) -> None:
        self._post = None

    def _apply(self, fn: Callable[[Tensor], Tensor], recurse: bool = True) -> GPDynamics:
        # Device/dtype moves invalidate the cached posterior (rebuilt on first use).
        self._post = None
        return super()._apply(fn, recurse)

    @property
    def is_fitted(self) -> bool:
        """Whether the model holds a fitted posterior."""
        return self._kind is not None

    @property
    def posterior(self) -> GPPosterior:
        """The prediction posterior (computed from the buffers on first use after a change).

        Raises:
            RuntimeError: before the first successful fit.
        """
        if self._kind is None:
            raise RuntimeError(
                "GPDynamics has not been fitted yet: call mbrl.models.fit(model, data) "
                "(or model.fit_data) before predicting"
            )
        if self._post is None:
            self._post = self._build_posterior(self.hyper)
        return self._post

    def _build_posterior(self, hyper: GPHyperparameters) -> GPPosterior:
        ell, sf2, s2 = (t.to(self.device) for t in hyper.values())
        if self._kind == "exact":
            post = exact_posterior(self.config.kernel, self.train_x, self.train_y, ell, sf2, s2)
        else:
            post = sparse_posterior(
                self.config.kernel, self.inducing, self.stat_a, self.stat_b, ell, sf2, s2
            )
        return post.with_mean(self.mean_weight, self.mean_bias)

    # ------------------------------------------------------------------ normalisation
    def _stats(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """``(in_mean (D,), in_std (D,), out_mean (O,), out_std (O,))`` in float64."""
        return (
            self.input_norm.mean.to(_DTYPE),
            self.input_norm.std.to(_DTYPE),
            self.output_norm.mean.to(_DTYPE),
            self.output_norm.std.to(_DTYPE),
        )

    def _input_feature_order(self) -> Tensor:
        """Positions in ``[z (O), a (A), sin z_angles (k), cos z_angles (k)]`` of the GP's
        input features ``[coords.features(z), a]`` (for :func:`feature_moments`)."""
        o, a = self.obs_dim, self.action_dim
        angles = [int(i) for i in self.coords.angle_idx]
        k = len(angles)
        state = [o + a + angles.index(d) if d in angles else d for d in range(o)]
        cosines = [o + a + k + j for j in range(k)]
        return torch.tensor(state + cosines + list(range(o, o + a)), dtype=torch.long)

    def _normalised_inputs(self, z: Tensor, action: Tensor) -> Tensor:
        """Normalised GP inputs ``(M, D)`` from model coordinates ``z (M, O)`` and ``action``."""
        mx, sx, _, _ = self._stats()
        x = torch.cat([self.coords.features(z.to(_DTYPE)), action.to(_DTYPE)], dim=-1)
        return (x - mx) / sx

    def to_model(self, obs: Tensor) -> Tensor:
        """Observations ``(..., O)`` in the model coordinates ``(..., O)`` of the GP (float64):
        phasors as Cartesian pairs (identity without ``phasor_dims``)."""
        return self.coords.to_model(obs.to(_DTYPE))

    def from_model(self, z: Tensor) -> Tensor:
        """Inverse of :meth:`to_model`; angle dimensions wrapped into ``[-pi, pi)``."""
        return self.coords.from_model(self.coords.wrap(z))

    # ------------------------------------------------------------------ prediction
    def predict(
        self, obs: Tensor, action: Tensor, include_noise: bool | None = None
    ) -> tuple[Tensor, Tensor]:
        """Predictive distribution of the next observation.

        Args:
            obs: ``(B, O)``; action: ``(B, A)``.
            include_noise: add the learned noise variance (default: ``config.predict_noise``).

        Returns:
            ``mean (B, O)``, ``var (B, O)`` in ``obs``' dtype. With ``phasor_dims`` the mean is
            mapped back to ``(amplitude, phase)`` and the variance of those dimensions is that
            of the Cartesian components the GP predicts (as the delta models); angle means
            are wrapped.
        """
        self.check_obs(obs)
        if action.ndim != 2 or action.shape != (obs.shape[0], self.action_dim):
            raise ValueError(
                f"action must have shape ({obs.shape[0]}, {self.action_dim}), got {tuple(action.shape)}"
            )
        post = self.posterior
        z = self.to_model(obs)
        mean, var = predict_latent(post, self._normalised_inputs(z, action))
        noise = self.config.predict_noise if include_noise is None else include_noise
        if noise:
            var = var + post.noise
        _, _, my, sy = self._stats()
        next_mean = self.from_model(z + mean * sy + my)
        return next_mean.to(obs.dtype), (var * sy.square()).to(obs.dtype)

    @property
    def propagation(self) -> str:
        """The default mode of :meth:`step` (``config.propagation``)."""
        return self.config.propagation

    def capabilities_with(self, propagation: str) -> frozenset[str]:
        """``sample`` draws particles; the other modes are deterministic. Every mode
        conditions on new data cheaply (:meth:`add_data`)."""
        if propagation == "sample":
            return frozenset({DIFFERENTIABLE, PARTICLES, GAUSSIAN_BELIEF, CONDITIONING})
        return frozenset({DIFFERENTIABLE, DETERMINISTIC, GAUSSIAN_BELIEF, CONDITIONING})

    def initial_state(
        self, obs: Tensor, n_particles: int = 1, generator: torch.Generator | None = None
    ) -> ModelState:
        """``obs (B, O)`` tiled to ``M = P * B`` rows for ``config.propagation``; see
        :meth:`initial_state_with`."""
        return self.initial_state_with(obs, n_particles, generator, self.config.propagation)

    def initial_state_with(
        self,
        obs: Tensor,
        n_particles: int,
        generator: torch.Generator | None,
        propagation: str,
    ) -> ModelState:
        """``obs (B, O)`` tiled to ``M = P * B`` rows: a tensor (``sample``, ``expectation``) or
        a point-mass :class:`GaussianState` in model coordinates (``moment_matching``,
        ``linearization``)."""
        rows = obs.repeat(n_particles, 1)
        if propagation in BELIEF_PROPAGATIONS:
            return self.certain_belief(rows)
        return rows

    def certain_belief(self, obs: Tensor) -> GaussianState:
        """A point-mass belief at ``obs (M, O)``, in model coordinates (float64)."""
        return GaussianState.certain(self.to_model(obs))

    def observe(self, state: ModelState) -> Tensor:
        """``(M, O)``: the state itself, or the observation at a Gaussian state's mean (its mean
        mapped back from model coordinates)."""
        if isinstance(state, GaussianState):
            return self.from_model(state.mean) if self.coords.amp_idx.numel() else state.mean
        return state

    def step(
        self, state: ModelState, action: Tensor, generator: torch.Generator | None = None
    ) -> ModelState:
        """One transition of ``M`` rows with ``action (M, A)`` and ``config.propagation``; see
        :meth:`step_with`."""
        return self.step_with(state, action, generator, self.config.propagation)

    def step_with(
        self,
        state: ModelState,
        action: Tensor,
        generator: torch.Generator | None,
        propagation: str,
    ) -> ModelState:
        """One transition of ``M`` rows with ``action (M, A)`` and ``propagation``.

        A tensor ``state (M, O)`` (observations) steps the posterior mean (``expectation``) or
        gets a sample of the GP predictive per row (any other mode; reparameterised, so
        differentiable); a :class:`GaussianState` (model coordinates) is propagated by
        ``propagation`` (``linearization`` when that is ``sample`` or ``expectation``).
        """
        if isinstance(state, GaussianState):
            method = propagation if propagation in BELIEF_PROPAGATIONS else "linearization"
            return self.propagate(state, action, method)[0]
        post = self.posterior
        z = self.to_model(state)
        mean, var = predict_latent(post, self._normalised_inputs(z, action))
        _, _, my, sy = self._stats()
        if propagation == EXPECTATION:
            return self.from_model(z + mean * sy + my).to(state.dtype)
        if self.config.predict_noise:
            var = var + post.noise
        eps = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        delta = (mean + var.sqrt() * eps) * sy + my
        return self.from_model(z + delta).to(state.dtype)

    def propagate(
        self,
        state: GaussianState,
        action: Tensor,
        method: str = "moment_matching",
        action_cov: Tensor | None = None,
        state_action_cov: Tensor | None = None,
    ) -> tuple[GaussianState, Tensor]:
        """Propagate a Gaussian belief one step under ``action (M, A)``.

        ``state`` is a belief over the model coordinates ``z`` (:meth:`to_model`; the
        observation itself without ``phasor_dims``). The action is deterministic, or -- for a
        policy whose output is itself moment-matched (PILCO) -- Gaussian with mean ``action``,
        covariance ``action_cov (M, A, A)`` and ``cov[z, a] = state_action_cov (M, O, A)``.
        The GP input ``u = [features(z), a]`` gets its moments from the joint Gaussian of
        ``(z, a)`` (angle features: exact trigonometric moments with ``moment_matching``, the
        Jacobian otherwise), the delta's moments come from ``method`` (``moment_matching``:
        exact for ``rbf``; ``linearization``: EKF with the mean Jacobian; ``mean``: the
        prediction at the mean, input uncertainty ignored), ``cov[(z, a), delta]`` is chained
        through the inputs as in PILCO (``cov[x, u] cov[u]^-1 cov[u, delta]``, exact without
        angle features), and ``z' = z + delta`` (angles wrapped) with
        ``cov[z'] = cov[z] + cov[delta] + cov[z, delta] + cov[z, delta]^T``.

        Returns:
            ``(next GaussianState (mean (M, O), cov (M, O, O)), cov[z, z'] (M, O, O))`` in
            float64 (the GP's dtype).
        """
        if method not in GAUSSIAN_METHODS:
            raise ValueError(f"method must be one of {GAUSSIAN_METHODS}, got {method!r}")
        if (action_cov is None) != (state_action_cov is None):
            raise ValueError("action_cov and state_action_cov must be given together (or neither)")
        post = self.posterior
        o, a = self.obs_dim, self.action_dim
        mean, cov = state.mean.to(_DTYPE), state.cov.to(_DTYPE)
        m_rows = mean.shape[0]
        mx, sx, my, sy = self._stats()
        joint_mean = torch.cat([mean, action.to(_DTYPE)], dim=-1)  # x = [z, a] (M, O + A)
        if action_cov is None:
            joint_cov = F.pad(cov, (0, a, 0, a))
        else:
            sa = state_action_cov.to(_DTYPE)
            joint_cov = torch.cat(
                [
                    torch.cat([cov, sa], -1),
                    torch.cat([sa.transpose(-1, -2), action_cov.to(_DTYPE)], -1),
                ],
                -2,
            )
        noise = post.noise if self.config.predict_noise else None
        order = self._feature_order.to(mean.device)
        u_mean, u_cov, u_gain = feature_moments(
            joint_mean, joint_cov, self.coords.angle_idx, order, exact=method == "moment_matching"
        )
        mu_n = (u_mean - mx) / sx
        gain_n = u_gain / sx  # cov[x, u_n] = joint_cov @ gain_n
        if method == "moment_matching":
            cov_n = u_cov / (sx.unsqueeze(-1) * sx.unsqueeze(0))
            f_mean, f_cov, f_gain = moment_match_gain(post, mu_n, cov_n)
            if noise is not None:
                f_cov = f_cov + torch.diag_embed(noise.expand(m_rows, -1))
            d_cov = f_cov * (sy.unsqueeze(-1) * sy.unsqueeze(0))
            c_xd = joint_cov @ (gain_n @ f_gain) * sy  # cov[x, delta] (M, O + A, O)
        elif method == "linearization":
            f_mean, f_var, jac = predict_with_jacobian(post, mu_n)
            # d delta / d x = sy * (d f / d u_n) (d u_n / d x), the last the features' Jacobian
            jac_x = sy.unsqueeze(-1) * (jac @ gain_n.transpose(-1, -2))  # (M, O, O + A)
            c_xd = joint_cov @ jac_x.transpose(-1, -2)
            if noise is not None:
                f_var = f_var + noise
            d_cov = jac_x @ c_xd + torch.diag_embed(f_var * sy.square())
        else:  # mean: the prediction at the mean, input uncertainty not propagated
            f_mean, f_var = predict_latent(post, mu_n)
            if noise is not None:
                f_var = f_var + noise
            d_cov = torch.diag_embed(f_var * sy.square())
            c_xd = None
        next_mean = self.coords.wrap(mean + f_mean * sy + my)
        if c_xd is None:
            return GaussianState(next_mean, cov + d_cov), cov
        c_sd = c_xd[:, :o, :]  # cov[z, delta]
        new_cov = cov + d_cov + c_sd + c_sd.transpose(-1, -2)
        new_cov = 0.5 * (new_cov + new_cov.transpose(-1, -2))
        return GaussianState(next_mean, new_cov), cov + c_sd

    # ------------------------------------------------------------------ fitting
    def fit_transitions(
        self, batch: TransitionBatch, config: FitConfig, generator: torch.Generator | None
    ) -> FitReport:
        """Fit to all transitions of ``batch`` (the hook :func:`mbrl.models.fit` calls).

        ``config`` (the neural-network training settings) is not used: GP fitting follows
        :class:`GPConfig`. See :meth:`fit_data` for errors and warnings.
        """
        return self.fit_data(batch.obs, batch.action, batch.next_obs, generator=generator)

    def fit_data(
        self,
        obs: Tensor,
        action: Tensor,
        next_obs: Tensor,
        *,
        generator: torch.Generator | None = None,
        max_iter: int | None = None,
    ) -> FitReport:
        """Fit hyperparameters and posterior to ``obs (N, O)``, ``action (N, A)``, ``next_obs (N, O)``.

        Args:
            generator: randomness of k-means and SVGP minibatches (seed 0 when omitted).
            max_iter: override of ``config.max_iter`` for this call.

        Returns:
            :class:`~mbrl.models.training.FitReport` (``train_loss``: negative log marginal
            likelihood per point, or negative ELBO, per iteration chunk; ``best_val_score``:
            the final one); :attr:`last_fit` has the details.

        Raises:
            ValueError: fewer than ``D = O + A`` transitions, mismatched shapes or non-finite
                values (the model is unchanged).
            GPFitError: a numerical failure with no previous model to keep.

        Warns:
            GPFitWarning: not converged / numerical failure; the previous model was kept.
        """
        start = time.perf_counter()
        _check_data(obs, action, next_obs, self.obs_dim, self.action_dim)
        n = int(obs.shape[0])
        if n < self.input_dim:
            raise ValueError(
                f"need at least {self.input_dim} transitions (the GP input size obs_dim + "
                f"action_dim, plus one per angle dimension) to fit GPDynamics, got {n}"
            )
        cfg = self.config
        iters = cfg.max_iter if max_iter is None else max_iter
        check_positive_int(iters, "max_iter")
        gen = generator if generator is not None else torch.Generator().manual_seed(0)
        device = self.device
        obs, action, next_obs = (t.to(device) for t in (obs, action, next_obs))
        in_norm, out_norm = (
            Normalizer(self.input_dim).to(device),
            Normalizer(self.obs_dim).to(device),
        )
        z = self.coords.to_model(obs.to(_DTYPE))
        delta = self.coords.wrap(self.coords.to_model(next_obs.to(_DTYPE)) - z)
        raw_x = torch.cat([self.coords.features(z), action.to(_DTYPE)], dim=-1)
        in_norm.fit(raw_x)
        out_norm.fit(delta)
        x = in_norm.normalize(raw_x)
        y = out_norm.normalize(delta).transpose(0, 1).contiguous()
        weight = bias = None
        if cfg.mean == "linear":
            # The kernel part (and its hyperparameters) model the residual of the linear mean.
            weight, bias = fit_linear_mean(x, y, cfg.mean_ridge, robust=cfg.mean_robust)
            y = (y - (x @ weight.transpose(0, 1) + bias).transpose(0, 1)).contiguous()
        warm = cfg.warm_start and self.is_fitted
        if warm:
            hyper = copy.deepcopy(self.hyper)
        else:
            hyper = GPHyperparameters(
                cfg.kernel,
                self.obs_dim,
                self.input_dim,
                cfg.lengthscale_bounds,
                cfg.outputscale_bounds,
                cfg.noise_bounds,
            )
            hyper = hyper.to(device=device, dtype=_DTYPE)
        hyper_kind = "exact" if n <= cfg.sparse_threshold else "sparse"
        post_kind = "exact" if n <= cfg.num_inducing else "sparse"
        try:
            inducing = None
            if hyper_kind == "exact":
                result = fit_exact_hyperparameters(
                    x, y, hyper, iters, cfg.gtol, prior=cfg.hyper_prior
                )
            elif cfg.sparse_method == "collapsed":
                result = fit_collapsed_hyperparameters(
                    x,
                    y,
                    hyper,
                    lambda xs, h: self._select_inducing(xs, cfg.sparse_fit_inducing, h, gen),
                    subset=cfg.sparse_subset,
                    holdout=cfg.sparse_holdout,
                    max_iter=iters,
                    gtol=cfg.gtol,
                    patience=cfg.sparse_patience,
                    init_subset=0 if warm else cfg.sparse_init_subset,
                    generator=gen,
                )
            else:
                start_z = self._select_inducing(x, cfg.num_inducing, hyper, gen)
                inducing, result = fit_sparse_hyperparameters(
                    x,
                    y,
                    hyper,
                    start_z,
                    steps=cfg.sparse_steps,
                    batch_size=cfg.sparse_batch_size,
                    lr=cfg.sparse_lr,
                    generator=gen,
                )
            hyper.eval()
            ell, sf2, s2 = hyper.values()
            if post_kind == "sparse" and inducing is None:
                inducing = self._select_inducing(x, cfg.num_inducing, hyper, gen)
            if post_kind == "exact":
                post = exact_posterior(cfg.kernel, x, y, ell, sf2, s2)
                stats = None
            else:
                inducing = inducing.contiguous()
                stats = sparse_statistics(cfg.kernel, inducing, x, y, ell, sf2)
                post = sparse_posterior(cfg.kernel, inducing, *stats, ell, sf2, s2)
            post = post.with_mean(weight, bias)
        except (FitFailure, ValueError) as err:
            info = GPFitInfo(
                n, hyper_kind, post_kind, False, False, str(err), 0, time.perf_counter() - start
            )
            self.last_fit = info
            if not self.is_fitted:
                raise GPFitError(
                    f"GPDynamics fit on {n} transitions failed numerically ({err}); there is no "
                    "previous model to keep"
                ) from err
            warnings.warn(
                f"GPDynamics fit on {n} transitions failed numerically ({err}); the previous "
                "model was kept",
                GPFitWarning,
                stacklevel=2,
            )
            return self._report(info, [])
        accept = result.converged or not self.is_fitted
        if not result.converged:
            kept = (
                "the previous model was kept"
                if not accept
                else "no previous model exists, so the unconverged fit is used"
            )
            warnings.warn(
                f"GPDynamics hyperparameter fit on {n} transitions did not converge in "
                f"{result.iterations} iterations ({result.message}); {kept}",
                GPFitWarning,
                stacklevel=2,
            )
        info = GPFitInfo(
            n,
            hyper_kind,
            post_kind,
            result.converged,
            accept,
            result.message,
            result.iterations,
            time.perf_counter() - start,
        )
        self.last_fit = info
        if accept:
            self.hyper = hyper
            self.input_norm.load_state_dict(in_norm.state_dict())
            self.output_norm.load_state_dict(out_norm.state_dict())
            if post_kind == "exact":
                self._set_exact(x, y)
            else:
                self._set_sparse(inducing, *stats)
            self.num_data = torch.tensor(n, device=device)
            if weight is not None:
                self.mean_weight, self.mean_bias = weight, bias
            self._post = post
        return self._report(info, result.losses)

    def _select_inducing(
        self, x: Tensor, k: int, hyper: GPHyperparameters, generator: torch.Generator
    ) -> Tensor:
        """``k`` inducing inputs per output ``(O, k, D)`` from normalised inputs ``x (N, D)``
        by ``config.inducing_init`` (greedy variance uses ``hyper``'s current values)."""
        if self.config.inducing_init == "greedy":
            ell, sf2, _ = hyper.values()
            return greedy_variance(self.config.kernel, x, k, ell, sf2)
        return kmeans(x, k, generator).unsqueeze(0).expand(self.obs_dim, -1, -1)

    @staticmethod
    def _report(info: GPFitInfo, losses: list[float]) -> FitReport:
        return FitReport(
            train_loss=list(losses),
            best_val_score=losses[-1] if losses else float("nan"),
            member_val_scores=[losses[-1]] if losses else [],
            evaluations=len(losses),
            steps=info.iterations,
            seconds=info.seconds,
            accepted=info.accepted,
        )

    def add_data(self, obs: Tensor, action: Tensor, next_obs: Tensor) -> None:
        """Condition on new transitions without refitting hyperparameters (cheap update).

        ``obs (k, O)``, ``action (k, A)``, ``next_obs (k, O)``; normalisation statistics are
        kept. Exact posterior: block update of the Cholesky factor and its inverse,
        ``O(N^2 k)``; sparse posterior: the new points' whitened sufficient statistics are
        added, ``O(k Z^2 + Z^3)``. The next :meth:`fit_data` refits everything.

        Raises:
            RuntimeError: before the first fit; ValueError: bad shapes or non-finite values.
        """
        if not self.is_fitted:
            raise RuntimeError("GPDynamics.add_data needs a fitted model; call fit first")
        _check_data(obs, action, next_obs, self.obs_dim, self.action_dim)
        device = self.device
        obs, action, next_obs = (t.to(device) for t in (obs, action, next_obs))
        _, _, my, sy = self._stats()
        z = self.to_model(obs)
        x = self._normalised_inputs(z, action)
        post = self.posterior
        y = (self.coords.wrap(self.to_model(next_obs) - z) - my) / sy
        prior = post.prior_mean(x)
        if prior is not None:
            y = y - prior  # the kernel part conditions on the linear mean's residual
        y = y.transpose(0, 1).contiguous()
        if self._kind == "exact":
            post, y_all = add_points_exact(post, x, y, self.train_y)
            self._set_exact(torch.cat([self.train_x, x]), y_all)
        else:
            stat_a, stat_b = sparse_statistics(
                post.kernel, self.inducing, x, y, post.lengthscale, post.outputscale
            )
            self._set_sparse(self.inducing, self.stat_a + stat_a, self.stat_b + stat_b)
            post = self._build_posterior(self.hyper)
        self.num_data = self.num_data + obs.shape[0]
        self._post = post

    def extra_repr(self) -> str:
        kind = self._kind or "unfitted"
        return f"obs_dim={self.obs_dim}, action_dim={self.action_dim}, kernel={self.config.kernel}, posterior={kind}"


def _build(ctx: Any) -> GPDynamics:
    return GPDynamics(ctx.obs_dim, ctx.action_dim, config_from_options(GPConfig, ctx.options))


register_model("gp", _build, "Gaussian-process dynamics (gpytorch; exact or sparse)")

__all__ = [
    "BELIEF_PROPAGATIONS",
    "GAUSSIAN_METHODS",
    "PROPAGATIONS",
    "GPConfig",
    "GPDynamics",
    "GPFitError",
    "GPFitInfo",
    "GPFitWarning",
    "GaussianState",
    "HyperFitResult",
]
