"""Uncertainty propagation through the GP: moment matching, linearisation, cubature."""

from __future__ import annotations

import pytest
import torch

from mbrl.models.gp.core import predict_latent, predict_with_jacobian
from mbrl.models.gp.model import GPConfig, GPDynamics
from mbrl.models.gp.moments import GaussianState, cubature_points, linearize, moment_match

torch.set_num_threads(1)
F64 = torch.float64


def _fitted(n: int = 60, seed: int = 0, **cfg) -> GPDynamics:
    """A GP on a 2-D state / 1-D action system with smooth nonlinear deltas."""
    gen = torch.Generator().manual_seed(seed)
    obs = torch.rand(n, 2, generator=gen, dtype=F64) * 4 - 2
    act = torch.rand(n, 1, generator=gen, dtype=F64) * 2 - 1
    delta = torch.stack(
        [
            0.3 * torch.sin(2 * obs[:, 1]) + 0.1 * act[:, 0],
            0.2 * torch.cos(obs[:, 0]) * obs[:, 1] - 0.2 * act[:, 0],
        ],
        1,
    )
    model = GPDynamics(2, 1, GPConfig(**cfg))
    model.fit_data(obs, act, obs + delta + 0.01 * torch.randn(n, 2, generator=gen, dtype=F64))
    return model


def _input_gaussian() -> tuple[torch.Tensor, torch.Tensor]:
    mu = torch.tensor([[0.3, -0.5, 0.2]], dtype=F64)
    a = torch.tensor([[0.4, 0.1, 0.0], [0.1, 0.3, 0.05], [0.0, 0.05, 0.2]], dtype=F64)
    return mu, (a @ a.T).unsqueeze(0)


def _monte_carlo(post, mu, sigma, n=100_000, seed=1):
    """Moments of f(x), x ~ N(mu, sigma), from ``n`` samples through the same GP posterior."""
    gen = torch.Generator().manual_seed(seed)
    x = (
        mu
        + torch.randn(n, mu.shape[1], generator=gen, dtype=F64) @ torch.linalg.cholesky(sigma[0]).T
    )
    m, v = predict_latent(post, x)
    mean = m.mean(0)
    cov = torch.cov(m.T) + torch.diag(v.mean(0))  # law of total covariance
    io = (x - x.mean(0)).T @ (m - mean) / (n - 1)
    return mean, cov, io


@pytest.mark.parametrize(
    ("num_inducing", "mean"), [(256, "zero"), (24, "zero"), (256, "linear"), (24, "linear")]
)  # exact and sparse posteriors, zero and linear prior means
def test_moment_matching_matches_monte_carlo(num_inducing: int, mean: str) -> None:
    model = _fitted(num_inducing=num_inducing, mean=mean)
    post = model.posterior
    mu, sigma = _input_gaussian()
    mean, cov, io = moment_match(post, mu, sigma)
    mc_mean, mc_cov, mc_io = _monte_carlo(post, mu, sigma)
    scale = mc_cov.diagonal().sqrt()
    assert bool(((mean[0] - mc_mean).abs() <= 0.02 * torch.maximum(mc_mean.abs(), scale)).all())
    assert bool(((cov[0].diagonal() - mc_cov.diagonal()).abs() <= 0.05 * mc_cov.diagonal()).all())
    outer = scale.unsqueeze(0) * scale.unsqueeze(1)
    assert bool(((cov[0] - mc_cov).abs() <= 0.05 * outer).all())
    io_scale = sigma[0].diagonal().sqrt().unsqueeze(1) * scale.unsqueeze(0)
    assert bool(((io[0] - mc_io).abs() <= 0.05 * io_scale).all())


