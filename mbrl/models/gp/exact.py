"""gpytorch pieces of the GP dynamics: kernels, likelihood, the batched exact GP and its fit.

``O`` output dimensions are ``O`` independent GPs evaluated as one batched gpytorch model
(``batch_shape = (O,)``) sharing the inputs ``X (N, D)``. Hyperparameters (ARD lengthscales,
signal variance, noise variance per output) are fitted by maximising the exact marginal
likelihood with L-BFGS-B (scipy) on gradients from torch autograd.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import gpytorch
import numpy as np
import scipy.optimize
import torch
from linear_operator.utils.errors import NotPSDError
from torch import Tensor, nn

from mbrl.models.gp.core import GPPosterior, check_kernel, kernel_matrix


def _log_positive() -> gpytorch.constraints.Positive:
    """``value = exp(raw)``: raw parameters are log-hyperparameters (box bounds apply to them)."""
    return gpytorch.constraints.Positive(transform=torch.exp, inv_transform=torch.log)


PRIOR: dict[str, tuple[float, float]] = {
    "covar.base_kernel.raw_lengthscale": (math.log(3.0), 1.5),
    "covar.raw_outputscale": (0.0, 2.0),
    "likelihood.noise_covar.raw_noise": (math.log(1e-2), 3.0),
}
"""``(mean, standard deviation)`` of the normal prior on each log-hyperparameter (normalised
units; see :meth:`GPHyperparameters.neg_log_prior`): lengthscales around 3 input standard
deviations (within a factor ``e^3 = 20`` of it at two standard deviations), signal variance
around the targets' variance, noise variance around 1e-2 of it."""


class GPHyperparameters(nn.Module):
    """Kernel and likelihood of ``O`` independent GPs over ``D`` inputs (gpytorch modules).

    Every hyperparameter is stored as its logarithm (gpytorch raw parameter with an ``exp``
    transform) and kept inside box bounds: L-BFGS-B enforces them as bounds (so an optimum on a
    bound still converges), the SVGP's Adam steps are projected onto them.

    On normalised data the defaults exclude degenerate optima: a signal variance far above the
    target variance with huge lengthscales (the "polynomial limit", where ``var = s - k Q k``
    loses all precision) and a vanishing noise (an ill-conditioned kernel matrix).

    Args:
        kernel: ``rbf``, ``matern32`` or ``matern52``.
        num_outputs: ``O``; input_dim: ``D``.
        lengthscale_bounds / outputscale_bounds / noise_bounds: ``(min, max)`` of each.

    Attributes:
        covar: ``ScaleKernel(RBF | Matern, ard_num_dims=D, batch_shape=(O,))``.
        likelihood: ``GaussianLikelihood(batch_shape=(O,))``.
    """

    def __init__(
        self,
        kernel: str,
        num_outputs: int,
        input_dim: int,
        lengthscale_bounds: tuple[float, float] = (1e-2, 1e3),
        outputscale_bounds: tuple[float, float] = (1e-4, 1e2),
        noise_bounds: tuple[float, float] = (1e-5, 10.0),
    ) -> None:
        super().__init__()
        check_kernel(kernel)
        self.kernel = kernel
        batch = torch.Size([num_outputs])
        if kernel == "rbf":
            base = gpytorch.kernels.RBFKernel(
                ard_num_dims=input_dim, batch_shape=batch, lengthscale_constraint=_log_positive()
            )
        else:
            nu = 1.5 if kernel == "matern32" else 2.5
            base = gpytorch.kernels.MaternKernel(
                nu=nu,
                ard_num_dims=input_dim,
                batch_shape=batch,
                lengthscale_constraint=_log_positive(),
            )
        self.covar = gpytorch.kernels.ScaleKernel(
            base, batch_shape=batch, outputscale_constraint=_log_positive()
        )
        self.likelihood = gpytorch.likelihoods.GaussianLikelihood(
            batch_shape=batch, noise_constraint=_log_positive()
        )
        self.bounds = {
            "covar.base_kernel.raw_lengthscale": _log_bounds(
                lengthscale_bounds, "lengthscale_bounds"
            ),
            "covar.raw_outputscale": _log_bounds(outputscale_bounds, "outputscale_bounds"),
            "likelihood.noise_covar.raw_noise": _log_bounds(noise_bounds, "noise_bounds"),
        }
        # Starts on normalised data: unit lengthscales and signal, small noise (within bounds).
        self.covar.base_kernel.lengthscale = torch.ones(num_outputs, 1, input_dim)
        self.covar.outputscale = torch.ones(num_outputs)
        self.likelihood.noise = torch.full((num_outputs, 1), 1e-2)
        self.project()

    def neg_log_prior(self) -> Tensor:
        """Minus the log density (up to a constant) of the weak hyperparameter prior, a scalar.

        Independent normals on the log-hyperparameters in normalised units (:data:`PRIOR`).
        A few points leave directions of the marginal likelihood flat (an input that barely
        varies, a signal the noise could explain); the prior makes them curved, so a fit on 10-30 points converges to a
        moderate value instead of running along the flat direction to a bound.
        """
        params = dict(self.named_parameters())
        return sum(
            (
                0.5 * ((params[name] - loc) / scale).square().sum()
                for name, (loc, scale) in PRIOR.items()
            ),
            params["covar.raw_outputscale"].new_zeros(()),
        )

    def named_bounded_parameters(self) -> list[tuple[nn.Parameter, float, float]]:
        """``(parameter, log_min, log_max)`` of every trainable raw (log) hyperparameter."""
        params = dict(self.named_parameters())
        return [(params[name], lo, hi) for name, (lo, hi) in self.bounds.items()]

    @torch.no_grad()
    def project(self) -> None:
        """Clamp every log-hyperparameter into its bounds (in place)."""
        for p, lo, hi in self.named_bounded_parameters():
            p.clamp_(lo, hi)

    @property
    def lengthscale(self) -> Tensor:
        """ARD lengthscales ``(O, D)`` (detached)."""
        return self.covar.base_kernel.lengthscale.detach().squeeze(-2)

    @property
    def outputscale(self) -> Tensor:
        """Signal variances ``(O,)`` (detached)."""
        return self.covar.outputscale.detach()

    @property
    def noise(self) -> Tensor:
        """Noise variances ``(O,)`` (detached)."""
        return self.likelihood.noise.detach().squeeze(-1)

    def values(self) -> tuple[Tensor, Tensor, Tensor]:
        """``(lengthscale (O, D), outputscale (O,), noise (O,))``."""
        return self.lengthscale, self.outputscale, self.noise

    def tensors(self) -> tuple[Tensor, Tensor, Tensor]:
        """:meth:`values` attached to the autograd graph of the raw parameters (for fitting)."""
        return (
            self.covar.base_kernel.lengthscale.squeeze(-2),
            self.covar.outputscale,
            self.likelihood.noise.squeeze(-1),
        )


