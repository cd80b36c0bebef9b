"""Uncertainty propagation through a GP at a Gaussian input, and Gaussian expectations.

* :func:`moment_match` -- exact mean, covariance and input-output covariance of the GP
  prediction at ``x ~ N(mu, Sigma)`` for the squared-exponential ARD kernel (PILCO;
  Deisenroth & Rasmussen 2011, Deisenroth 2010 sec. 2.3), vectorised over rows and outputs.
* :func:`linearize` -- EKF-style propagation with the Jacobian of the GP mean at ``mu``
  (any kernel).
* :func:`cubature_points` -- the ``2n`` spherical-cubature (unscented, kappa = 0) points of
  a Gaussian, used to take expectations of arbitrary reward functions under a Gaussian state.

All inputs/outputs live in the GP's normalised space; :class:`~mbrl.models.gp.model.GPDynamics`
maps them to and from observation space. Everything is differentiable w.r.t. ``mu``/``Sigma``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from mbrl.models.gp.core import GPPosterior, predict_with_jacobian


@dataclass(frozen=True)
class GaussianState:
    """A batch of Gaussian beliefs over the observation: a model state of ``M`` rows.

    Attributes:
        mean: ``(M, O)``.
        cov: ``(M, O, O)`` (symmetric positive semi-definite).
    """

    mean: Tensor
    cov: Tensor

    def __len__(self) -> int:
        return int(self.mean.shape[0])

    @classmethod
    def certain(cls, obs: Tensor) -> GaussianState:
        """A point mass at ``obs (M, O)`` (zero covariance)."""
        m, o = obs.shape
        return cls(obs, torch.zeros(m, o, o, dtype=obs.dtype, device=obs.device))


def moment_match(post: GPPosterior, mu: Tensor, sigma: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Exact moments of the GP output at a Gaussian input (SE kernel only).

    With ``x ~ N(mu, sigma)`` and ``f_a`` the latent GP of output ``a``, returns the mean and
    covariance of ``f(x)`` (latent: likelihood noise not included) and ``cov[x, f(x)]``.

    A linear prior mean ``f = W x + b + g(x)`` (``post.mean_weight``) is exact too: with
    ``C = cov[x, g(x)]`` (PILCO's input-output covariance of the kernel part ``g``),
    ``E[f] = W mu + b + E[g]``, ``cov[f] = W sigma W^T + W C + C^T W^T + cov[g]`` and
    ``cov[x, f] = sigma W^T + C``.
    Memory is ``O(M * O^2 * N^2)``: keep the number of (inducing) points ``N`` moderate.

    Args:
        post: GP posterior with ``kernel == "rbf"``.
        mu: input means ``(M, D)``.
        sigma: input covariances ``(M, D, D)``.

    Returns:
        ``mean (M, O)``, ``cov (M, O, O)``, ``input_output_cov (M, D, O)``.

    Raises:
        ValueError: for a kernel other than ``rbf``.
    """
    if post.kernel != "rbf":
        raise ValueError(
            f"moment matching is exact only for the squared-exponential kernel ('rbf'), "
            f"got kernel={post.kernel!r}; use linearization"
        )
    m_rows, d = mu.shape
    z, beta, ell2, sf2 = post.inducing, post.alpha, post.lengthscale.square(), post.outputscale
    eye_d = torch.eye(d, dtype=mu.dtype, device=mu.device)
    nu = z.unsqueeze(0) - mu[:, None, None, :]  # (M, O, N, D)
    # ---- mean and input-output covariance
    b = sigma.unsqueeze(1) + torch.diag_embed(ell2).unsqueeze(0)  # (M, O, D, D)
    t = torch.linalg.solve(b, nu.transpose(-1, -2)).transpose(-1, -2)  # (Sigma + L)^-1 nu
    logdet_c = torch.linalg.slogdet(b)[1] - ell2.log().sum(-1)  # log|Sigma L^-1 + I|
    log_q = sf2.log()[None, :, None] - 0.5 * logdet_c.unsqueeze(-1) - 0.5 * (nu * t).sum(-1)
    bq = beta.unsqueeze(0) * torch.exp(log_q)  # (M, O, N)
    mean = bq.sum(-1)
    v = (t * bq.unsqueeze(-1)).sum(-2)  # (M, O, D)
    io_cov = sigma @ v.transpose(-1, -2)  # (M, D, O)
    # ---- second moments E[f_a f_b]
    inv_l = 1.0 / ell2  # (O, D)
    ii = nu * inv_l[None, :, None, :]  # (M, O, N, D)
    log_k = sf2.log()[None, :, None] - 0.5 * (nu * ii).sum(-1)  # (M, O, N)
    pair = inv_l[:, None, :] + inv_l[None, :, :]  # (O, O, D)
    r = sigma[:, None, None] * pair[None, :, :, None, :] + eye_d  # Sigma diag(La^-1 + Lb^-1) + I
    tmat = torch.linalg.solve(r, sigma[:, None, None].expand_as(r))  # R^-1 Sigma (symmetric)
    tmat = 0.5 * (tmat + tmat.transpose(-1, -2))
    ia = ii.unsqueeze(2)  # (M, O, 1, N, D) output a
    ib = ii.unsqueeze(1)  # (M, 1, O, N, D) output b
    ia_t = ia @ tmat  # (M, O, O, N, D)
    quad_a = (ia_t * ia).sum(-1)
    quad_b = ((ib @ tmat) * ib).sum(-1)
    cross = ia_t @ ib.transpose(-1, -2)  # (M, O, O, N, N)
    log_qm = (
        log_k[:, :, None, :, None]
        + log_k[:, None, :, None, :]
        + 0.5 * (quad_a.unsqueeze(-1) + quad_b.unsqueeze(-2) + 2.0 * cross)
        - 0.5 * torch.linalg.slogdet(r)[1][..., None, None]
    )
    qm = torch.exp(log_qm)  # E[k_a(x, z_i) k_b(x, z_j)]
    second = torch.einsum("an,mabnk,bk->mab", beta, qm, beta)
    cov = second - mean.unsqueeze(-1) * mean.unsqueeze(-2)
    qm_aa = torch.diagonal(qm, dim1=1, dim2=2).permute(0, 3, 1, 2)  # (M, O, N, N)
    expected_var = sf2.unsqueeze(0) - (post.q.unsqueeze(0) * qm_aa).sum((-1, -2))
    cov = cov + torch.diag_embed(expected_var)
    prior = post.prior_mean(mu)
    if prior is not None:
        w_t = post.mean_weight.transpose(0, 1)  # (D, O)
        lin_io = sigma @ w_t  # cov[x, W x] (M, D, O)
        w_io = w_t.transpose(0, 1) @ io_cov  # cov[W x, g(x)] (M, O, O)
        cov = cov + w_t.transpose(0, 1) @ lin_io + w_io + w_io.transpose(-1, -2)
        mean, io_cov = mean + prior, io_cov + lin_io
    cov = 0.5 * (cov + cov.transpose(-1, -2))
    return mean, cov, io_cov


