"""Closed-form GP posteriors in plain torch: kernels, predictive moments and mean Jacobians.

Both fitting paths of :class:`~mbrl.models.gp.model.GPDynamics` (exact marginal likelihood and the
sparse variational GP) end in the same :class:`GPPosterior`, a set of tensors for ``O``
independent GPs over ``D`` normalised inputs::

    mean_o(x) = w_o . x + b_o + k_o(x, Z_o) @ alpha_o                    (latent mean)
    var_o(x)  = s_o - k Q k^T = s_o - |F_o k|^2                          (latent variance)

with an optional linear prior mean ``w_o . x + b_o`` (``GPPosterior.mean_weight`` /
``mean_bias``; zero when absent) whose residual the kernel part models;

* exact GP: ``Z = X`` (training inputs), ``alpha = (K + s2 I)^-1 y``,
  ``Q = (K + s2 I)^-1 = F^T F`` with ``F = L^-1`` (``L`` its Cholesky factor);
* sparse GP with the optimal (Titsias/SGPR) ``q(u)`` for inducing points ``Z``:
  ``Sigma = (Kzz + Kzx Kxz / s2)^-1``, ``alpha = Sigma Kzx y / s2``, ``Q = Kzz^-1 - Sigma``
  ``= W^T (I - B^-1) W`` with ``W = Lz^-1`` and ``B = I + W Kzx Kxz W^T / s2 = V diag(l) V^T``,
  so ``F = diag(sqrt(1 - 1 / l)) V^T W``.

The variance is evaluated through the triangular factors rather than ``Q``: with a large
signal-to-noise ratio ``Q`` has entries ~``1 / s2`` and ``s - k Q k^T`` would lose most
digits (noisy gradients in planning); ``|F k|^2`` stays accurate.

Every function here is differentiable with respect to the test inputs (planners take
gradients through them); the posterior tensors themselves are constants (fitted, detached).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field, fields

import torch
import torch.nn.functional as F
from torch import Tensor

KERNELS = ("rbf", "matern32", "matern52")
"""Supported kernels: squared exponential (ARD) and Matern 3/2, 5/2 (ARD), each scaled."""

_MIN_VAR = 1e-12
_R_EPS = 1e-12  # keeps sqrt(r^2) differentiable at r = 0 (Matern kernels)


def check_kernel(kernel: str) -> None:
    """Raise ``ValueError`` unless ``kernel`` is one of :data:`KERNELS`."""
    if kernel not in KERNELS:
        raise ValueError(f"kernel must be one of {KERNELS}, got {kernel!r}")


@dataclass(frozen=True)
class GPPosterior:
    """Posterior of ``O`` independent GPs in the normalised input/output space.

    Attributes:
        kernel: ``rbf``, ``matern32`` or ``matern52``.
        inducing: ``Z (O, N, D)`` training inputs (exact) or inducing inputs (sparse).
        alpha: posterior weights ``(O, N)`` (PILCO's ``beta``).
        factor: ``F (O, N, N)`` with ``var = s - |F k|^2`` (``Q = F^T F``).
        lengthscale: ARD lengthscales ``(O, D)``.
        outputscale: signal variances ``s (O,)``.
        noise: likelihood noise variances ``(O,)``.
        chol: Cholesky factor ``L (O, N, N)`` of ``K + s2 I`` (exact; for rank updates) or
            ``None``.
        mean_weight: weights ``W (O, D)`` of the linear prior mean ``W x + b`` or ``None``
            (zero prior mean); ``alpha`` then weights the residual ``y - W x - b``.
        mean_bias: its offsets ``b (O,)`` (``None`` exactly when ``mean_weight`` is).
        q: ``Q = F^T F (O, N, N)`` (derived; moment matching uses it).
    """

    kernel: str
    inducing: Tensor
    alpha: Tensor
    factor: Tensor
    lengthscale: Tensor
    outputscale: Tensor
    noise: Tensor
    chol: Tensor | None = None
    mean_weight: Tensor | None = None
    mean_bias: Tensor | None = None
    q: Tensor = field(init=False, repr=False)
    scaled_inducing: Tensor = field(init=False, repr=False)
    scaled_sqnorm: Tensor = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if (self.mean_weight is None) != (self.mean_bias is None):
            raise ValueError("mean_weight and mean_bias must be given together (or both None)")
        q = self.factor.transpose(-1, -2) @ self.factor
        object.__setattr__(self, "q", 0.5 * (q + q.transpose(-1, -2)))
        # Cached for prediction: Z / l (O, N, D) and its squared norms (O, N).
        zs = self.inducing / self.lengthscale.unsqueeze(1)
        object.__setattr__(self, "scaled_inducing", zs)
        object.__setattr__(self, "scaled_sqnorm", zs.square().sum(-1))

    @property
    def num_outputs(self) -> int:
        """Number of outputs ``O``."""
        return int(self.alpha.shape[0])

    @property
    def input_dim(self) -> int:
        """Input size ``D``."""
        return int(self.inducing.shape[-1])

    @property
    def dtype(self) -> torch.dtype:
        """Floating dtype of the posterior tensors."""
        return self.alpha.dtype

    def prior_mean(self, x: Tensor) -> Tensor | None:
        """Linear prior mean ``W x + b`` at ``x (M, D)``: ``(M, O)``, or ``None`` (zero mean)."""
        if self.mean_weight is None:
            return None
        return x @ self.mean_weight.transpose(0, 1) + self.mean_bias

    def with_mean(self, weight: Tensor | None, bias: Tensor | None) -> GPPosterior:
        """The same kernel posterior with the linear prior mean ``(W (O, D), b (O,))`` (or none)."""
        return dataclasses.replace(self, mean_weight=weight, mean_bias=bias)

    def to(self, device: torch.device | str) -> GPPosterior:
        """The same posterior with every tensor on ``device``."""
        values = {f.name: getattr(self, f.name) for f in fields(self) if f.init}
        return GPPosterior(
            **{k: v.to(device) if isinstance(v, Tensor) else v for k, v in values.items()}
        )


def scaled_sqdist(x: Tensor, z: Tensor, lengthscale: Tensor) -> Tensor:
    """Squared distances ``||(x - z) / l||^2`` per output: ``x (M, D)``, ``z (O, N, D)`` -> ``(O, M, N)``."""
    xs = x.unsqueeze(0) / lengthscale.unsqueeze(1)  # (O, M, D)
    zs = z / lengthscale.unsqueeze(1)  # (O, N, D)
    r2 = (
        xs.square().sum(-1, keepdim=True)
        + zs.square().sum(-1).unsqueeze(1)
        - 2.0 * xs @ zs.transpose(-1, -2)
    )
    return r2.clamp_min(0.0)


def kernel_from_sqdist(kernel: str, r2: Tensor, outputscale: Tensor) -> Tensor:
    """Kernel values from squared scaled distances ``r2 (O, ...)`` and ``outputscale (O,)``."""
    scale = outputscale.view(-1, *([1] * (r2.ndim - 1)))
    if kernel == "rbf":
        return scale * torch.exp(-0.5 * r2)
    r = torch.sqrt(r2 + _R_EPS)
    if kernel == "matern32":
        s3r = math.sqrt(3.0) * r
        return scale * (1.0 + s3r) * torch.exp(-s3r)
    if kernel == "matern52":
        s5r = math.sqrt(5.0) * r
        return scale * (1.0 + s5r + (5.0 / 3.0) * r2) * torch.exp(-s5r)
    raise ValueError(f"kernel must be one of {KERNELS}, got {kernel!r}")


def _grad_factor(kernel: str, r2: Tensor, outputscale: Tensor, k: Tensor) -> Tensor:
    """``g`` with ``dk(x, z)/dx = g * (x - z) / l^2`` (elementwise over ``r2 (O, M, N)``)."""
    if kernel == "rbf":
        return -k
    scale = outputscale.view(-1, 1, 1)
    r = torch.sqrt(r2 + _R_EPS)
    if kernel == "matern32":
        return -3.0 * scale * torch.exp(-math.sqrt(3.0) * r)
    s5r = math.sqrt(5.0) * r
    return -(5.0 / 3.0) * scale * (1.0 + s5r) * torch.exp(-s5r)


def kernel_matrix(
    kernel: str, x: Tensor, z: Tensor, lengthscale: Tensor, outputscale: Tensor
) -> Tensor:
    """Cross-covariances ``k(x, z)``: ``x (O, M, D)`` or ``(M, D)``, ``z (O, N, D)`` -> ``(O, M, N)``."""
    if x.ndim == 2:
        r2 = scaled_sqdist(x, z, lengthscale)
    else:
        xs = x / lengthscale.unsqueeze(1)
        zs = z / lengthscale.unsqueeze(1)
        r2 = (
            xs.square().sum(-1, keepdim=True)
            + zs.square().sum(-1).unsqueeze(1)
            - 2.0 * xs @ zs.transpose(-1, -2)
        ).clamp_min(0.0)
    return kernel_from_sqdist(kernel, r2, outputscale)


def _cross_kernel(post: GPPosterior, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """``(xs (O, M, D), r2 (O, M, N), k (O, M, N))`` at test inputs ``x (M, D)``."""
    xs = x.unsqueeze(0) / post.lengthscale.unsqueeze(1)
    r2 = (
        xs.square().sum(-1, keepdim=True)
        + post.scaled_sqnorm.unsqueeze(1)
        - 2.0 * xs @ post.scaled_inducing.transpose(-1, -2)
    ).clamp_min(0.0)
    return xs, r2, kernel_from_sqdist(post.kernel, r2, post.outputscale)


def _latent_var(post: GPPosterior, k: Tensor) -> Tensor:
    """``s - |F k|^2`` for cross-covariances ``k (O, M, N)``: ``(O, M)``, >= 1e-12."""
    var = post.outputscale.unsqueeze(-1) - (k @ post.factor.transpose(-1, -2)).square().sum(-1)
    return var.clamp_min(_MIN_VAR)


def predict_latent(post: GPPosterior, x: Tensor) -> tuple[Tensor, Tensor]:
    """Latent predictive moments at ``x (M, D)``: ``mean (M, O)``, ``var (M, O)`` (no noise)."""
    _, _, k = _cross_kernel(post, x)  # (O, M, N)
    mean = (k @ post.alpha.unsqueeze(-1)).squeeze(-1).transpose(0, 1)  # (M, O)
    prior = post.prior_mean(x)
    if prior is not None:
        mean = mean + prior
    return mean, _latent_var(post, k).transpose(0, 1)


def predict_with_jacobian(post: GPPosterior, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Latent ``mean (M, O)``, ``var (M, O)`` and mean Jacobian ``d mean / d x (M, O, D)`` at ``x (M, D)``."""
    xs, r2, k = _cross_kernel(post, x)
    mean = (k @ post.alpha.unsqueeze(-1)).squeeze(-1)
    var = _latent_var(post, k)
    # dk/dx = g (x - z) / l^2 = g (xs - zs) / l
    w = _grad_factor(post.kernel, r2, post.outputscale, k) * post.alpha.unsqueeze(1)  # (O, M, N)
    jac = (xs * w.sum(-1, keepdim=True) - w @ post.scaled_inducing) / post.lengthscale.unsqueeze(1)
    mean, jac = mean.transpose(0, 1), jac.transpose(0, 1)
    prior = post.prior_mean(x)
    if prior is not None:
        mean, jac = mean + prior, jac + post.mean_weight
    return mean, var.transpose(0, 1), jac


def exact_posterior(
    kernel: str,
    x: Tensor,
    y: Tensor,
    lengthscale: Tensor,
    outputscale: Tensor,
    noise: Tensor,
    jitter: float = 1e-8,
) -> GPPosterior:
    """Exact GP posterior from training inputs ``x (N, D)``, targets ``y (O, N)`` and hyperparameters.

    ``lengthscale (O, D)``, ``outputscale (O,)``, ``noise (O,)``; ``jitter`` is added to the
    diagonal on top of the noise.

    Raises:
        ValueError: when the kernel matrix is not positive definite (degenerate hyperparameters).
    """
    o = y.shape[0]
    z = x.unsqueeze(0).expand(o, -1, -1)
    kmat = kernel_matrix(kernel, z, z, lengthscale, outputscale)
    eye = torch.eye(x.shape[0], dtype=x.dtype, device=x.device)
    kmat = kmat + (noise.view(-1, 1, 1) + jitter) * eye
    chol, info = torch.linalg.cholesky_ex(kmat)
    if bool((info != 0).any()):
        raise ValueError(
            "the GP kernel matrix is not positive definite; hyperparameters degenerate"
        )
    alpha = torch.cholesky_solve(y.unsqueeze(-1), chol).squeeze(-1)
    factor = torch.linalg.solve_triangular(chol, eye.expand_as(chol), upper=False)
    return GPPosterior(kernel, z, alpha, factor, lengthscale, outputscale, noise, chol)


def _whitener(
    kernel: str, inducing: Tensor, lengthscale: Tensor, outputscale: Tensor, jitter: float
) -> Tensor:
    """``W = Lz^-1 (O, Z, Z)`` with ``Lz`` the Cholesky factor of ``Kzz + jitter * s * I``.

    Raises:
        ValueError: when ``Kzz`` is not positive definite.
    """
    eye = torch.eye(inducing.shape[1], dtype=inducing.dtype, device=inducing.device)
    kzz = kernel_matrix(kernel, inducing, inducing, lengthscale, outputscale)
    kzz = kzz + (jitter * outputscale.view(-1, 1, 1)) * eye
    lz, info = torch.linalg.cholesky_ex(kzz)
    if bool((info != 0).any()):
        raise ValueError("the inducing-point kernel matrix is not positive definite")
    return torch.linalg.solve_triangular(lz, eye.expand_as(lz), upper=False)


def sparse_statistics(
    kernel: str,
    inducing: Tensor,
    x: Tensor,
    y: Tensor,
    lengthscale: Tensor,
    outputscale: Tensor,
    jitter: float = 1e-6,
    chunk: int = 4096,
) -> tuple[Tensor, Tensor]:
    """Whitened sufficient statistics of ``x (N, D)``, ``y (O, N)`` for inducing points ``Z``.

    With ``P = W Kzx`` (``W = Lz^-1``, see :func:`sparse_posterior`): ``(P P^T (O, Z, Z),
    P y (O, Z))``. Whitening before summing keeps ``I + P P^T / s2`` positive definite in
    floating point (forming ``Kzx Kxz`` first and whitening afterwards does not at a high
    signal-to-noise ratio). Computed in chunks of ``chunk`` rows; new data only adds its own
    statistics (the cheap update of the sparse path) as long as the hyperparameters are fixed.
    """
    whiten = _whitener(kernel, inducing, lengthscale, outputscale, jitter)
    o, n_z, _ = inducing.shape
    stat_a = torch.zeros(o, n_z, n_z, dtype=x.dtype, device=x.device)
    stat_b = torch.zeros(o, n_z, dtype=x.dtype, device=x.device)
    for start in range(0, x.shape[0], chunk):
        xc = x[start : start + chunk]
        kxz = kernel_from_sqdist(kernel, scaled_sqdist(xc, inducing, lengthscale), outputscale)
        proj = whiten @ kxz.transpose(-1, -2)  # (O, Z, chunk)
        stat_a = stat_a + proj @ proj.transpose(-1, -2)
        stat_b = stat_b + (proj @ y[:, start : start + chunk].unsqueeze(-1)).squeeze(-1)
    return stat_a, stat_b


def sparse_posterior(
    kernel: str,
    inducing: Tensor,
    stat_a: Tensor,
    stat_b: Tensor,
    lengthscale: Tensor,
    outputscale: Tensor,
    noise: Tensor,
    jitter: float = 1e-6,
) -> GPPosterior:
    """Sparse GP posterior with the optimal ``q(u)`` (SGPR / DTC predictive; Titsias 2009).

    With ``W = Lz^-1`` and ``B = I + P P^T / s2 = V diag(l) V^T``: ``alpha = W^T B^-1 P y / s2``
    and ``Q = Kzz^-1 - (Kzz + Kzx Kxz / s2)^-1 = W^T (I - B^-1) W = F^T F`` with
    ``F = diag(sqrt(1 - 1/l)) V^T W``.

    Args:
        kernel: kernel name.
        inducing: ``Z (O, Z, D)``.
        stat_a / stat_b: whitened statistics ``(O, Z, Z)``, ``(O, Z)`` from
            :func:`sparse_statistics` (same hyperparameters and ``jitter``).
        lengthscale / outputscale / noise: hyperparameters ``(O, D)``, ``(O,)``, ``(O,)``.
        jitter: relative diagonal jitter on ``Kzz``.

    Raises:
        ValueError: when ``Kzz`` or the posterior precision is not positive definite.
    """
    whiten = _whitener(kernel, inducing, lengthscale, outputscale, jitter)
    eye = torch.eye(inducing.shape[1], dtype=inducing.dtype, device=inducing.device)
    a_tilde = stat_a / noise.view(-1, 1, 1)
    bmat = eye + 0.5 * (a_tilde + a_tilde.transpose(-1, -2))
    evals, evecs = torch.linalg.eigh(bmat)  # B = V diag(l) V^T, l >= 1
    if not bool(torch.isfinite(evals).all()) or bool((evals < 0.5).any()):
        raise ValueError("the sparse GP posterior precision is not positive definite")
    proj = evecs.transpose(-1, -2) @ whiten  # V^T W
    factor = (1.0 - 1.0 / evals).clamp_min(0.0).sqrt().unsqueeze(-1) * proj
    coef = (evecs.transpose(-1, -2) @ stat_b.unsqueeze(-1)) / evals.unsqueeze(-1)  # l^-1 V^T P y
    alpha = (proj.transpose(-1, -2) @ coef).squeeze(-1) / noise.unsqueeze(-1)
    return GPPosterior(kernel, inducing, alpha, factor, lengthscale, outputscale, noise)


def kmeans(
    x: Tensor, k: int, generator: torch.Generator | None = None, iterations: int = 15
) -> Tensor:
    """``k`` cluster centres ``(k, D)`` of ``x (N, D)`` by Lloyd's algorithm from a k-means++ start.

    k-means++ seeding (Arthur & Vassilvitskii 2007: each next centre drawn with probability
    proportional to its squared distance from the chosen ones) spreads the start over the data,
    so few Lloyd iterations suffice. Empty clusters keep their previous centre. With
    ``k >= N`` returns ``x`` itself.
    """
    n = x.shape[0]
    if k >= n:
        return x.clone()
    gen_device = generator.device if generator is not None else x.device
    first = int(torch.randint(0, n, (1,), generator=generator, device=gen_device))
    chosen = [first]
    d2 = (x - x[first]).square().sum(-1)
    for _ in range(1, k):
        weights = d2.clamp_min(0.0).to(gen_device)
        if float(weights.sum()) <= 0:  # fewer distinct points than k: any point will do
            weights = torch.ones_like(weights)
        pick = int(torch.multinomial(weights, 1, generator=generator))
        chosen.append(pick)
        d2 = torch.minimum(d2, (x - x[pick]).square().sum(-1))
    centres = x[torch.tensor(chosen, device=x.device)].clone()
    for _ in range(iterations):
        assign = torch.cdist(x, centres).argmin(1)
        sums = torch.zeros_like(centres).index_add_(0, assign, x)
        counts = torch.bincount(assign, minlength=k).to(x.dtype).unsqueeze(1)
        centres = torch.where(counts > 0, sums / counts.clamp_min(1.0), centres)
    return centres


def greedy_variance(
    kernel: str, x: Tensor, k: int, lengthscale: Tensor, outputscale: Tensor
) -> Tensor:
    """``k`` inducing inputs per output chosen from ``x (N, D)`` by greedy conditional variance.

    Burt, Rasmussen & van der Wilk (2020): repeatedly add the point whose prior variance given
    the points chosen so far is largest (a pivoted Cholesky factorisation of ``K``, ``O(N k^2)``
    per output). The points spread where the kernel -- with these hyperparameters -- sees
    structure, and the Nystrom error ``tr(K - Q)`` that the sparse bound pays shrinks greedily.
    Deterministic (ties go to the first candidate).

    Args:
        kernel: kernel name; x: candidates ``(N, D)``; k: points per output (at most ``N``).
        lengthscale / outputscale: ``(O, D)``, ``(O,)``.

    Returns:
        ``Z (O, min(k, N), D)``, distinct rows of ``x`` per output.
    """
    n = x.shape[0]
    o = lengthscale.shape[0]
    k = min(k, n)
    rows = torch.arange(o, device=x.device)
    xz = x.unsqueeze(0).expand(o, -1, -1)
    diag = outputscale.unsqueeze(-1).expand(o, n).clone()  # residual variances (O, N)
    factor = torch.zeros(o, k, n, dtype=x.dtype, device=x.device)  # rows: columns of L
    chosen = torch.zeros(o, k, dtype=torch.long, device=x.device)
    for m in range(k):
        best = diag.argmax(-1)  # (O,)
        chosen[:, m] = best
        col = kernel_matrix(kernel, x[best].unsqueeze(1), xz, lengthscale, outputscale)[:, 0]
        if m > 0:
            col = col - (factor[rows, :m, best].unsqueeze(1) @ factor[:, :m]).squeeze(1)
        new = col / diag[rows, best].clamp_min(1e-300).sqrt().unsqueeze(-1)
        factor[:, m] = new
        diag = (diag - new.square()).clamp_min(0.0)
        diag[rows, best] = -1.0  # never chosen twice
    return x[chosen]


def _weighted_ridge(x: Tensor, y: Tensor, weight: Tensor, ridge: float) -> Tensor:
    """Per-output weighted ridge fit of ``y (O, N)`` on ``[x, 1]`` (``x (N, D)``, ``weight (O, N)``).

    Returns ``beta (O, D + 1)`` (the offset, last, is not penalised).
    """
    n, d = x.shape
    xa = torch.cat([x, torch.ones(n, 1, dtype=x.dtype, device=x.device)], 1)  # (N, D + 1)
    penalty = torch.eye(d + 1, dtype=x.dtype, device=x.device) * (ridge * n)
    penalty[d, d] = 0.0
    gram = torch.einsum("on,nd,ne->ode", weight, xa, xa) + penalty  # (O, D + 1, D + 1)
    rhs = (weight * y) @ xa  # (O, D + 1)
    return torch.linalg.solve(gram, rhs.unsqueeze(-1)).squeeze(-1)


def fit_linear_mean(
    x: Tensor, y: Tensor, ridge: float, robust: bool = False, iterations: int = 10
) -> tuple[Tensor, Tensor]:
    """Ridge least-squares linear prior mean ``y ~ W x + b`` of ``x (N, D)``, ``y (O, N)``.

    Minimises ``|y - W x - b|^2 + ridge * N * |W|^2`` per output (the offset is not
    penalised). With ``robust``, iteratively reweighted least squares replaces the squared
    loss: ``iterations`` Huber steps (``c = 1.345``) and then as many Tukey-bisquare steps
    (``c = 4.685``, redescending: gross outliers such as readings clipped at a detector's
    range get weight zero), the residual scale per output from its median absolute deviation.

    Returns:
        ``W (O, D)``, ``b (O,)``.
    """
    weight = torch.ones_like(y)
    beta = _weighted_ridge(x, y, weight, ridge)
    if robust:
        xa = F.pad(x, (0, 1), value=1.0)
        for step in range(2 * iterations):
            resid = (y - beta @ xa.transpose(0, 1)).abs()
            scale = resid.median(1, keepdim=True).values / 0.6745
            scale = scale.clamp_min(1e-6 * y.abs().amax(1, keepdim=True).clamp_min(1e-12))
            if step < iterations:  # Huber: a convex start for the redescending steps
                weight = (1.345 * scale / resid.clamp_min(1e-300)).clamp_max(1.0)
            else:
                weight = (1.0 - (resid / (4.685 * scale)).square()).clamp_min(0.0).square()
            beta = _weighted_ridge(x, y, weight, ridge)
    return beta[:, :-1], beta[:, -1]