def _log_bounds(bounds: tuple[float, float], name: str) -> tuple[float, float]:
    lo, hi = (float(b) for b in bounds)
    if not (0 < lo < hi < math.inf):
        raise ValueError(f"{name} must be (min, max) with 0 < min < max < inf, got {bounds!r}")
    return math.log(lo), math.log(hi)


class BatchExactGP(gpytorch.models.ExactGP):
    """``O`` independent exact GPs as one batched gpytorch model.

    Args:
        x: training inputs ``(N, D)`` (shared by all outputs).
        y: training targets ``(O, N)``.
        hyper: the kernel and likelihood (shared, trained in place).
    """

    def __init__(self, x: Tensor, y: Tensor, hyper: GPHyperparameters) -> None:
        o = y.shape[0]
        super().__init__(x.unsqueeze(0).expand(o, -1, -1), y, hyper.likelihood)
        self.mean_module = gpytorch.means.ZeroMean(batch_shape=torch.Size([o]))
        self.covar_module = hyper.covar

    def forward(self, x: Tensor) -> gpytorch.distributions.MultivariateNormal:
        """Prior at ``x (O, N, D)``: a batch ``(O,)`` of ``N``-dimensional normals."""
        return gpytorch.distributions.MultivariateNormal(self.mean_module(x), self.covar_module(x))


@dataclass
class HyperFitResult:
    """Outcome of a hyperparameter fit.

    Attributes:
        converged: the optimiser met its tolerance (exact) / the loss stayed finite (sparse).
        message: the optimiser's own words.
        losses: loss per iteration (negative marginal likelihood or ELBO per data point).
        iterations: optimiser iterations (exact) or gradient steps (sparse).
    """

    converged: bool
    message: str
    losses: list[float] = field(default_factory=list)
    iterations: int = 0


class FitFailure(RuntimeError):
    """A numerical failure while fitting (non-finite loss, Cholesky failure)."""


