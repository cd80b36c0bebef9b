from dataclasses import replace

import pytest
import torch
from conftest import quadratic_reward

from mbrl.planners import (
    ICEM_DEFAULTS,
    CEMConfig,
    CEMOptimizer,
    MPPIConfig,
    MPPIOptimizer,
    RandomShootingConfig,
    RandomShootingOptimizer,
    SamplingPlanner,
)
from mbrl.planners.noise import colored_noise
from mbrl.rollout import rollout

LOW, HIGH = torch.tensor([-1.0, -1.0]), torch.tensor([1.0, 1.0])
TARGET = torch.tensor([[0.3, -0.5], [0.1, 0.7], [-0.8, 0.2]])  # (H, A)


def _objective(x: torch.Tensor) -> torch.Tensor:
    return -(x - TARGET).square().sum(dim=(1, 2))


@pytest.mark.parametrize(
    "make",
    [
        lambda g: CEMOptimizer(CEMConfig(population=300, iterations=8), LOW, HIGH, g),
        lambda g: CEMOptimizer(replace(ICEM_DEFAULTS, iterations=6), LOW, HIGH, g),
        lambda g: MPPIOptimizer(MPPIConfig(population=400, iterations=8), LOW, HIGH, g),
    ],
    ids=["cem", "icem", "mppi"],
)
def test_optimizers_find_a_quadratic_optimum(make):
    opt = make(torch.Generator().manual_seed(0))
    best = opt.optimize(_objective, torch.zeros(3, 2))
    assert best.shape == (3, 2)
    assert (best - TARGET).abs().max() < 0.1


def test_random_shooting_beats_its_initial_guess_and_respects_bounds():
    opt = RandomShootingOptimizer(
        RandomShootingConfig(population=2000), LOW, HIGH, torch.Generator().manual_seed(0)
    )
    best = opt.optimize(_objective, torch.zeros(3, 2))
    assert _objective(best[None]) > _objective(torch.zeros(1, 3, 2))
    assert (best >= LOW).all() and (best <= HIGH).all()


def test_optimizers_clip_to_bounds_when_the_optimum_is_outside():
    far = torch.full((3, 2), 5.0)
    for opt in (
        CEMOptimizer(CEMConfig(), LOW, HIGH, torch.Generator().manual_seed(0)),
        MPPIOptimizer(MPPIConfig(), LOW, HIGH, torch.Generator().manual_seed(0)),
    ):
        best = opt.optimize(lambda x: -(x - far).square().sum(dim=(1, 2)), torch.zeros(3, 2))
        assert (best <= HIGH).all() and (best >= LOW).all()
        assert (best > 0.85).all()


def test_same_seed_same_plan():
    a = CEMOptimizer(CEMConfig(), LOW, HIGH, torch.Generator().manual_seed(7)).optimize(
        _objective, torch.zeros(3, 2)
    )
    b = CEMOptimizer(CEMConfig(), LOW, HIGH, torch.Generator().manual_seed(7)).optimize(
        _objective, torch.zeros(3, 2)
    )
    assert torch.equal(a, b)


def test_colored_noise_is_unit_variance_and_smooth():
    g = torch.Generator().manual_seed(0)
    white = colored_noise((2000, 30, 1), 0.0, g, torch.device("cpu"))
    pink = colored_noise((2000, 30, 1), 2.0, g, torch.device("cpu"))
    assert pink.shape == (2000, 30, 1)
    assert pink.std().item() == pytest.approx(1.0, abs=0.05)

    def lag1(x):
        return (x[:, 1:] * x[:, :-1]).mean() / x.var()

    assert lag1(pink) > 0.7 and abs(lag1(white)) < 0.05