def linearize(post: GPPosterior, mu: Tensor, sigma: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Linearised (EKF) moments of the GP output at ``x ~ N(mu (M, D), sigma (M, D, D))``.

    ``mean = m(mu)``, ``cov = J sigma J^T + diag(var(mu))``, ``cov[x, f] = sigma J^T`` with
    ``J = dm/dx (mu)``; works with every kernel.

    Returns:
        ``mean (M, O)``, ``cov (M, O, O)``, ``input_output_cov (M, D, O)`` (latent, no noise).
    """
    mean, var, jac = predict_with_jacobian(post, mu)
    io_cov = sigma @ jac.transpose(-1, -2)  # (M, D, O)
    cov = jac @ io_cov + torch.diag_embed(var)
    cov = 0.5 * (cov + cov.transpose(-1, -2))
    return mean, cov, io_cov


def cubature_points(
    mean: Tensor, cov: Tensor, jitter: float = 1e-9, floor: float = 1e-12
) -> Tensor:
    """The ``2n`` cubature points of ``N(mean (M, n), cov (M, n, n))``: ``(2n, M, n)``.

    Points ``mean +- sqrt(n) L[:, i]`` (``L`` the Cholesky factor of ``cov``), each with weight
    ``1 / (2n)``: their mean of ``f`` is exact for polynomials of degree three and a good
    approximation for smooth ``f`` (Arasaratnam & Haykin 2009). ``cov`` gets a diagonal
    jitter (``jitter`` times its mean variance, plus ``floor``); a covariance that rounding
    made slightly indefinite is shifted by its most negative eigenvalue (a constant, so
    gradients stay those of the Cholesky factor).
    """
    n = mean.shape[-1]
    eye = torch.eye(n, dtype=cov.dtype, device=cov.device)
    with torch.no_grad():
        scale = cov.diagonal(dim1=-2, dim2=-1).mean(-1).abs()
        shift = (jitter * scale + floor).view(-1, 1, 1)
    chol, info = torch.linalg.cholesky_ex(cov + shift * eye)
    if bool((info != 0).any()):
        with torch.no_grad():
            lam = torch.linalg.eigvalsh(cov + shift * eye)[..., :1]
            shift = shift + 2.0 * (-lam).clamp_min(0.0).unsqueeze(-1) + floor
        chol = torch.linalg.cholesky(cov + shift * eye)
    offsets = ((n**0.5) * chol.transpose(-1, -2)).transpose(0, 1)  # (n, M, n): scaled columns
    centre = mean.unsqueeze(0)
    return torch.cat([centre + offsets, centre - offsets], dim=0)
