"""Uncertainty propagation through a GP at a Gaussian input, and Gaussian expectations.

* :func:`moment_match` -- exact mean, covariance and input-output covariance of the GP
  prediction at ``x ~ N(mu, Sigma)`` for the squared-exponential ARD kernel (PILCO;
  Deisenroth & Rasmussen 2011, Deisenroth 2010 sec. 2.3), vectorised over rows and outputs.
* :func:`moment_match_gain` -- the same with the input-output covariance as a gain
  ``sigma^-1 cov[x, f]`` (chains through input features and policies, as in PILCO), and
  optionally without the posterior variance (the moments of a GP *mean* function: PILCO's RBF
  policy).
* :func:`trig_moments`, :func:`sine_saturation`, :func:`feature_moments` -- exact moments of
  sines / cosines of a Gaussian: angle inputs ``(sin, cos)`` of a GP with ``angle_dims`` and
  PILCO's sine saturation of a policy's output.
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
    mean, cov, gain = moment_match_gain(post, mu, sigma)
    return mean, cov, sigma @ gain


def moment_match_gain(
    post: GPPosterior, mu: Tensor, sigma: Tensor, latent_variance: bool = True
) -> tuple[Tensor, Tensor, Tensor]:
    """:func:`moment_match` with the input-output covariance as a gain: ``cov[x, f] = sigma @ gain``.

    The gain ``(M, D, O)`` (PILCO's ``V``; ``sigma^-1 cov[x, f]`` without inverting ``sigma``)
    is what chains moment-matched maps: when ``x`` itself is a function of a Gaussian ``s``
    with ``cov[s, x] = cov_s @ G``, the Gaussian approximation of the joint gives
    ``cov[s, f] = cov_s @ G @ gain``. It stays finite for a singular ``sigma`` (a point mass).

    Args:
        post: GP posterior with ``kernel == "rbf"``.
        mu: input means ``(M, D)``.
        sigma: input covariances ``(M, D, D)``.
        latent_variance: add the expected posterior variance ``E[var f(x)]`` to the covariance
            (default True: the moments of the GP's prediction). False gives the moments of the
            posterior *mean* function ``m(x)`` alone: a deterministic RBF network such as
            PILCO's RBF policy (``alpha`` its weights, ``inducing`` its centres).

    Returns:
        ``mean (M, O)``, ``cov (M, O, O)``, ``gain (M, D, O)``.

    Raises:
        ValueError: for a kernel other than ``rbf``.
    """
    if post.kernel != "rbf":
        raise ValueError(
            f"moment matching is exact only for the squared-exponential kernel ('rbf'), "
            f"got kernel={post.kernel!r}; use linearization"
        )
    z, beta, ell2, sf2 = post.inducing, post.alpha, post.lengthscale.square(), post.outputscale
    nu = z.unsqueeze(0) - mu[:, None, None, :]  # (M, O, N, D)
    # ---- mean and input-output gain
    b = sigma.unsqueeze(1) + torch.diag_embed(ell2).unsqueeze(0)  # (M, O, D, D)
    t = torch.linalg.solve(b, nu.transpose(-1, -2)).transpose(-1, -2)  # (Sigma + L)^-1 nu
    logdet_c = torch.linalg.slogdet(b)[1] - ell2.log().sum(-1)  # log|Sigma L^-1 + I|
    log_q = sf2.log()[None, :, None] - 0.5 * logdet_c.unsqueeze(-1) - 0.5 * (nu * t).sum(-1)
    bq = beta.unsqueeze(0) * torch.exp(log_q)  # (M, O, N)
    mean = bq.sum(-1)
    gain = (t * bq.unsqueeze(-1)).sum(-2).transpose(-1, -2)  # (M, D, O)
    # ---- second moments E[f_a f_b]: the pairs a = b and a < b apart (symmetry halves the
    # work; the variance term needs the a = b pairs alone, without indexing a big tensor)
    o = beta.shape[0]
    inv_l = 1.0 / ell2  # (O, D)
    ii = nu * inv_l[None, :, None, :]  # (M, O, N, D)
    log_k = sf2.log()[None, :, None] - 0.5 * (nu * ii).sum(-1)  # (M, O, N)
    same = torch.arange(o, device=mu.device)
    qm_aa = _pair_kernel_moments(sigma, inv_l, ii, log_k, same, same)  # (M, O, N, N)
    second = torch.diag_embed(torch.einsum("an,mank,ak->ma", beta, qm_aa, beta))
    if o > 1:
        pa, pb = torch.triu_indices(o, o, offset=1, device=mu.device)  # (P,)
        qm_ab = _pair_kernel_moments(sigma, inv_l, ii, log_k, pa, pb)  # (M, P, N, N)
        off = torch.einsum("pn,mpnk,pk->mp", beta[pa], qm_ab, beta[pb])
        upper = torch.zeros_like(second)
        upper[:, pa, pb] = off
        second = second + upper + upper.transpose(-1, -2)
    cov = second - mean.unsqueeze(-1) * mean.unsqueeze(-2)
    if latent_variance:
        expected_var = sf2.unsqueeze(0) - torch.einsum("onk,monk->mo", post.q, qm_aa)
        cov = cov + torch.diag_embed(expected_var)
    prior = post.prior_mean(mu)
    if prior is not None:
        w = post.mean_weight  # (O, D)
        w_io = w @ sigma @ gain  # cov[W x, g(x)] (M, O, O)
        cov = cov + w @ sigma @ w.transpose(0, 1) + w_io + w_io.transpose(-1, -2)
        mean, gain = mean + prior, gain + w.transpose(0, 1)
    cov = 0.5 * (cov + cov.transpose(-1, -2))
    return mean, cov, gain


def _pair_kernel_moments(
    sigma: Tensor, inv_l: Tensor, ii: Tensor, log_k: Tensor, pa: Tensor, pb: Tensor
) -> Tensor:
    """``E[k_a(x, z_i) k_b(x, z_j)] (M, P, N, N)`` at ``x ~ N(mu, sigma (M, D, D))`` for the
    output pairs ``(pa[p], pb[p])``, given ``inv_l = 1 / ell^2 (O, D)``,
    ``ii = (z - mu) / ell^2 (M, O, N, D)`` and ``log_k = log k(mu, z) (M, O, N)``."""
    eye_d = torch.eye(sigma.shape[-1], dtype=sigma.dtype, device=sigma.device)
    pair = inv_l[pa] + inv_l[pb]  # (P, D)
    r = sigma[:, None] * pair[None, :, None, :] + eye_d  # Sigma diag(La^-1 + Lb^-1) + I
    tmat = torch.linalg.solve(r, sigma[:, None].expand_as(r))  # R^-1 Sigma (symmetric)
    tmat = 0.5 * (tmat + tmat.transpose(-1, -2))
    ia, ib = ii[:, pa], ii[:, pb]  # (M, P, N, D)
    ia_t = ia @ tmat
    quarter_logdet = 0.25 * torch.linalg.slogdet(r)[1].unsqueeze(-1)  # (M, P, 1)
    row = log_k[:, pa] + 0.5 * (ia_t * ia).sum(-1) - quarter_logdet  # (M, P, N)
    col = log_k[:, pb] + 0.5 * ((ib @ tmat) * ib).sum(-1) - quarter_logdet
    # The exponent row_i + col_j + ia_t_i . ib_j as one matmul of augmented factors: the
    # (N, N) tensor is built once, without broadcast temporaries.
    ones = torch.ones_like(row).unsqueeze(-1)
    left = torch.cat([ia_t, row.unsqueeze(-1), ones], -1)  # (M, P, N, D + 2)
    right = torch.cat([ib, ones, col.unsqueeze(-1)], -1)
    return torch.exp(left @ right.transpose(-1, -2))


def trig_moments(
    mean: Tensor, cov: Tensor, freq: Tensor, phase: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """Exact moments of ``t_k = sin(freq_k . x + phase_k)`` for Gaussian ``x ~ N(mean, cov)``.

    ``cos`` is the phase ``pi / 2``. With ``p = freq x + phase`` (mean ``mu``, covariance
    ``C``): ``E[sin p_k] = exp(-C_kk / 2) sin mu_k`` and
    ``cov[t_k, t_l] = exp(-(C_kk + C_ll) / 2) (cos mu_k cos mu_l sinh C_kl
    + sin mu_k sin mu_l (cosh C_kl - 1))`` (products of sines as cosines of sums and
    differences; the form is zero for ``C = 0`` without cancellation), and by Stein's lemma
    ``cov[x, t] = cov @ gain`` with ``gain[:, k] = freq_k E[cos p_k]``. Used for angle features
    (``sin``, ``cos`` of an angle) and PILCO's sine saturation of a policy.

    Args:
        mean: ``(M, n)``; cov: ``(M, n, n)``.
        freq: ``(K, n)`` (rows of the linear maps); phase: ``(K,)``.

    Returns:
        ``t_mean (M, K)``, ``t_cov (M, K, K)``, ``gain (M, n, K)``.
    """
    mu = mean @ freq.transpose(0, 1) + phase  # (M, K)
    c = freq @ cov @ freq.transpose(0, 1)  # (M, K, K)
    var = c.diagonal(dim1=-2, dim2=-1)
    damp = torch.exp(-0.5 * var)
    sin, cos = torch.sin(mu), torch.cos(mu)
    t_mean = damp * sin
    outer = damp.unsqueeze(-1) * damp.unsqueeze(-2)
    t_cov = outer * (
        cos.unsqueeze(-1) * cos.unsqueeze(-2) * torch.sinh(c)
        + sin.unsqueeze(-1) * sin.unsqueeze(-2) * 2.0 * torch.sinh(0.5 * c).square()
    )
    gain = freq.transpose(0, 1).unsqueeze(0) * (damp * cos).unsqueeze(1)  # (M, n, K)
    return t_mean, 0.5 * (t_cov + t_cov.transpose(-1, -2)), gain


def sine_saturation(
    mean: Tensor, cov: Tensor, low: Tensor, high: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """Moments of PILCO's saturation ``u = c + h (9 sin y + sin 3y) / 8`` of ``y ~ N(mean, cov)``.

    ``c = (low + high) / 2`` and ``h = (high - low) / 2`` per dimension: ``u`` stays in
    ``[low, high]``, is ``c + h y`` near ``y = 0`` (slope ``h``) and flat at ``y = +-pi / 2``
    (Deisenroth 2010, sec. 3.5; ``gSat``). Exact (trigonometric moments of a Gaussian).

    Args:
        mean: ``(M, A)``; cov: ``(M, A, A)``; low / high: ``(A,)``.

    Returns:
        ``u_mean (M, A)``, ``u_cov (M, A, A)``, ``gain (M, A, A)`` with ``cov[y, u] = cov @ gain``.
    """
    a = mean.shape[-1]
    eye = torch.eye(a, dtype=mean.dtype, device=mean.device)
    freq = torch.cat([eye, 3.0 * eye], 0)  # (2A, A)
    t_mean, t_cov, t_gain = trig_moments(mean, cov, freq, torch.zeros(2 * a, dtype=mean.dtype))
    half = ((high - low) / 2).to(mean.dtype)
    mix = half.unsqueeze(-1) * torch.cat([eye * (9.0 / 8.0), eye * (1.0 / 8.0)], 1)  # (A, 2A)
    u_mean = ((low + high) / 2).to(mean.dtype) + t_mean @ mix.transpose(0, 1)
    u_cov = mix @ t_cov @ mix.transpose(0, 1)
    return u_mean, 0.5 * (u_cov + u_cov.transpose(-1, -2)), t_gain @ mix.transpose(0, 1)


def sine_saturate(y: Tensor, low: Tensor, high: Tensor) -> Tensor:
    """The saturation of :func:`sine_saturation` at points ``y (..., A)``: in ``[low, high]``."""
    low, high = low.to(y.dtype), high.to(y.dtype)
    return (low + high) / 2 + (high - low) / 2 * (9.0 * torch.sin(y) + torch.sin(3.0 * y)) / 8.0


def feature_moments(
    mean: Tensor, cov: Tensor, angle_idx: Tensor, order: Tensor, exact: bool = True
) -> tuple[Tensor, Tensor, Tensor]:
    """Moments of input features ``[x, sin x_angles, cos x_angles]`` (reordered) of ``x ~ N``.

    The GP of a model with angle dimensions sees each angle as ``(sin, cos)``; for a Gaussian
    belief over ``x (M, n)`` (the model state and the action) this gives the Gaussian
    approximation of those inputs: exact moments (``exact``; PILCO's ``gTrig``) or the
    linearisation at the mean (Jacobian ``gain``, covariance ``gain^T cov gain``).

    Args:
        mean: ``(M, n)``; cov: ``(M, n, n)``.
        angle_idx: ``(k,)`` indices of the angles in ``x``.
        order: ``(F,)`` positions in ``[x (n), sin (k), cos (k)]`` giving the features in the
            order the GP sees them (e.g. angles replaced by their sines, cosines after the
            state, actions last).
        exact: exact trigonometric moments (True) or linearisation (False).

    Returns:
        ``f_mean (M, F)``, ``f_cov (M, F, F)``, ``gain (M, n, F)`` with ``cov[x, f] = cov @ gain``.
    """
    m_rows, n = mean.shape
    k = int(angle_idx.numel())
    eye = torch.eye(n, dtype=mean.dtype, device=mean.device)
    if k == 0:
        gain = eye.expand(m_rows, n, n)[..., order]
        return mean[:, order], cov[:, order][:, :, order], gain
    sel = eye[angle_idx]  # (k, n)
    freq = torch.cat([sel, sel], 0)
    phase = torch.cat(
        [
            torch.zeros(k, dtype=mean.dtype, device=mean.device),
            torch.full((k,), torch.pi / 2, dtype=mean.dtype, device=mean.device),
        ]
    )
    t_cov_given = cov if exact else torch.zeros_like(cov)
    t_mean, t_cov, t_gain = trig_moments(mean, t_cov_given, freq, phase)
    gain = torch.cat([eye.expand(m_rows, n, n), t_gain], -1)[..., order]  # (M, n, F)
    f_mean = torch.cat([mean, t_mean], -1)[:, order]
    if exact:
        id_t = cov @ t_gain  # cov[x, t]
        full = torch.cat(
            [torch.cat([cov, id_t], -1), torch.cat([id_t.transpose(-1, -2), t_cov], -1)], -2
        )
        f_cov = full[:, order][:, :, order]
    else:
        f_cov = gain.transpose(-1, -2) @ cov @ gain
    return f_mean, 0.5 * (f_cov + f_cov.transpose(-1, -2)), gain


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