def _projected_gradient(
    theta: np.ndarray, grad: np.ndarray, lo: np.ndarray, hi: np.ndarray
) -> float:
    """Max-norm of the gradient projected onto the box (zero where a bound blocks descent)."""
    g = np.where(theta <= lo, np.minimum(grad, 0.0), grad)
    g = np.where(theta >= hi, np.maximum(g, 0.0), g)
    return float(np.abs(g).max())


class StopFit(Exception):
    """Raised by a :func:`minimize_hyperparameters` ``monitor`` to end the fit (early stopping)."""


def minimize_hyperparameters(
    hyper: GPHyperparameters,
    loss_fn: Callable[[], Tensor],
    max_iter: int,
    gtol: float,
    what: str,
    monitor: Callable[[int], None] | None = None,
) -> HyperFitResult:
    """Minimise ``loss_fn()`` over ``hyper``'s log-hyperparameters by L-BFGS-B within their bounds.

    Gradients by torch autograd; ``hyper`` is updated in place (to the last accepted iterate,
    also when not converged). ``monitor(iteration)`` runs after every L-BFGS-B iteration with
    ``hyper`` at that iterate and may raise :class:`StopFit`: the fit then ends there as
    converged (early stopping; the monitor restores whichever parameters it wants kept).

    Args:
        what: the loss in words, for error messages.

    Returns:
        :class:`HyperFitResult`; ``converged`` is False when ``max_iter`` was reached.

    Raises:
        FitFailure: non-finite loss or a matrix that is not positive definite.
    """
    hyper.project()
    bounded = hyper.named_bounded_parameters()
    params = [p for p, _, _ in bounded]
    shapes = [p.shape for p in params]
    sizes = [p.numel() for p in params]
    losses: list[float] = []

    def assign(theta: np.ndarray) -> None:
        chunks = np.split(theta, np.cumsum(sizes)[:-1])
        with torch.no_grad():
            for p, c, s in zip(params, chunks, shapes, strict=True):
                p.copy_(torch.as_tensor(c, dtype=p.dtype).view(s))

    def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
        assign(theta)
        for p in params:
            p.grad = None
        try:
            with torch.enable_grad():
                loss = loss_fn()
        except NotPSDError as err:
            raise FitFailure(f"kernel matrix not positive definite ({err})") from err
        except torch.linalg.LinAlgError as err:
            raise FitFailure(f"{what}: a matrix is not positive definite ({err})") from err
        if not torch.isfinite(loss):
            raise FitFailure(f"{what} became non-finite ({loss.item()})")
        loss.backward()
        grad = torch.cat([p.grad.reshape(-1) for p in params]).detach().cpu().double().numpy()
        losses.append(float(loss.detach()))
        return float(loss.detach()), grad

    iteration = 0

    def callback(theta: np.ndarray) -> None:
        nonlocal iteration
        iteration += 1
        if monitor is not None:
            assign(theta)
            monitor(iteration)

    theta0 = torch.cat([p.detach().reshape(-1) for p in params]).cpu().double().numpy()
    lo = np.concatenate([np.full(p.numel(), b) for p, b, _ in bounded])
    hi = np.concatenate([np.full(p.numel(), b) for p, _, b in bounded])
    try:
        res = scipy.optimize.minimize(
            objective,
            theta0,
            jac=True,
            method="L-BFGS-B",
            bounds=list(zip(lo, hi, strict=True)),
            options={"maxiter": max_iter, "gtol": gtol, "maxfun": 3 * max_iter},
            callback=callback,
        )
    except StopFit as stop:
        return HyperFitResult(True, f"early stopping: {stop}", losses, iteration)
    assign(res.x)
    # status 0: converged; 2 (the line search could not improve) at a near-zero projected
    # gradient is a converged fit in floating point; 1: iteration/evaluation limit reached.
    pgrad = _projected_gradient(res.x, res.jac, lo, hi)
    converged = res.status == 0 or (res.status == 2 and pgrad < max(100 * gtol, 1e-3))
    if not math.isfinite(float(res.fun)):
        raise FitFailure(f"{what} became non-finite ({res.fun})")
    return HyperFitResult(bool(converged), str(res.message), losses, int(res.nit))


