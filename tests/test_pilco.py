"""PILCO: policy moments, the saturating cost, gradients through the rollout, and learning."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch import nn

from mbrl.models.checkpoint import save_checkpoint
from mbrl.models.gp.belief import (
    BeliefDynamics,
    ExpectedReward,
    SaturatingReward,
    expected_saturating_cost,
    saturating_cost,
)
from mbrl.models.gp.model import GPConfig, GPDynamics
from mbrl.models.gp.moments import GaussianState, sine_saturation, trig_moments
from mbrl.planners.pilco import LinearPolicy, PILCOConfig, PILCOPlanner, RBFPolicy
from mbrl.planners.registry import PlannerContext, build_planner
from mbrl.spaces import ActionCodec
from mbrl.task_fns import get_task_fns

torch.set_num_threads(1)
F64 = torch.float64
LOW, HIGH = -torch.ones(1), torch.ones(1)
# A double integrator (position, velocity) with 0.2 s steps, |u| <= 1.
A_SYS = torch.tensor([[1.0, 0.2], [0.0, 1.0]], dtype=F64)
B_SYS = torch.tensor([[0.02], [0.2]], dtype=F64)


def _gaussian(o: int, seed: int = 0, scale: float = 0.3) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    mean = torch.randn(1, o, generator=gen, dtype=F64) * 0.5
    root = torch.randn(o, o, generator=gen, dtype=F64) * scale
    return mean, (root @ root.T + 0.01 * torch.eye(o, dtype=F64)).unsqueeze(0)


def _samples(mean: torch.Tensor, cov: torch.Tensor, n: int = 200_000, seed: int = 1):
    gen = torch.Generator().manual_seed(seed)
    eps = torch.randn(n, mean.shape[1], generator=gen, dtype=F64)
    return mean + eps @ torch.linalg.cholesky(cov[0]).T


def _mc_moments(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, ...]:
    mean = y.mean(0)
    cov = torch.cov(y.T).reshape(y.shape[1], y.shape[1])
    cross = (x - x.mean(0)).T @ (y - mean) / (x.shape[0] - 1)
    return mean, cov, cross


def _gp(n: int, nonlinear: bool, mean: str = "linear", seed: int = 0) -> GPDynamics:
    """A GP of the double integrator (or of a smooth nonlinear 2-D system) from ``n`` points."""
    gen = torch.Generator().manual_seed(seed)
    s = torch.rand(n, 2, generator=gen, dtype=F64) * 4 - 2
    a = torch.rand(n, 1, generator=gen, dtype=F64) * 2 - 1
    nxt = s @ A_SYS.T + a @ B_SYS.T
    if nonlinear:
        nxt = s + 0.3 * torch.sin(s[:, [1, 0]]) + 0.2 * a
    nxt = nxt + 0.01 * torch.randn(n, 2, generator=gen, dtype=F64)
    model = GPDynamics(2, 1, GPConfig(mean=mean))
    model.fit_data(s, a, nxt)
    return model


def _planner(model: GPDynamics, **cfg) -> PILCOPlanner:
    cfg.setdefault("target", (0.0, 0.0))
    return PILCOPlanner(
        model,
        None,
        None,
        LOW,
        HIGH,
        cfg.pop("horizon", 15),
        PILCOConfig(**cfg),
        generator=torch.Generator().manual_seed(0),
    )


# ---------------------------------------------------------------------- moments
def test_trig_moments_and_sine_saturation_match_monte_carlo() -> None:
    mean, cov = _gaussian(3)
    freq = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, -2.0], [1.0, 0.0, 0.0]], dtype=F64)
    phase = torch.tensor([0.0, 0.3, math.pi / 2], dtype=F64)
    t_mean, t_cov, gain = trig_moments(mean, cov, freq, phase)
    x = _samples(mean, cov)
    mc_mean, mc_cov, mc_cross = _mc_moments(x, torch.sin(x @ freq.T + phase))
    torch.testing.assert_close(t_mean[0], mc_mean, atol=5e-3, rtol=0)
    torch.testing.assert_close(t_cov[0], mc_cov, atol=5e-3, rtol=0)
    torch.testing.assert_close((cov @ gain)[0], mc_cross, atol=5e-3, rtol=0)
    # the saturation stays in its box and its moments are exact
    low, high = torch.tensor([-2.0, 0.0], dtype=F64), torch.tensor([1.0, 4.0], dtype=F64)
    y_mean, y_cov = mean[:, :2] * 3, cov[:, :2, :2] * 4
    u_mean, u_cov, u_gain = sine_saturation(y_mean, y_cov, low, high)
    y = _samples(y_mean, y_cov)
    u = (low + high) / 2 + (high - low) / 2 * (9 * torch.sin(y) + torch.sin(3 * y)) / 8
    assert bool(((u >= low - 1e-12) & (u <= high + 1e-12)).all())
    mc_mean, mc_cov, mc_cross = _mc_moments(y, u)
    torch.testing.assert_close(u_mean[0], mc_mean, atol=1e-2, rtol=0)
    torch.testing.assert_close(u_cov[0], mc_cov, atol=1e-2, rtol=0)
    torch.testing.assert_close((y_cov @ u_gain)[0], mc_cross, atol=1e-2, rtol=0)


@pytest.mark.parametrize("kind", ["linear", "rbf"])
def test_policy_moments_match_monte_carlo(kind: str) -> None:
    gen = torch.Generator().manual_seed(3)
    low, high = torch.tensor([-1.0, 0.0]), torch.tensor([1.0, 2.0])
    if kind == "linear":
        policy = LinearPolicy(3, 2, low, high)
    else:
        policy = RBFPolicy(3, 2, low, high, num_basis=6)
    policy.initialize(torch.zeros(3, dtype=F64), torch.ones(3, dtype=F64), 1.0, gen)
    mean, cov = _gaussian(3, seed=4, scale=0.2)
    u_mean, u_cov, gain = policy.moments(mean, cov)
    x = _samples(mean, cov)
    with torch.no_grad():
        u = policy(x)
        y = policy.pre(x)
    y_mean, y_cov, y_gain = policy.pre_moments(mean, cov)
    # the pre-activation's moments are exact for both policies (the RBF network's by PILCO's
    # formulas) ...
    mc = _mc_moments(x, y)
    torch.testing.assert_close(y_mean[0], mc[0], atol=5e-3, rtol=0)
    torch.testing.assert_close(y_cov[0], mc[1], atol=5e-3, rtol=0)
    torch.testing.assert_close((cov @ y_gain)[0], mc[2], atol=5e-3, rtol=0)
    # ... and so are the saturated action's for the linear policy (a Gaussian pre-activation);
    # for the RBF network they are PILCO's Gaussian approximation.
    tol = 5e-3 if kind == "linear" else 3e-2
    mc = _mc_moments(x, u)
    torch.testing.assert_close(u_mean[0], mc[0], atol=tol, rtol=0)
    torch.testing.assert_close(u_cov[0], mc[1], atol=tol, rtol=0)
    torch.testing.assert_close((cov @ gain)[0], mc[2], atol=tol, rtol=0)


def test_expected_saturating_cost_matches_monte_carlo_and_the_point_cost() -> None:
    mean, cov = _gaussian(3, seed=5)
    target = torch.tensor([0.2, -0.1, 0.0], dtype=F64)
    weights = torch.tensor([2.0, 0.5, 0.0], dtype=F64)
    x = _samples(mean, cov)
    mc = saturating_cost(x, target, weights).mean()
    exact = expected_saturating_cost(mean, cov, target, weights)
    torch.testing.assert_close(exact[0], mc, atol=3e-3, rtol=0)
    point = expected_saturating_cost(mean, torch.zeros_like(cov), target, weights)
    torch.testing.assert_close(point, saturating_cost(mean, target, weights))
    with pytest.raises(ValueError, match="weights"):
        SaturatingReward(target, -weights)
    with pytest.raises(ValueError, match="same length"):
        SaturatingReward(target, weights[:2])


# ---------------------------------------------------------------------- gradients
@pytest.mark.parametrize("kind", ["linear", "rbf"])
def test_policy_gradient_matches_finite_differences_through_the_rollout(kind: str) -> None:
    model = _gp(20, nonlinear=True)
    planner = _planner(
        model, policy=kind, horizon=4, num_basis=5, init_std=0.5, start_std=0.2, target=(0.5, 0)
    )
    start = GaussianState(
        torch.tensor([[0.3, -0.4]], dtype=F64),
        torch.tensor([[[0.04, 0.01], [0.01, 0.03]]], dtype=F64),
    )
    planner._initialize_policy(start)
    params = list(planner.policy.parameters())
    theta = nn.utils.parameters_to_vector(params).detach().clone()

    def objective(vec: torch.Tensor) -> torch.Tensor:
        nn.utils.vector_to_parameters(vec, params)
        return planner.expected_return(start).sum()

    value = objective(theta)
    grad = torch.cat([g.reshape(-1) for g in torch.autograd.grad(value, params)])
    fd = torch.zeros_like(theta)
    eps = 1e-5
    with torch.no_grad():
        for i in range(theta.numel()):
            step = torch.zeros_like(theta)
            step[i] = eps
            fd[i] = (objective(theta + step) - objective(theta - step)) / (2 * eps)
    assert float(fd.abs().max()) > 0.1  # the objective does depend on the parameters
    torch.testing.assert_close(grad, fd, atol=1e-6, rtol=1e-5)


# ---------------------------------------------------------------------- learning
def test_linear_policy_on_a_linear_system_reduces_the_expected_and_the_real_cost() -> None:
    model = _gp(10, nonlinear=False)  # ten transitions
    planner = _planner(model, policy="linear", iterations=40)
    x0 = torch.tensor([1.5, 0.0])
    action = planner.plan(x0)
    info = planner.last_info
    assert action.shape == (1, 1) and action.dtype == torch.float32
    assert info["expected_return"] > 0.7 * info["initial_return"]  # returns are negative costs
    target, weights = torch.zeros(2, dtype=F64), torch.ones(2, dtype=F64)
    x, cost = x0.to(F64).unsqueeze(0), 0.0
    for _ in range(15):  # the real system under the learned policy
        u = planner.act(x).to(F64)
        assert bool((u.abs() <= 1).all())
        x = x @ A_SYS.T + u @ B_SYS.T
        cost += float(saturating_cost(x, target, weights))
    standing = 15 * float(saturating_cost(x0.to(F64), target, weights))  # doing nothing
    assert cost < 0.6 * standing
    assert float(x[0, 0].abs()) < 0.5  # from 1.5 towards the target
    # the model's expected cost predicted the real one
    assert abs(cost + info["expected_return"]) < 0.2 * cost


def test_plan_optimises_once_per_fit_and_then_acts_by_the_policy() -> None:
    model = _gp(12, nonlinear=False)
    planner = _planner(model, policy="linear", iterations=5, horizon=5)
    obs = torch.tensor([1.0, 0.0])
    first = planner.plan(obs)
    assert planner.plan_stats.records[-1].work > 0
    second = planner.plan(torch.tensor([0.5, 0.1]))
    assert planner.plan_stats.records[-1].work == 0  # no fit since: the policy acts
    torch.testing.assert_close(second, planner.act(torch.tensor([[0.5, 0.1]])))
    torch.testing.assert_close(planner.plan(obs), first)
    planner.reset()
    planner.plan(torch.tensor([-1.0, 0.0]))  # an episode start, recorded
    start = planner.start_distribution()
    torch.testing.assert_close(start.mean[0], torch.zeros(2, dtype=F64))
    gen = torch.Generator().manual_seed(9)
    s = torch.rand(12, 2, generator=gen, dtype=F64)
    a = torch.rand(12, 1, generator=gen, dtype=F64)
    model.add_data(s, a, s @ A_SYS.T + a @ B_SYS.T)
    planner.plan(obs)
    assert planner.plan_stats.records[-1].work > 0  # the posterior changed: re-optimised


def test_optimise_shows_a_progress_bar_on_request_and_reports_convergence(capsys) -> None:
    model = _gp(10, nonlinear=False)
    planner = _planner(model, policy="linear", iterations=3, horizon=4)
    x0 = GaussianState(torch.tensor([[1.0, 0.0]], dtype=F64), 1e-4 * torch.eye(2, dtype=F64)[None])
    info = planner.optimise(x0, progress=True)
    err = capsys.readouterr().err
    assert "PILCO policy" in err and f"/{3}" in err and "J " in err
    assert info["iterations"] <= 3 and info["converged"] in (0.0, 1.0)
    planner.optimise(x0, progress=False)
    assert "PILCO policy" not in capsys.readouterr().err


def test_the_objective_reuses_its_last_evaluation_for_the_same_parameters(monkeypatch) -> None:
    from mbrl.planners.pilco import _NegativeReturn

    planner = _planner(_gp(12, nonlinear=False), policy="linear", iterations=3, horizon=4)
    x0 = GaussianState(torch.tensor([[1.0, 0.0]], dtype=F64), 1e-4 * torch.eye(2, dtype=F64)[None])
    planner._initialize_policy(x0)
    params = [p for p in planner.policy.parameters() if p.requires_grad]
    objective = _NegativeReturn(planner, x0, params)
    theta = objective.current()
    value, grad = objective(theta)
    grad[:] = 0.0  # the caller's copy: the kept result is not changed through it
    again, grad_again = objective(theta.copy())
    assert objective.evaluations == 1 and again == value and np.abs(grad_again).sum() > 0
    other, _ = objective(theta + 0.1)
    assert objective.evaluations == 2 and other != value
    assert objective(theta)[0] == value and objective.evaluations == 3  # only the last is kept
    import scipy.optimize

    runs = []
    minimize = scipy.optimize.minimize

    def counted(*args, **kwargs):
        runs.append(minimize(*args, **kwargs))
        return runs[-1]

    monkeypatch.setattr(scipy.optimize, "minimize", counted)
    info = planner.optimise(x0)
    # The initial return optimise reports is L-BFGS-B's first evaluation, not one more.
    assert len(runs) == 1 and info["evaluations"] == runs[0].nfev


def test_restarts_keep_the_best_of_several_optimisations() -> None:
    model = _gp(12, nonlinear=True)
    x0 = GaussianState(torch.tensor([[1.5, 0.0]], dtype=F64), 1e-4 * torch.eye(2, dtype=F64)[None])
    plain = _planner(model, iterations=4, horizon=6)
    plain_info = plain.optimise(x0)
    again = _planner(model, iterations=4, horizon=6)
    assert again.optimise(x0)["expected_return"] == plain_info["expected_return"]  # seeded
    restarted = _planner(model, iterations=4, horizon=6, restarts=3)
    info = restarted.optimise(x0)
    # the first of the four runs is the plain one; the best of all four is kept and loaded
    assert info["expected_return"] >= plain_info["expected_return"]
    assert info["evaluations"] > plain_info["evaluations"] and info["best_start"] in range(4)
    assert float(restarted.expected_return(x0).detach()) == pytest.approx(info["expected_return"])
    with pytest.raises(ValueError, match="restarts"):
        PILCOConfig(restarts=-1)


@pytest.mark.parametrize("start", ["episodes", "current"])
def test_start_current_optimises_from_the_observation_where_the_model_changed(
    monkeypatch, start: str
) -> None:
    model = _gp(12, nonlinear=False)
    planner = _planner(model, policy="linear", iterations=3, horizon=4, start=start)
    seen: list[GaussianState] = []
    original = planner.optimise

    def recording(given=None):
        seen.append(given if given is not None else planner.start_distribution())
        return original(given)

    monkeypatch.setattr(planner, "optimise", recording)
    planner.plan(torch.tensor([1.0, 0.0]))  # the episode start
    gen = torch.Generator().manual_seed(3)
    s = torch.rand(5, 2, generator=gen, dtype=F64)
    a = torch.rand(5, 1, generator=gen, dtype=F64)
    model.add_data(s, a, s @ A_SYS.T + a @ B_SYS.T)
    planner.plan(torch.tensor([0.2, -0.4]))  # mid-episode, after the model changed
    assert len(seen) == 2
    want = [1.0, 0.0] if start == "episodes" else [0.2, -0.4]
    torch.testing.assert_close(seen[1].mean[0], torch.tensor(want, dtype=F64))
    torch.testing.assert_close(seen[1].cov[0], 1e-4 * torch.eye(2, dtype=F64))


def test_task_reward_by_cubature_agrees_with_the_closed_form_cost() -> None:
    model = _gp(15, nonlinear=False)
    target, weights = torch.zeros(2, dtype=F64), torch.ones(2, dtype=F64)
    planner = _planner(model, policy="linear", horizon=6)

    def reward(obs, action, next_obs):
        return -saturating_cost(next_obs, target, weights)

    by_reward = PILCOPlanner(model, reward, None, LOW, HIGH, 6, PILCOConfig(policy="linear"))
    by_reward.policy.load_state_dict(planner.policy.state_dict())
    start = GaussianState(torch.tensor([[1.0, -0.2]], dtype=F64), 0.01 * torch.eye(2)[None])
    closed = planner.expected_return(start)
    cubature = by_reward.expected_return(start)
    torch.testing.assert_close(cubature, closed, atol=0.02, rtol=0)
    assert isinstance(by_reward._reward, ExpectedReward)


def test_saved_policy_loads_and_acts_identically_without_reoptimising(tmp_path) -> None:
    model = _gp(12, nonlinear=False)
    planner = _planner(model, policy="rbf", num_basis=4, iterations=3, horizon=4)
    obs = torch.tensor([1.0, 0.0])
    planner.plan(obs)
    path = tmp_path / "policy.pt"
    planner.save_policy(path, {"episode": 1})
    fresh = _planner(model, policy="rbf", num_basis=4, iterations=3, horizon=4)
    meta = fresh.load_policy(path)
    assert meta["episode"] == 1 and meta["planner"] == "pilco"
    torch.testing.assert_close(fresh.plan(obs), planner.plan(obs))
    assert fresh.plan_stats.records[-1].work == 0
    other = PILCOPlanner(
        model, None, None, -2 * torch.ones(1), HIGH, 4, PILCOConfig(target=(0.0, 0.0))
    )
    with pytest.raises(ValueError, match="action bounds"):
        other.load_policy(path)
    save_checkpoint(tmp_path / "model.pt", model)
    with pytest.raises(ValueError, match="expected a SaturatedPolicy"):
        fresh.load_policy(tmp_path / "model.pt")


def test_unfitted_model_without_a_policy_raises_and_bad_settings_are_refused() -> None:
    model = GPDynamics(2, 1)
    planner = PILCOPlanner(model, None, None, LOW, HIGH, 5, PILCOConfig(target=(0.0, 0.0)))
    with pytest.raises(RuntimeError, match="fitted model"):
        planner.plan(torch.zeros(2))
    with pytest.raises(ValueError, match="target must have obs_dim"):
        PILCOPlanner(model, None, None, LOW, HIGH, 5, PILCOConfig(target=(0.0,)))
    with pytest.raises(ValueError, match="reward_fn or a config.target"):
        PILCOPlanner(model, None, None, LOW, HIGH, 5)
    with pytest.raises(ValueError, match="needs a target"):
        PILCOConfig(cost_weights=(1.0, 1.0))
    with pytest.raises(TypeError, match="policy"):
        PILCOConfig(policy="mlp")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="gaussian_belief"):
        PILCOPlanner(nn.Linear(1, 1), None, None, LOW, HIGH, 5)  # type: ignore[arg-type]
    discrete = ActionCodec.from_space(gym.spaces.Discrete(3))
    with pytest.raises(TypeError, match="continuous"):
        PILCOPlanner.check_action_space(discrete)


def test_registry_builds_pilco_with_options() -> None:
    model = _gp(12, nonlinear=False)
    codec = ActionCodec.from_space(gym.spaces.Box(-1.0, 1.0, (1,), dtype=np.float32))
    ctx = PlannerContext(
        model,
        lambda o, a, n: -n[:, 0].square(),
        None,
        codec,
        torch.Generator().manual_seed(0),
        horizon=7,
        options={"policy": "linear", "iterations": 3},
    )
    planner = build_planner("pilco", ctx)
    assert isinstance(planner, PILCOPlanner) and planner.horizon == 7
    assert isinstance(planner.policy, LinearPolicy) and planner.config.iterations == 3
    assert planner.plan(torch.tensor([0.5, 0.0])).shape == (1, 1)
    bad = PlannerContext(
        model, ctx.reward_fn, None, codec, ctx.generator, options={"population": 3}
    )
    with pytest.raises(ValueError, match="population"):
        build_planner("pilco", bad)


def test_run_gives_pilco_the_episode_length_as_horizon_unless_one_is_chosen() -> None:
    from mbrl.agents.config import RunConfig
    from mbrl.agents.setup import build_run

    def horizon(**kwargs: Any) -> tuple[int, int]:
        base = RunConfig(env_id="Pendulum-v1", model="gp", progress=False)
        setup = build_run(dataclasses.replace(base, **kwargs), dry=True)
        return setup.config.horizon, setup.planner.horizon

    assert horizon(planner="pilco") == (200, 200)  # Pendulum-v1's TimeLimit
    assert horizon(planner="pilco", max_episode_steps=120) == (120, 120)
    typed = {"horizon": 15, "explicit": frozenset({"horizon"})}
    assert horizon(planner="pilco", **typed) == (15, 15)  # typed, even at the default value
    assert horizon(planner="pilco", horizon=40) == (40, 40)
    own = {"horizon": 60, "iterations": 5}
    assert horizon(planner="pilco", planner_options=own)[1] == 60
    assert horizon(planner="cem") == (15, 15)  # replanning planners keep the shared default


def test_belief_dynamics_with_a_policy_propagates_the_joint_state_action_belief() -> None:
    # With a linear (unsaturated-range) policy the closed loop is s' ~ (A + B K) s: the belief's
    # covariance must follow the closed-loop map, which it does only when cov[s, u] is passed.
    model = _gp(30, nonlinear=False)
    policy = LinearPolicy(2, 1, [-50.0], [50.0])
    with torch.no_grad():  # the saturation's slope at 0 is 50 * 12 / 8 = 75
        policy.weight.copy_(torch.tensor([[-0.5, -0.8]], dtype=F64) / 75)
    belief = BeliefDynamics(model, "moment_matching", policy)
    cov = torch.tensor([[[0.02, 0.0], [0.0, 0.02]]], dtype=F64)
    state = belief.initial_state(torch.zeros(1, 2))
    state = type(state)(GaussianState(torch.zeros(1, 2, dtype=F64), cov), state.cross)
    nxt = belief.step(state, torch.zeros(1, 1, dtype=F64)).belief
    _, _, gain = policy.moments(state.belief.mean, cov)
    k = gain[0].T  # (1, 2): cov[u, s] cov[s]^-1, ~(-0.5, -0.8)
    torch.testing.assert_close(k, torch.tensor([[-0.5, -0.8]], dtype=F64), atol=0.01, rtol=0)
    closed = A_SYS + B_SYS @ k
    expected = closed @ cov[0] @ closed.T
    torch.testing.assert_close(nxt.cov[0], expected, atol=2e-3, rtol=0.05)


def _swingup_script():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "scripts" / "pilco_swingup_check.py"
    spec = importlib.util.spec_from_file_location("pilco_swingup_check", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_swingup_check_sets_the_start_state_it_is_given():
    script = _swingup_script()
    obs, action, nxt = script.random_transitions(25, seed=0)
    assert obs.shape == nxt.shape == (25, 3) and action.shape == (25, 1)
    assert torch.allclose(nxt[:, 0] ** 2 + nxt[:, 1] ** 2, torch.ones(25), atol=1e-5)
    model = GPDynamics(3, 1, GPConfig())
    model.fit_data(obs, action, nxt)
    fns = get_task_fns("Pendulum-v1")
    planner = PILCOPlanner(
        model, fns.reward, fns.termination, -2 * torch.ones(1), 2 * torch.ones(1), 5
    )
    # The unoptimised RBF policy has zero weights: it applies no torque, so an upright
    # pendulum stays up (return ~0) and a hanging one stays down (-pi^2 per step).
    assert script.real_return(planner, 0.0, 0.0) > -1e-3
    assert script.real_return(planner, math.pi, 0.0) == pytest.approx(-200 * math.pi**2, rel=1e-3)


def test_swingup_trials_record_the_transitions_they_act_out():
    from mbrl.models.known.pendulum import KnownPendulum

    script = _swingup_script()
    ret, (obs, action, nxt) = script.episode(None, math.pi, 0.0, 30, np.random.default_rng(3))
    assert obs.shape == nxt.shape == (30, 3) and action.shape == (30, 1)
    assert bool((action.abs() <= 2).all()) and float(action.std()) > 0.5  # random torques
    torch.testing.assert_close(obs[0], torch.tensor([-1.0, 0.0, 0.0]), atol=1e-6, rtol=0)
    torch.testing.assert_close(obs[1:], nxt[:-1])  # one unbroken episode
    # every recorded triple is a true Pendulum-v1 step, and the return is the task reward's
    torch.testing.assert_close(KnownPendulum().step(obs, action), nxt, atol=1e-5, rtol=0)
    reward = get_task_fns("Pendulum-v1").reward(obs, action, nxt)
    assert ret == pytest.approx(float(reward.sum()), rel=1e-5)
