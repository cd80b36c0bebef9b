"""The GP's weak hyperparameter prior: fits on few points stay calibrated."""

import math

import gymnasium as gym
import numpy as np
import pytest
import torch

from mbrl.models.gp.exact import PRIOR, GPHyperparameters
from mbrl.models.gp.model import GPConfig, GPDynamics

F64 = torch.float64


def _pendulum(n: int, seed: int) -> list[torch.Tensor]:
    env = gym.make("Pendulum-v1")
    env.action_space.seed(seed)
    obs, _ = env.reset(seed=seed)
    rows = []
    for _ in range(n):
        action = env.action_space.sample()
        nxt, *_ = env.step(action)
        rows.append((obs, action, nxt))
        obs = nxt
    return [torch.tensor(np.array(x), dtype=F64) for x in zip(*rows, strict=True)]


def _nlpd(model: GPDynamics, test: list[torch.Tensor]) -> float:
    with torch.no_grad():
        mean, var = model.predict(test[0], test[1])
    return float((0.5 * ((mean - test[2]) ** 2 / var + var.log() + math.log(2 * math.pi))).mean())


def test_ten_points_give_calibrated_predictions_with_the_prior_and_not_without():
    test = _pendulum(500, 100)
    with_prior, without = [], []
    for seed in range(5):
        obs, action, nxt = _pendulum(10, seed)
        for prior, scores in ((True, with_prior), (False, without)):
            model = GPDynamics(3, 1, GPConfig(hyper_prior=prior))
            model.fit_data(obs, action, nxt)
            assert model.last_fit.converged
            scores.append(_nlpd(model, test))
    # Maximum likelihood on 10 points is overconfident on some draws (held-out log-loss of
    # hundreds of nats); the prior keeps every draw calibrated.
    assert max(without) > 100.0
    assert max(with_prior) < 20.0
    assert float(np.median(with_prior)) < 2.0 < float(np.median(without))


def test_the_prior_is_zero_at_its_means_and_pulls_towards_them():
    hyper = GPHyperparameters("rbf", 2, 3).to(F64)
    params = dict(hyper.named_parameters())
    with torch.no_grad():
        for name, (loc, _) in PRIOR.items():
            params[name].fill_(loc)
    assert float(hyper.neg_log_prior().detach()) == pytest.approx(0.0, abs=1e-12)
    lengthscale = params["covar.base_kernel.raw_lengthscale"]
    with torch.no_grad():
        lengthscale.add_(1.0)
    hyper.neg_log_prior().backward()
    assert bool((lengthscale.grad > 0).all())  # descent lowers a too-long lengthscale
    loc, scale = PRIOR["covar.base_kernel.raw_lengthscale"]
    assert float(hyper.neg_log_prior().detach()) == pytest.approx(2 * 3 * 0.5 / scale**2)


def test_hyper_prior_must_be_a_bool():
    with pytest.raises(ValueError, match="hyper_prior must be a bool"):
        GPConfig(hyper_prior="yes")