def fit_exact_hyperparameters(
    x: Tensor,
    y: Tensor,
    hyper: GPHyperparameters,
    max_iter: int = 200,
    gtol: float = 1e-5,
    prior: bool = False,
) -> HyperFitResult:
    """Maximise the exact marginal likelihood of ``x (N, D)``, ``y (O, N)`` over ``hyper``'s parameters.

    With ``prior``, the posterior density instead (MAP: the marginal likelihood times
    :meth:`GPHyperparameters.neg_log_prior`'s prior), whose pull fades as ``N`` grows.

    L-BFGS-B (scipy, :func:`minimize_hyperparameters`) over the log-hyperparameters within
    their bounds, gradients by torch autograd, Cholesky-based likelihood
    (``gpytorch.settings.max_cholesky_size`` raised past ``N``).
    ``hyper`` is updated in place, also when not converged.

    Returns:
        :class:`HyperFitResult`; ``converged`` is False when ``max_iter`` was reached.

    Raises:
        FitFailure: non-finite loss or a kernel matrix that is not positive definite.
    """
    model = BatchExactGP(x, y, hyper)
    model.train()
    mll = gpytorch.mlls.ExactMarginalLogLikelihood(hyper.likelihood, model)
    inputs = model.train_inputs[0]

    n = x.shape[0]

    def loss() -> Tensor:
        # gpytorch's marginal likelihood is per data point: the prior is scaled alike.
        with gpytorch.settings.max_cholesky_size(n + 1):
            value = -mll(model(inputs), y).sum()
        return value + hyper.neg_log_prior() / n if prior else value

    what = "posterior density" if prior else "marginal likelihood"
    return minimize_hyperparameters(hyper, loss, max_iter, gtol, what)


def add_points_exact(
    post: GPPosterior, x_new: Tensor, y_new: Tensor, y_old: Tensor, jitter: float = 1e-8
) -> tuple[GPPosterior, Tensor]:
    """Exact posterior after appending ``x_new (k, D)``, ``y_new (O, k)`` without refitting.

    Block update of the Cholesky factor ``L`` of ``K + s2 I`` and of ``F = L^-1`` in
    ``O(N^2 k)`` (no factorisation of the full matrix); hyperparameters are kept.
    ``y_old (O, N)`` are the current targets (residuals of the linear prior mean, if any: the
    posterior's mean is kept, so ``y_new`` must be residuals of it too).

    Returns:
        ``(posterior, y_all (O, N + k))``.

    Raises:
        ValueError: when the posterior has no Cholesky factor (a sparse one) or the new points
            make the kernel matrix singular.
    """
    if post.chol is None:
        raise ValueError("add_points_exact needs an exact posterior (with its Cholesky factor)")
    ell, sf2, s2 = post.lengthscale, post.outputscale, post.noise
    o = post.num_outputs
    z_new = x_new.unsqueeze(0).expand(o, -1, -1)
    k12 = kernel_matrix(post.kernel, post.inducing, z_new, ell, sf2)  # (O, N, k)
    k22 = kernel_matrix(post.kernel, z_new, z_new, ell, sf2)
    eye_k = torch.eye(x_new.shape[0], dtype=x_new.dtype, device=x_new.device)
    k22 = k22 + (s2.view(-1, 1, 1) + jitter) * eye_k
    # [[L, 0], [B^T, Lc]] with B = L^-1 K12 = F K12, Lc = chol(K22 - B^T B)
    b = post.factor @ k12
    lc, info = torch.linalg.cholesky_ex(k22 - b.transpose(-1, -2) @ b)
    if bool((info != 0).any()):
        raise ValueError("new points make the GP kernel matrix singular")
    lc_inv = torch.linalg.solve_triangular(lc, eye_k.expand_as(lc), upper=False)
    n, k = post.alpha.shape[1], x_new.shape[0]
    zeros = torch.zeros(o, n, k, dtype=b.dtype, device=b.device)
    chol = torch.cat(
        [torch.cat([post.chol, zeros], -1), torch.cat([b.transpose(-1, -2), lc], -1)], -2
    )
    lower_left = -lc_inv @ b.transpose(-1, -2) @ post.factor
    factor = torch.cat(
        [torch.cat([post.factor, zeros], -1), torch.cat([lower_left, lc_inv], -1)], -2
    )
    y_all = torch.cat([y_old, y_new], dim=1)
    alpha = (factor.transpose(-1, -2) @ (factor @ y_all.unsqueeze(-1))).squeeze(-1)
    z = torch.cat([post.inducing, z_new], dim=1)
    new = GPPosterior(post.kernel, z, alpha, factor, ell, sf2, s2, chol)
    return new.with_mean(post.mean_weight, post.mean_bias), y_all
