"""The large-data GP fit: collapsed bound, inducing-point selection, early stopping.

Behaviour only (no timing: the test machine is shared); ``scripts/bench_gp_fit.py`` times the
16k-point fit.
"""

from __future__ import annotations

import math

import pytest
import torch

import mbrl.models.gp.sparse as sparse_mod
from mbrl.models.gp.core import greedy_variance, kernel_matrix, kmeans
from mbrl.models.gp.exact import GPHyperparameters
from mbrl.models.gp.model import GPConfig, GPDynamics
from mbrl.models.gp.sparse import collapsed_bound

torch.set_num_threads(1)
F64 = torch.float64


def _system(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Smooth 2-D dynamics with noise: ``obs (n, 2)``, ``action (n, 1)``, ``next (n, 2)``."""
    gen = torch.Generator().manual_seed(seed)
    obs = torch.rand(n, 2, generator=gen, dtype=F64) * 4 - 2
    act = torch.rand(n, 1, generator=gen, dtype=F64) * 2 - 1
    delta = torch.stack(
        [
            0.5 * torch.sin(1.5 * obs[:, 1]) + 0.2 * act[:, 0],
            0.4 * torch.cos(obs[:, 0]) * act[:, 0],
        ],
        1,
    )
    return obs, act, obs + delta + 0.02 * torch.randn(n, 2, generator=gen, dtype=F64)


def _rmse(model: GPDynamics, test: tuple[torch.Tensor, ...]) -> float:
    mean, _ = model.predict(test[0], test[1])
    return float((mean - test[2]).square().mean().sqrt())


def test_collapsed_bound_is_the_exact_marginal_likelihood_when_inducing_on_the_data() -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(40, 3, generator=gen, dtype=F64)
    y = torch.randn(2, 40, generator=gen, dtype=F64)
    ell = torch.tensor([[0.7, 1.2, 2.0], [1.5, 0.5, 1.0]], dtype=F64)
    sf2, s2 = torch.tensor([1.3, 0.6], dtype=F64), torch.tensor([0.1, 0.05], dtype=F64)
    bound = collapsed_bound("rbf", x, y, x.expand(2, -1, -1), ell, sf2, s2, jitter=1e-10)
    k = kernel_matrix("rbf", x.expand(2, -1, -1), x.expand(2, -1, -1), ell, sf2)
    cov = k + s2.view(-1, 1, 1) * torch.eye(40, dtype=F64)
    exact = torch.distributions.MultivariateNormal(torch.zeros(2, 40, dtype=F64), cov).log_prob(y)
    torch.testing.assert_close(bound, exact / 40, atol=1e-6, rtol=1e-6)
    # fewer inducing points: a lower bound
    fewer = collapsed_bound("rbf", x, y, x[:10].expand(2, -1, -1), ell, sf2, s2)
    assert bool((fewer < exact / 40).all())


def test_collapsed_sparse_fit_matches_the_exact_gp_and_beats_the_svgp_path() -> None:
    obs, act, nxt = _system(300, seed=1)
    test = _system(400, seed=2)
    exact = GPDynamics(2, 1, GPConfig(sparse_threshold=300, num_inducing=300))
    exact.fit_data(obs, act, nxt)
    small = dict(sparse_threshold=100, num_inducing=48, sparse_fit_inducing=32)
    collapsed = GPDynamics(
        2, 1, GPConfig(**small, sparse_subset=200, sparse_holdout=100, sparse_init_subset=128)
    )
    collapsed.fit_data(obs, act, nxt, generator=torch.Generator().manual_seed(0))
    svgp = GPDynamics(2, 1, GPConfig(**small, sparse_method="svgp", sparse_steps=60))
    svgp.fit_data(obs, act, nxt, generator=torch.Generator().manual_seed(0))
    assert collapsed.last_fit.hyper_fit == "sparse" and collapsed.last_fit.posterior == "sparse"
    r_exact, r_collapsed, r_svgp = _rmse(exact, test), _rmse(collapsed, test), _rmse(svgp, test)
    assert r_collapsed < 1.5 * r_exact
    assert r_collapsed < r_svgp
    # the hyperparameters found explain the data's noise (std 0.02) about right
    noise_std = (collapsed.hyper.noise.sqrt() * collapsed.output_norm.std.to(F64)).tolist()
    assert all(0.01 < s < 0.04 for s in noise_std)


def test_early_stopping_keeps_the_best_held_out_hyperparameters(monkeypatch) -> None:
    seen: list[tuple[float, tuple[torch.Tensor, ...]]] = []
    original = sparse_mod.heldout_log_loss

    def recording(kernel, inducing, x, y, x_test, y_test, hyper) -> float:
        value = original(kernel, inducing, x, y, x_test, y_test, hyper)
        seen.append((value, tuple(t.clone() for t in hyper.values())))
        return value

    monkeypatch.setattr(sparse_mod, "heldout_log_loss", recording)
    obs, act, nxt = _system(700, seed=3)
    cfg = GPConfig(
        sparse_threshold=100,
        num_inducing=32,
        sparse_fit_inducing=24,
        sparse_subset=300,
        sparse_holdout=200,
        sparse_patience=1,
    )
    model = GPDynamics(2, 1, cfg)
    model.fit_data(obs, act, nxt, generator=torch.Generator().manual_seed(0))
    info = model.last_fit
    assert info.converged and info.accepted and len(seen) >= 2
    # patience 1: the first check without improvement ends the fit
    values = [v for v, _ in seen]
    if info.message.startswith("early stopping"):
        assert info.iterations < cfg.max_iter
    # the kept hyperparameters are among the best scored (up to the 1e-3 improvement margin)
    low = min(values)
    kept = model.hyper.values()
    assert any(
        v <= low + 1e-3 * abs(low)
        and all(torch.allclose(a, b) for a, b in zip(kept, state, strict=True))
        for v, state in seen
    )


def test_inducing_selection_spreads_points_and_beats_a_random_subset() -> None:
    gen = torch.Generator().manual_seed(4)
    # clustered data, as transitions of a few trajectories are
    centres = torch.randn(6, 3, generator=gen, dtype=F64) * 2
    x = centres[torch.randint(0, 6, (3000,), generator=gen)] + 0.3 * torch.randn(
        3000, 3, generator=gen, dtype=F64
    )
    ell = torch.full((2, 3), 0.6, dtype=F64)
    sf2 = torch.ones(2, dtype=F64)

    def nystrom_error(z: torch.Tensor) -> tuple[float, float]:
        """Mean and max residual variance ``k(x, x) - Q(x, x)`` over the data."""
        kzz = kernel_matrix("rbf", z, z, ell, sf2) + 1e-8 * torch.eye(z.shape[1], dtype=F64)
        kzx = kernel_matrix("rbf", z, x.expand(2, -1, -1), ell, sf2)
        resid = 1.0 - (kzx * torch.linalg.solve(kzz, kzx)).sum(1)
        return float(resid.mean()), float(resid.max())

    greedy = greedy_variance("rbf", x, 40, ell, sf2)
    assert greedy.shape == (2, 40, 3)
    assert len({tuple(r) for r in greedy[0].tolist()}) == 40  # distinct points
    means = kmeans(x, 40, torch.Generator().manual_seed(0)).expand(2, -1, -1)
    random = x[torch.randperm(3000, generator=gen)[:40]].expand(2, -1, -1)
    # k-means centres cover the bulk (mean Nystrom error), greedy variance the worst-covered
    # points (maximum residual variance, what it minimises greedily)
    assert nystrom_error(means)[0] < 0.7 * nystrom_error(random)[0]
    assert nystrom_error(greedy)[1] < nystrom_error(random)[1]
    assert nystrom_error(greedy)[1] < nystrom_error(means)[1]
    # k-means++ seeding: reproducible from the generator
    again = kmeans(x, 40, torch.Generator().manual_seed(0)).expand(2, -1, -1)
    torch.testing.assert_close(again, means)


@pytest.mark.parametrize("init", ["kmeans", "greedy"])
def test_sparse_fit_is_reproducible_from_its_generator(init: str) -> None:
    obs, act, nxt = _system(500, seed=5)
    cfg = GPConfig(
        sparse_threshold=100,
        num_inducing=32,
        sparse_fit_inducing=24,
        sparse_subset=200,
        sparse_holdout=100,
        sparse_init_subset=100,
        inducing_init=init,
    )
    preds = []
    for _ in range(2):
        model = GPDynamics(2, 1, cfg)
        model.fit_data(obs, act, nxt, generator=torch.Generator().manual_seed(7))
        preds.append(model.predict(obs[:20], act[:20])[0])
    torch.testing.assert_close(preds[0], preds[1])


def test_sparse_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="sparse_method"):
        GPConfig(sparse_method="vfe")
    with pytest.raises(ValueError, match="inducing_init"):
        GPConfig(inducing_init="random")
    with pytest.raises(ValueError, match="sparse_holdout"):
        GPConfig(sparse_holdout=-1)
    with pytest.raises(ValueError, match="sparse_subset"):
        GPConfig(sparse_subset=0)
    # the fitting view of the hyperparameters carries gradients, the other does not
    hyper = GPHyperparameters("rbf", 2, 3)
    assert hyper.tensors()[0].requires_grad and not hyper.values()[0].requires_grad


@pytest.mark.parametrize("collapse", [True, False])
def test_a_fit_that_turns_an_output_into_noise_keeps_the_start_that_explains_it(
    monkeypatch, collapse: bool
) -> None:
    """The collapsed bound with few inducing points can score "all noise" best for a
    near-noiseless output it cannot represent (measured on SPS spill data: the correction
    phasor, set exactly by the action, went to noise 1.0 and its prediction error up 5x)."""
    from mbrl.models.gp.exact import HyperFitResult, fit_exact_hyperparameters

    obs, act, nxt = _system(400, seed=4)
    x = torch.cat([obs, act], 1)
    y = (nxt - obs).T.contiguous()
    y = (y - y.mean(1, keepdim=True)) / y.std(1, keepdim=True)
    hyper = GPHyperparameters("rbf", 2, 3).to(F64)
    fit_exact_hyperparameters(x[:100], y[:, :100], hyper, 100, 1e-5)
    start = [t.clone() for t in hyper.values()]
    assert bool((start[1] > start[2]).all())

    def fake_minimize(h, loss, max_iter, gtol, what, monitor=None):
        if collapse:
            with torch.no_grad():
                h.covar.raw_outputscale[1] = math.log(1e-4)
                h.likelihood.noise_covar.raw_noise[1] = math.log(1.0)
        return HyperFitResult(True, "fake", [0.0], 1)

    def fake_score(kernel, inducing, xf, yf, xt, yt, h) -> float:
        _, sf2, s2 = h.values()
        return -100.0 if bool((sf2 < s2).any()) else 0.0  # the bound prefers the noise

    monkeypatch.setattr(sparse_mod, "minimize_hyperparameters", fake_minimize)
    monkeypatch.setattr(sparse_mod, "heldout_log_loss", fake_score)
    result = sparse_mod.fit_collapsed_hyperparameters(
        x,
        y,
        hyper,
        lambda xs, h: xs[:8].expand(2, -1, -1),
        subset=200,
        holdout=100,
        max_iter=50,
        gtol=1e-5,
        patience=2,
    )
    _, sf2, s2 = hyper.values()
    assert result.converged and bool((sf2 >= s2).all())
    if collapse:
        assert "explained output(s) [1] as noise" in result.message
        for got, want in zip(hyper.values(), start, strict=True):
            torch.testing.assert_close(got, want)
    else:
        assert result.message == "fake"