def test_cem_planner_beats_random_actions_on_point_mass(point_mass):
    gen = torch.Generator().manual_seed(0)
    low, high = torch.tensor([-1.0]), torch.tensor([1.0])
    planner = SamplingPlanner(
        point_mass,
        quadratic_reward,
        None,
        CEMOptimizer(CEMConfig(population=200), low, high, gen),
        horizon=20,
    )

    def episode(policy, x0):
        x, total = x0.clone(), 0.0
        for _ in range(60):
            u = policy(x)
            nx = point_mass.step(x[None], u[None])[0]
            total += quadratic_reward(x[None], u[None], nx[None]).item()
            x = nx
        return total

    starts = [torch.tensor([1.5, 0.0]), torch.tensor([-1.0, 0.5]), torch.tensor([0.5, -1.0])]
    planned = sum(episode(lambda x: (planner.reset(), planner.plan(x))[1][0], s) for s in starts)
    rng = torch.Generator().manual_seed(1)
    random = sum(episode(lambda x: torch.rand(1, generator=rng) * 2 - 1, s) for s in starts)
    assert planned > 0.3 * random  # returns are negative: planned loses far less than a third
    assert planned > random + 10


def test_planner_warm_start_shifts_previous_plan_by_the_advanced_steps(point_mass):
    opt = CEMOptimizer(
        CEMConfig(population=50, iterations=1),
        torch.tensor([-1.0]),
        torch.tensor([1.0]),
        torch.Generator().manual_seed(0),
    )
    planner = SamplingPlanner(point_mass, quadratic_reward, None, opt, horizon=5)
    seen = []
    opt_fn = opt.optimize
    opt.optimize = lambda obj, init, *args: (seen.append(init.clone()), opt_fn(obj, init, *args))[1]
    first = planner.plan(torch.tensor([1.0, 0.0]))
    planner.advance(1)
    second = planner.plan(torch.tensor([1.0, 0.0]))
    assert torch.equal(seen[1][:-1], first[1:]) and seen[1][-1].item() == 0.0
    planner.advance(2)
    third = planner.plan(torch.tensor([1.0, 0.0]))
    assert torch.equal(seen[2][:-2], second[2:]) and (seen[2][-2:] == 0.0).all()
    planner.plan(torch.tensor([1.0, 0.0]))  # nothing executed: the previous plan unshifted
    assert torch.equal(seen[3], third)
    planner.reset()
    planner.plan(torch.tensor([1.0, 0.0]))
    assert torch.equal(seen[4], torch.zeros(5, 1))


def test_planner_rejects_bad_observations(point_mass):
    planner = SamplingPlanner(
        point_mass,
        quadratic_reward,
        None,
        CEMOptimizer(CEMConfig(), torch.tensor([-1.0]), torch.tensor([1.0]), torch.Generator()),
        5,
    )
    with pytest.raises(ValueError, match=r"obs must have shape \(2,\)"):
        planner.plan(torch.zeros(3))
    with pytest.raises(ValueError, match="NaN"):
        planner.plan(torch.tensor([float("nan"), 0.0]))


def test_config_validation():
    with pytest.raises(ValueError, match="elite_frac"):
        CEMConfig(elite_frac=0.0)
    with pytest.raises(ValueError, match="temperature"):
        MPPIConfig(temperature=0.0)
    with pytest.raises(ValueError, match="low bound"):
        CEMOptimizer(CEMConfig(), torch.tensor([1.0]), torch.tensor([0.0]), torch.Generator())


def test_planner_scores_agree_with_the_rollout_engine(point_mass):
    opt = CEMOptimizer(CEMConfig(), torch.tensor([-1.0]), torch.tensor([1.0]), torch.Generator())
    planner = SamplingPlanner(point_mass, quadratic_reward, None, opt, horizon=4, gamma=0.95)
    cands = torch.rand(8, 4, 1) * 2 - 1
    obs = torch.tensor([0.3, 0.2])
    direct = rollout(point_mass, obs, cands, quadratic_reward, gamma=0.95).returns
    assert torch.allclose(planner.objective(obs)(cands), direct)
