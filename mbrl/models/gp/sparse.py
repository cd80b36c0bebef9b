"""Hyperparameter fitting for the large-data path of the GP dynamics (``GPConfig.sparse_threshold``).

Two methods; predictions then use the optimal ``q(u)`` for the inducing points over *all* data
(:func:`mbrl.models.gp.core.sparse_posterior`) either way.

* ``collapsed`` (default; :func:`fit_collapsed_hyperparameters`): Titsias' (2009) collapsed
  bound in whitened form, on a random subset, with the inducing inputs fixed (k-means++ or
  greedy-variance selection). For a Gaussian likelihood the optimal whitened ``q(v)`` is known
  in closed form -- it is where one natural-gradient step of size 1 lands -- so no variational
  parameter is optimised at all: L-BFGS-B sees only the few log-hyperparameters, and stops
  early when the predictive log-loss on held-out points stops improving.
* ``svgp`` (:func:`fit_sparse_hyperparameters`): the stochastic variational GP (Hensman et al.
  2013) as one batched gpytorch ``ApproximateGP``, learning hyperparameters and inducing
  locations from a fixed number of Adam minibatch steps.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable

import gpytorch
import torch
from linear_operator.utils.errors import NotPSDError
from torch import Tensor

from mbrl.models.gp.core import (
    kernel_from_sqdist,
    kernel_matrix,
    predict_latent,
    scaled_sqdist,
    sparse_posterior,
    sparse_statistics,
)
from mbrl.models.gp.exact import (
    FitFailure,
    GPHyperparameters,
    HyperFitResult,
    StopFit,
    fit_exact_hyperparameters,
    minimize_hyperparameters,
)


class BatchSVGP(gpytorch.models.ApproximateGP):
    """``O`` independent SVGPs with their own inducing points ``(O, Z, D)`` (whitened).

    Args:
        inducing: initial inducing locations ``(O, Z, D)`` (learned).
        hyper: kernel and likelihood (shared, trained in place).
    """

    def __init__(self, inducing: Tensor, hyper: GPHyperparameters) -> None:
        o, n_z, _ = inducing.shape
        batch = torch.Size([o])
        dist = gpytorch.variational.CholeskyVariationalDistribution(n_z, batch_shape=batch)
        strategy = gpytorch.variational.VariationalStrategy(
            self, inducing, dist, learn_inducing_locations=True
        )
        super().__init__(strategy)
        self.mean_module = gpytorch.means.ZeroMean(batch_shape=batch)
        self.covar_module = hyper.covar

    def forward(self, x: Tensor) -> gpytorch.distributions.MultivariateNormal:
        """Prior at ``x (O, B, D)``: a batch ``(O,)`` of ``B``-dimensional normals."""
        return gpytorch.distributions.MultivariateNormal(self.mean_module(x), self.covar_module(x))


@torch.enable_grad()  # fitting needs autograd even when called under torch.no_grad()
def fit_sparse_hyperparameters(
    x: Tensor,
    y: Tensor,
    hyper: GPHyperparameters,
    inducing: Tensor,
    *,
    steps: int,
    batch_size: int,
    lr: float,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, HyperFitResult]:
    """Fit ``hyper`` and the inducing locations to ``x (N, D)``, ``y (O, N)`` by the SVGP ELBO.

    ``steps`` Adam steps on minibatches of ``batch_size`` rows drawn from ``generator``.

    Returns:
        ``(inducing (O, Z, D), result)``; ``hyper`` is updated in place.

    Raises:
        FitFailure: the ELBO became non-finite or a covariance was not positive definite.
    """
    model = BatchSVGP(inducing.clone(), hyper).to(x.dtype).to(x.device)
    model.train()
    hyper.train()
    n = x.shape[0]
    elbo = gpytorch.mlls.VariationalELBO(hyper.likelihood, model, num_data=n)
    params = list(model.parameters()) + list(hyper.likelihood.parameters())
    seen, unique = set(), []
    for p in params:
        if id(p) not in seen:
            seen.add(id(p))
            unique.append(p)
    opt = torch.optim.Adam(unique, lr=lr)
    o = y.shape[0]
    bs = min(batch_size, n)
    gen_device = generator.device if generator is not None else torch.device("cpu")
    losses: list[float] = []
    window = torch.zeros((), dtype=x.dtype, device=x.device)
    report_every = max(1, steps // 20)
    try:
        for step in range(steps):
            idx = torch.randint(0, n, (bs,), generator=generator, device=gen_device).to(x.device)
            xb = x[idx].unsqueeze(0).expand(o, -1, -1)
            loss = -elbo(model(xb), y[:, idx]).sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            hyper.project()
            window = window + loss.detach()
            if (step + 1) % report_every == 0 or step + 1 == steps:
                count = (step % report_every) + 1
                value = float(window) / count
                if not math.isfinite(value):
                    raise FitFailure(f"SVGP ELBO became non-finite ({value}) at step {step + 1}")
                losses.append(value)
                window = torch.zeros_like(window)
    except NotPSDError as err:
        raise FitFailure(f"SVGP covariance not positive definite ({err})") from err
    learned = model.variational_strategy.inducing_points.detach().clone()
    if not bool(torch.isfinite(learned).all()):
        raise FitFailure("SVGP inducing locations became non-finite")
    return learned, HyperFitResult(True, f"{steps} Adam steps", losses, steps)


def collapsed_bound(
    kernel: str,
    x: Tensor,
    y: Tensor,
    inducing: Tensor,
    lengthscale: Tensor,
    outputscale: Tensor,
    noise: Tensor,
    jitter: float = 1e-6,
) -> Tensor:
    """Titsias' collapsed evidence lower bound per output and data point: ``(O,)``.

    ``log N(y | 0, Q + s2 I) - tr(K - Q) / (2 s2)`` with ``Q = Kxz Kzz^-1 Kzx``, evaluated in
    whitened form: ``A = Lz^-1 Kzx / s``, ``B = I + A A^T = Lb Lb^T``, ``c = Lb^-1 A y / s``::

        bound = -N/2 log(2 pi s2) - log|Lb| - |y|^2 / (2 s2) + |c|^2 / 2
                - N sf2 / (2 s2) + |A|_F^2 / 2

    ``O(N Z^2)`` per output; differentiable w.r.t. the hyperparameters.

    Args:
        x: ``(N, D)``; y: ``(O, N)``; inducing: ``(O, Z, D)``; lengthscale / outputscale /
            noise: ``(O, D)``, ``(O,)``, ``(O,)``; jitter: relative diagonal jitter on ``Kzz``.

    Raises:
        torch.linalg.LinAlgError: a Cholesky factorisation failed.
    """
    n = x.shape[0]
    eye = torch.eye(inducing.shape[1], dtype=x.dtype, device=x.device)
    kzz = kernel_matrix(kernel, inducing, inducing, lengthscale, outputscale)
    lz = torch.linalg.cholesky(kzz + (jitter * outputscale.view(-1, 1, 1)) * eye)
    kzx = kernel_from_sqdist(kernel, scaled_sqdist(x, inducing, lengthscale), outputscale)
    root = noise.sqrt().view(-1, 1, 1)
    a = torch.linalg.solve_triangular(lz, kzx.transpose(-1, -2), upper=False) / root
    lb = torch.linalg.cholesky(eye + a @ a.transpose(-1, -2))
    c = torch.linalg.solve_triangular(lb, a @ y.unsqueeze(-1), upper=False) / root
    bound = (
        -0.5 * n * torch.log(2 * math.pi * noise)
        - torch.log(torch.diagonal(lb, dim1=-2, dim2=-1)).sum(-1)
        - 0.5 * y.square().sum(-1) / noise
        + 0.5 * c.square().sum((-1, -2))
        - 0.5 * n * outputscale / noise
        + 0.5 * a.square().sum((-1, -2))
    )
    return bound / n


def heldout_log_loss(
    kernel: str,
    inducing: Tensor,
    x: Tensor,
    y: Tensor,
    x_test: Tensor,
    y_test: Tensor,
    hyper: GPHyperparameters,
) -> float:
    """Mean negative log predictive density of ``y_test (O, T)`` at ``x_test (T, D)``, summed
    over outputs, of the sparse posterior conditioned on ``x (N, D)``, ``y (O, N)``."""
    with torch.no_grad():
        ell, sf2, s2 = hyper.values()
        stats = sparse_statistics(kernel, inducing, x, y, ell, sf2)
        post = sparse_posterior(kernel, inducing, *stats, ell, sf2, s2)
        mean, var = predict_latent(post, x_test)
        var = var + s2
        nll = 0.5 * torch.log(2 * math.pi * var) + 0.5 * (y_test.T - mean).square() / var
    return float(nll.mean(0).sum())


def fit_collapsed_hyperparameters(
    x: Tensor,
    y: Tensor,
    hyper: GPHyperparameters,
    select_inducing: Callable[[Tensor, GPHyperparameters], Tensor],
    *,
    subset: int,
    holdout: int,
    max_iter: int,
    gtol: float,
    patience: int,
    init_subset: int = 0,
    check_every: int = 5,
    generator: torch.Generator | None = None,
) -> HyperFitResult:
    """Fit ``hyper`` to ``x (N, D)``, ``y (O, N)`` by the collapsed bound on a random subset.

    ``holdout`` random points are set aside (none when ``N`` has no more than ``subset`` to
    spare) and ``subset`` of the others are the fitting data; ``select_inducing(x_subset,
    hyper)`` picks the fixed inducing inputs ``(O, Z, D)`` with the starting hyperparameters.
    L-BFGS-B (:func:`minimize_hyperparameters`) minimises the negative bound. The held-out
    log-loss (:func:`heldout_log_loss`; without held-out points the negative bound itself) is
    measured at the start and every ``check_every`` iterations; after ``patience`` checks
    without improvement the fit stops (early stopping), and it always ends with the best
    hyperparameters seen.

    A second start (``init_subset > 0``): the collapsed bound with few inducing points has an
    "all noise" optimum (a small signal, the noise explaining everything) that a start far
    from the data's scales can fall into. When the first fit finds nothing better than its start
    or ends with some output's signal variance below its noise variance, the exact marginal
    likelihood's optimum on
    ``init_subset`` fitting points (cheap at a few hundred) is scored, and the fit is run again
    from it when it scores better. (Always starting there is worse: from so few points it can
    sit in a poorer basin than the defaults lead to.)

    A result that leaves some output with less signal than noise is not kept when a start (the
    given hyperparameters, e.g. a warm start, or that exact fit) explained every output by
    signal: the held-out score of the few-inducing-point predictive can prefer "all noise" for
    a near-noiseless output it cannot represent, though the posterior on all inducing points
    would fit it. The start's hyperparameters are then returned, with the message saying so.

    Returns:
        :class:`HyperFitResult` (``losses``: negative bound per point, per evaluation, of both
        runs; ``iterations``: their sum); ``hyper`` is updated in place.

    Raises:
        FitFailure: a non-finite bound or a failed factorisation.
    """
    n = x.shape[0]
    gen_device = generator.device if generator is not None else torch.device("cpu")
    perm = torch.randperm(n, generator=generator, device=gen_device).to(x.device)
    held = min(holdout, max(n - subset, 0))
    test_idx, fit_idx = perm[:held], perm[held : held + subset]
    xf, yf = x[fit_idx], y[:, fit_idx]
    xt, yt = x[test_idx], y[:, test_idx]
    start_state = copy.deepcopy(hyper.state_dict())
    inducing = select_inducing(xf, hyper).detach()
    kernel = hyper.kernel

    def loss() -> Tensor:
        ell, sf2, s2 = hyper.tensors()
        return -collapsed_bound(kernel, xf, yf, inducing, ell, sf2, s2).sum()

    def score() -> float:
        if held:
            return heldout_log_loss(kernel, inducing, xf, yf, xt, yt, hyper)
        with torch.no_grad():
            return float(loss())

    best = {"loss": math.inf, "state": copy.deepcopy(start_state), "bad": 0}

    def check() -> bool:
        """Score the current hyperparameters; keep the best; True when patience ran out."""
        value = score()
        if not math.isfinite(value):
            return False
        if not math.isfinite(best["loss"]) or value < best["loss"] - 1e-3 * abs(best["loss"]):
            best.update(loss=value, state=copy.deepcopy(hyper.state_dict()), bad=0)
        else:
            best["bad"] += 1
        return best["bad"] >= patience

    def monitor(iteration: int) -> None:
        if held and iteration % check_every == 0 and check():
            raise StopFit(
                f"held-out log-loss {best['loss']:.4f} not improved in {patience} checks "
                f"(iteration {iteration})"
            )

    def run() -> HyperFitResult:
        best["bad"] = 0
        check()  # the start is a candidate too
        if "first" not in best:
            best["first"] = best["state"]
        result = minimize_hyperparameters(
            hyper, loss, max_iter, gtol, "collapsed sparse GP bound", monitor
        )
        check()
        return result

    result = run()
    improved = best["state"] is not best["first"]
    hyper.load_state_dict(best["state"])
    _, sf2, s2 = hyper.values()
    # Starts that explain every output by signal more than noise: the fallback when the
    # fitted result turns an output into mostly noise.
    signal_starts = [start_state] if _signal_everywhere(hyper, start_state) else []
    # nothing better than the defaults found, or an output explained as mostly noise
    if init_subset > 0 and (not improved or bool((sf2 < s2).any())):
        ended = best["loss"]
        hyper.load_state_dict(start_state)
        fit_exact_hyperparameters(
            xf[:init_subset], yf[:, :init_subset], hyper, min(max_iter, 100), gtol
        )  # a starting point only: converged or not, it is scored below
        if _signal_everywhere(hyper):
            signal_starts.append(copy.deepcopy(hyper.state_dict()))
        if score() < ended:
            second = run()
            result = HyperFitResult(
                second.converged,
                f"second start (exact fit on {init_subset} points): {second.message}",
                result.losses + second.losses,
                result.iterations + second.iterations,
            )
    hyper.load_state_dict(best["state"])
    if signal_starts and not _signal_everywhere(hyper):
        # The bound with few inducing points scores "all noise" above a near-noiseless
        # function it cannot represent (a deterministic output, such as an actuator's own
        # setting): keep the start that explains it, and let the posterior take the data.
        noisy = _noise_outputs(*hyper.values()[1:])
        hyper.load_state_dict(signal_starts[-1])
        result = HyperFitResult(
            True,
            f"{result.message}; the fit explained output(s) {noisy} as "
            "noise, so the hyperparameters of a start that did not were kept",
            result.losses,
            result.iterations,
        )
    return result


def _noise_outputs(sf2: Tensor, s2: Tensor) -> list[int]:
    """Outputs whose signal variance ``sf2 (O,)`` is below their noise variance ``s2 (O,)``."""
    return [int(i) for i in torch.nonzero(sf2.flatten() < s2.flatten()).flatten()]


def _signal_everywhere(hyper: GPHyperparameters, state: dict | None = None) -> bool:
    """Every output's signal variance is at least its noise variance (of ``state`` when
    given; ``hyper`` is left as it was)."""
    if state is None:
        _, sf2, s2 = hyper.values()
        return not _noise_outputs(sf2, s2)
    now = copy.deepcopy(hyper.state_dict())
    hyper.load_state_dict(state)
    try:
        return _signal_everywhere(hyper)
    finally:
        hyper.load_state_dict(now)