def _sampled_transitions(
    model: GPDynamics, state: GaussianState, action: torch.Tensor, n: int, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` samples ``s ~ state`` (one row) and ``s' ~`` the model's predictive: ``(n, O)`` each."""
    gen = torch.Generator().manual_seed(seed)
    o = state.mean.shape[1]
    chol = torch.linalg.cholesky(state.cov[0])
    s = state.mean + torch.randn(n, o, generator=gen, dtype=F64) @ chol.T
    pm, pv = model.predict(s, action.expand(n, -1))
    return s, pm + pv.sqrt() * torch.randn(n, o, generator=gen, dtype=F64)


@pytest.mark.parametrize("mean", ["zero", "linear"])
def test_propagate_moment_matching_matches_sampled_next_observations(mean: str) -> None:
    model = _fitted(mean=mean)
    state = GaussianState(
        torch.tensor([[0.3, -0.5]], dtype=F64),
        torch.tensor([[[0.05, 0.01], [0.01, 0.08]]], dtype=F64),
    )
    action = torch.tensor([[0.4]], dtype=F64)
    nxt, cross = model.propagate(state, action, "moment_matching")
    s, s_next = _sampled_transitions(model, state, action, 100_000, seed=2)
    n = s.shape[0]
    torch.testing.assert_close(nxt.mean[0], s_next.mean(0), rtol=0.02, atol=0.0)
    mc_cov = torch.cov(s_next.T)
    assert bool(
        ((nxt.cov[0].diagonal() - mc_cov.diagonal()).abs() <= 0.05 * mc_cov.diagonal()).all()
    )
    mc_cross = (s - s.mean(0)).T @ (s_next - s_next.mean(0)) / (n - 1)
    torch.testing.assert_close(
        cross[0], mc_cross, rtol=0.0, atol=0.05 * mc_cov.diagonal().max().item()
    )


def test_linear_mean_propagation_far_from_the_data_matches_sampling() -> None:
    # A linear system seen on [-1, 1]; beliefs ~5x outside: every propagation follows the
    # linear mean and matches Monte-Carlo samples of the model.
    gen = torch.Generator().manual_seed(13)
    obs = torch.rand(40, 2, generator=gen, dtype=F64) * 2 - 1
    act = torch.rand(40, 2, generator=gen, dtype=F64) * 2 - 1
    a_mat = torch.tensor([[-0.2, 0.3], [0.1, -0.4]], dtype=F64)
    b_mat = torch.tensor([[0.8, -0.5], [0.3, 1.2]], dtype=F64)
    nxt = obs + obs @ a_mat.T + act @ b_mat.T + 1e-3 * torch.randn(40, 2, generator=gen, dtype=F64)
    model = GPDynamics(2, 2, GPConfig(mean="linear"))
    model.fit_data(obs, act, nxt)
    state = GaussianState(
        torch.tensor([[5.0, -4.0]], dtype=F64),
        torch.tensor([[[0.5, 0.1], [0.1, 0.3]]], dtype=F64),
    )
    action = torch.tensor([[2.0, -3.0]], dtype=F64)
    _, s_next = _sampled_transitions(model, state, action, 50_000, seed=14)
    mc_cov = torch.cov(s_next.T)
    truth = state.mean + state.mean @ a_mat.T + action @ b_mat.T
    torch.testing.assert_close(s_next.mean(0, keepdim=True), truth, rtol=0.0, atol=0.05)
    for method in ("moment_matching", "linearization", "mean"):
        nxt_state, _ = model.propagate(state, action, method)
        torch.testing.assert_close(nxt_state.mean[0], s_next.mean(0), rtol=0.02, atol=0.02)
        if method != "mean":  # "mean" ignores the input uncertainty on purpose
            torch.testing.assert_close(nxt_state.cov[0], mc_cov, rtol=0.05, atol=0.01)


@pytest.mark.parametrize("mean", ["zero", "linear"])
def test_linearization_and_moment_matching_agree_for_small_input_noise(mean: str) -> None:
    post = _fitted(mean=mean).posterior
    mu, sigma = _input_gaussian()
    tiny = sigma * 1e-6
    mm = moment_match(post, mu, tiny)
    lin = linearize(post, mu, tiny)
    for a, b in zip(mm, lin, strict=True):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-3)
    # zero input covariance: both reduce to the GP prediction at the mean
    mean, var = predict_latent(post, mu)
    m0, c0, io0 = moment_match(post, mu, torch.zeros_like(sigma))
    torch.testing.assert_close(m0, mean)
    # (E[g^2] - E[g]^2 cancels to ~1e-8 of the signal variance; the linear mean's residual
    # variances are small, so the tolerance is absolute, relative to the outputscale)
    atol = 1e-7 * float(post.outputscale.max())
    torch.testing.assert_close(c0.diagonal(dim1=-2, dim2=-1), var, atol=atol, rtol=1e-6)
    assert bool((io0 == 0).all())


@pytest.mark.parametrize("mean", ["zero", "linear"])
def test_model_linearization_matches_normalised_space_formula(mean: str) -> None:
    model = _fitted(mean=mean)
    state = GaussianState(
        torch.tensor([[0.3, -0.5], [1.0, 0.2]], dtype=F64),
        torch.tensor([[[0.05, 0.01], [0.01, 0.08]], [[0.02, 0.0], [0.0, 0.01]]], dtype=F64),
    )
    action = torch.tensor([[0.4], [-0.3]], dtype=F64)
    nxt, cross = model.propagate(state, action, "linearization")
    mx, sx, my, sy = model._stats()
    mu_n = (torch.cat([state.mean, action], -1) - mx) / sx
    cov_n = torch.nn.functional.pad(state.cov, (0, 1, 0, 1)) / (sx[:, None] * sx[None, :])
    f_mean, f_cov, io = linearize(model.posterior, mu_n, cov_n)
    f_cov = f_cov + torch.diag_embed(model.posterior.noise.expand(2, -1))
    c_sd = io[:, :2] * (sx[:2, None] * sy[None, :])
    expected_cov = state.cov + f_cov * (sy[:, None] * sy[None, :]) + c_sd + c_sd.transpose(-1, -2)
    torch.testing.assert_close(nxt.mean, state.mean + f_mean * sy + my)
    torch.testing.assert_close(nxt.cov, expected_cov)
    torch.testing.assert_close(cross, state.cov + c_sd)


@pytest.mark.parametrize("mean", ["zero", "linear"])
def test_mean_jacobian_matches_autograd(mean: str) -> None:
    for kernel in ("rbf", "matern52", "matern32"):
        post = _fitted(kernel=kernel, mean=mean).posterior
        x = torch.randn(5, 3, generator=torch.Generator().manual_seed(3), dtype=F64)
        _, _, jac = predict_with_jacobian(post, x)
        auto = torch.autograd.functional.jacobian(
            lambda z, p=post: predict_latent(p, z)[0].sum(0), x
        )
        torch.testing.assert_close(jac, auto.permute(1, 0, 2), atol=1e-7, rtol=1e-5)


@pytest.mark.parametrize("mean", ["zero", "linear"])
@pytest.mark.parametrize("method", ["moment_matching", "linearization", "mean"])
def test_propagation_gradients_are_exact(method: str, mean: str) -> None:
    model = _fitted(n=30, mean=mean)
    cov = torch.tensor([[[0.05, 0.01], [0.01, 0.08]]], dtype=F64)

    def outputs(mean: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, ...]:
        nxt, cross = model.propagate(GaussianState(mean, cov), action, method)
        return nxt.mean, nxt.cov, cross

    mean = torch.tensor([[0.3, -0.5]], dtype=F64, requires_grad=True)
    action = torch.tensor([[0.4]], dtype=F64, requires_grad=True)
    # eps 1e-4: moment matching carries ~1e-12 rounding, too much for the default 1e-6 steps
    assert torch.autograd.gradcheck(outputs, (mean, action), eps=1e-4, atol=1e-6, rtol=1e-4)


def test_moment_matching_rejects_matern() -> None:
    post = _fitted(kernel="matern52").posterior
    mu, sigma = _input_gaussian()
    with pytest.raises(ValueError, match="squared-exponential"):
        moment_match(post, mu, sigma)
    with pytest.raises(ValueError, match="method must be one of"):
        _fitted().propagate(GaussianState.certain(mu[:, :2]), mu[:, 2:], "unscented")


def test_cubature_points_integrate_quadratics_exactly() -> None:
    gen = torch.Generator().manual_seed(4)
    a = torch.randn(3, 4, 4, generator=gen, dtype=F64)
    cov = a @ a.transpose(-1, -2) + 0.1 * torch.eye(4, dtype=F64)
    mean = torch.randn(3, 4, generator=gen, dtype=F64)
    w = torch.randn(4, 4, generator=gen, dtype=F64)
    pts = cubature_points(mean, cov, jitter=0.0, floor=0.0)
    assert pts.shape == (8, 3, 4)
    estimate = torch.einsum("pmi,ij,pmj->m", pts, w, pts) / pts.shape[0]
    exact = torch.einsum("ij,mji->m", w, cov) + torch.einsum("mi,ij,mj->m", mean, w, mean)
    torch.testing.assert_close(estimate, exact)
    torch.testing.assert_close(pts.mean(0), mean)


def test_cubature_points_survive_singular_and_rounded_covariances() -> None:
    mean = torch.zeros(2, 3, dtype=F64)
    cov = torch.zeros(2, 3, 3, dtype=F64)
    cov[1] = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 1.0]], dtype=F64)
    cov[1, 0, 0] -= 1e-9  # slightly indefinite, as rounding can make it
    pts = cubature_points(mean, cov)
    assert bool(torch.isfinite(pts).all())
    torch.testing.assert_close(pts[:, 0], torch.zeros(6, 3, dtype=F64), atol=1e-5, rtol=0)
