"""Sparse variational GP (SVGP, Hensman et al. 2013) for the large-data path of the GP dynamics.

Used when the data outgrows exact inference (``GPConfig.sparse_threshold``): ``O`` independent
SVGPs as one batched gpytorch ``ApproximateGP`` learn the kernel hyperparameters and the
inducing locations from minibatches (a fixed number of Adam steps, so the cost is bounded
whatever the data size). Inducing points start at k-means centres of the inputs. Predictions
then use the optimal ``q(u)`` for those inducing points over *all* data
(:func:`mbrl.models.gp.core.sparse_posterior`).
"""

from __future__ import annotations

import math

import gpytorch
import torch
from linear_operator.utils.errors import NotPSDError
from torch import Tensor

from mbrl.models.gp.exact import FitFailure, GPHyperparameters, HyperFitResult


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
