"""Gaussian-process dynamics (gpytorch): ``next_obs = obs + f(obs, action)``, one GP per output.

:class:`GPDynamics` models the normalised state delta with ``O`` independent GPs (a batched
gpytorch model) over the normalised inputs ``[obs, action]`` (``D = O + A``), with ARD
squared-exponential or Matern kernels and a learned noise variance per output. The prior
mean is zero or (``GPConfig.mean="linear"``) a linear function of the inputs fitted before
the hyperparameters, the kernel part modelling its residual (linear extrapolation).

Fitting (``fit_transitions``, called by :func:`mbrl.models.fit`):

* ``N <= sparse_threshold``: hyperparameters by the exact marginal likelihood (L-BFGS-B);
* ``N > sparse_threshold``: a sparse variational GP (SVGP) learns hyperparameters and
  inducing locations (k-means start) from a fixed number of minibatch steps, so fitting time
  stays bounded as data grows.

Prediction uses a :class:`~mbrl.models.gp.core.GPPosterior`: the exact posterior while
``N <= num_inducing``, otherwise the optimal sparse posterior over all data with
``num_inducing`` inducing points (k-means centres, or the SVGP's learned ones). This keeps
planning cost ``O(num_inducing^2)`` per row and step, independent of the data size.

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
from mbrl.models.gp.core import (
    GPPosterior,
    check_kernel,
    exact_posterior,
    fit_linear_mean,
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
from mbrl.models.gp.moments import GaussianState, moment_match
from mbrl.models.gp.sparse import fit_sparse_hyperparameters
from mbrl.models.normalization import Normalizer
from mbrl.models.registry import register_model
from mbrl.models.training import FitConfig, FitReport
from mbrl.util.configs import config_from_options
from mbrl.validation import check_positive_int

PROPAGATIONS = ("sample", "moment_matching", "linearization", EXPECTATION)
BELIEF_PROPAGATIONS = ("moment_matching", "linearization")
MEANS = ("zero", "linear")
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
        sparse_threshold: above this many transitions the hyperparameters are fitted by the
            sparse variational GP instead of the exact marginal likelihood (default 1000:
            exact fits cost ``O(N^3)`` per iteration, ~0.5 s at N = 1000 on one CPU core).
        num_inducing: inducing points of the SVGP and of the sparse posterior used for
            prediction whenever the data has more points (default 256).
        max_iter: L-BFGS-B iterations of the exact fit before it counts as not converged
            (default 200).
        gtol: L-BFGS-B projected-gradient tolerance (default 1e-5).
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
    """

    kernel: str = "rbf"
    propagation: str = "sample"
    predict_noise: bool = True
    sparse_threshold: int = 1000
    num_inducing: int = 256
    max_iter: int = 200
    gtol: float = 1e-5
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

    def __post_init__(self) -> None:
        check_kernel(self.kernel)
        if self.mean not in MEANS:
            raise ValueError(f"mean must be one of {MEANS}, got {self.mean!r}")
        if not (
            isinstance(self.mean_ridge, int | float)
            and self.mean_ridge >= 0
            and math.isfinite(self.mean_ridge)
        ):
            raise ValueError(f"mean_ridge must be a finite number >= 0, got {self.mean_ridge!r}")
        if not isinstance(self.mean_robust, bool):
            raise ValueError(f"mean_robust must be a bool, got {self.mean_robust!r}")
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
        ):
            check_positive_int(getattr(self, name), name)
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
        hyper_fit: ``exact`` (marginal likelihood) or ``sparse`` (SVGP ELBO).
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

    capabilities: ClassVar[frozenset[str]] = frozenset({DIFFERENTIABLE, PARTICLES, GAUSSIAN_BELIEF})
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
        self.input_dim = self.obs_dim + self.action_dim
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

    def _normalised_inputs(self, obs: Tensor, action: Tensor) -> Tensor:
        mx, sx, _, _ = self._stats()
        x = torch.cat([obs.to(_DTYPE), action.to(_DTYPE)], dim=-1)
        return (x - mx) / sx

    # ------------------------------------------------------------------ prediction
    def predict(
        self, obs: Tensor, action: Tensor, include_noise: bool | None = None
    ) -> tuple[Tensor, Tensor]:
        """Predictive distribution of the next observation.

        Args:
            obs: ``(B, O)``; action: ``(B, A)``.
            include_noise: add the learned noise variance (default: ``config.predict_noise``).

        Returns:
            ``mean (B, O)``, ``var (B, O)`` in ``obs``' dtype.
        """
        self.check_obs(obs)
        if action.ndim != 2 or action.shape != (obs.shape[0], self.action_dim):
            raise ValueError(
                f"action must have shape ({obs.shape[0]}, {self.action_dim}), got {tuple(action.shape)}"
            )
        post = self.posterior
        mean, var = predict_latent(post, self._normalised_inputs(obs, action))
        noise = self.config.predict_noise if include_noise is None else include_noise
        if noise:
            var = var + post.noise
        _, _, my, sy = self._stats()
        next_mean = obs.to(_DTYPE) + mean * sy + my
        return next_mean.to(obs.dtype), (var * sy.square()).to(obs.dtype)

    @property
    def propagation(self) -> str:
        """The default mode of :meth:`step` (``config.propagation``)."""
        return self.config.propagation

    def capabilities_with(self, propagation: str) -> frozenset[str]:
        """``sample`` draws particles; the other modes are deterministic."""
        if propagation == "sample":
            return frozenset({DIFFERENTIABLE, PARTICLES, GAUSSIAN_BELIEF})
        return frozenset({DIFFERENTIABLE, DETERMINISTIC, GAUSSIAN_BELIEF})

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
        a point-mass :class:`GaussianState` (``moment_matching``, ``linearization``)."""
        rows = obs.repeat(n_particles, 1)
        if propagation in BELIEF_PROPAGATIONS:
            return GaussianState.certain(rows)
        return rows

    def observe(self, state: ModelState) -> Tensor:
        """``(M, O)``: the state itself, or a Gaussian state's mean."""
        return state.mean if isinstance(state, GaussianState) else state

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

        A tensor ``state (M, O)`` steps the posterior mean (``expectation``) or gets a sample of
        the GP predictive per row (any other mode; reparameterised, so differentiable); a
        :class:`GaussianState` is propagated by ``propagation`` (``linearization`` when that
        is ``sample`` or ``expectation``).
        """
        if isinstance(state, GaussianState):
            method = propagation if propagation in BELIEF_PROPAGATIONS else "linearization"
            return self.propagate(state, action, method)[0]
        post = self.posterior
        mean, var = predict_latent(post, self._normalised_inputs(state, action))
        _, _, my, sy = self._stats()
        if propagation == EXPECTATION:
            return state + (mean * sy + my).to(state.dtype)
        if self.config.predict_noise:
            var = var + post.noise
        eps = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        delta = (mean + var.sqrt() * eps) * sy + my
        return state + delta.to(state.dtype)

    def propagate(
        self, state: GaussianState, action: Tensor, method: str = "moment_matching"
    ) -> tuple[GaussianState, Tensor]:
        """Propagate a Gaussian belief one step under deterministic ``action (M, A)``.

        The GP input ``[s, a]`` has mean ``[mean, action]`` and covariance
        ``blockdiag(cov, 0)``; the delta's moments come from ``method`` (``moment_matching``:
        exact for ``rbf``; ``linearization``: EKF with the mean Jacobian; ``mean``: the
        prediction at the mean, input uncertainty ignored), and ``s' = s + delta`` with
        ``cov[s'] = cov[s] + cov[delta] + cov[s, delta] + cov[s, delta]^T``.

        Returns:
            ``(next GaussianState (mean (M, O), cov (M, O, O)), cov[s, s'] (M, O, O))`` in
            float64 (the GP's dtype).
        """
        if method not in GAUSSIAN_METHODS:
            raise ValueError(f"method must be one of {GAUSSIAN_METHODS}, got {method!r}")
        post = self.posterior
        o, a = self.obs_dim, self.action_dim
        mean, cov = state.mean.to(_DTYPE), state.cov.to(_DTYPE)
        mx, sx, my, sy = self._stats()
        mu_n = (torch.cat([mean, action.to(_DTYPE)], dim=-1) - mx) / sx
        noise = post.noise if self.config.predict_noise else None
        if method == "moment_matching":
            cov_n = F.pad(cov, (0, a, 0, a)) / (sx.unsqueeze(-1) * sx.unsqueeze(0))
            f_mean, f_cov, io_cov = moment_match(post, mu_n, cov_n)
            if noise is not None:
                f_cov = f_cov + torch.diag_embed(noise.expand(mean.shape[0], -1))
            d_cov = f_cov * (sy.unsqueeze(-1) * sy.unsqueeze(0))
            c_sd = io_cov[:, :o, :] * (sx[:o].unsqueeze(-1) * sy.unsqueeze(0))  # cov[s, delta]
            new_cov = cov + d_cov + c_sd + c_sd.transpose(-1, -2)
            new_cov = 0.5 * (new_cov + new_cov.transpose(-1, -2))
            return GaussianState(mean + f_mean * sy + my, new_cov), cov + c_sd
        if method == "linearization":
            # s' = s + delta(s) ~ F s with F = I + d delta / d s (raw units):
            # cov[s'] = F cov F^T + var, cov[s, s'] = cov F^T.
            f_mean, f_var, jac = predict_with_jacobian(post, mu_n)
            jac_s = jac[:, :, :o] * (sy.unsqueeze(-1) / sx[:o].unsqueeze(0))
            fmat = jac_s + torch.eye(o, dtype=_DTYPE, device=mean.device)
            cross = cov @ fmat.transpose(-1, -2)
        else:  # mean: the prediction at the mean, input uncertainty not propagated
            f_mean, f_var = predict_latent(post, mu_n)
            fmat, cross = None, cov
        if noise is not None:
            f_var = f_var + noise
        var = torch.diag_embed(f_var * sy.square())
        new_cov = (cov if fmat is None else fmat @ cross) + var
        return GaussianState(mean + f_mean * sy + my, new_cov), cross

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
                f"action_dim) to fit GPDynamics, got {n}"
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
        raw_x = torch.cat([obs, action], dim=-1)
        in_norm.fit(raw_x)
        out_norm.fit(next_obs - obs)
        x = in_norm.normalize(raw_x.to(_DTYPE))
        y = out_norm.normalize((next_obs - obs).to(_DTYPE)).transpose(0, 1).contiguous()
        weight = bias = None
        if cfg.mean == "linear":
            # The kernel part (and its hyperparameters) model the residual of the linear mean.
            weight, bias = fit_linear_mean(x, y, cfg.mean_ridge, robust=cfg.mean_robust)
            y = (y - (x @ weight.transpose(0, 1) + bias).transpose(0, 1)).contiguous()
        if cfg.warm_start and self.is_fitted:
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
            if hyper_kind == "exact":
                result = fit_exact_hyperparameters(x, y, hyper, iters, cfg.gtol)
                inducing = None
                if post_kind == "sparse":
                    inducing = (
                        kmeans(x, cfg.num_inducing, gen).unsqueeze(0).expand(self.obs_dim, -1, -1)
                    )
            else:
                start_z = kmeans(x, cfg.num_inducing, gen).unsqueeze(0).expand(self.obs_dim, -1, -1)
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

    @staticmethod
    def _report(info: GPFitInfo, losses: list[float]) -> FitReport:
        return FitReport(
            train_loss=list(losses),
            best_val_score=losses[-1] if losses else float("nan"),
            member_val_scores=[losses[-1]] if losses else [],
            evaluations=len(losses),
            steps=info.iterations,
            seconds=info.seconds,
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
        x = self._normalised_inputs(obs, action)
        post = self.posterior
        y = ((next_obs - obs).to(_DTYPE) - my) / sy
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
