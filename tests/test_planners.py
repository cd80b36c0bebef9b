from dataclasses import replace

import pytest
import torch
from conftest import LinearModel, quadratic_reward

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
from mbrl.planners.base import PlanningNonFiniteError
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


class _NaNModel(LinearModel):
    """The point mass, but every prediction is NaN (a model that diverged)."""

    def step(self, state, action, generator=None):
        return torch.full_like(super().step(state, action, generator), float("nan"))


def _nan_planner(opt_cls, cfg) -> SamplingPlanner:
    model = _NaNModel(torch.tensor([[1.0, 0.1], [0.0, 1.0]]), torch.tensor([[0.0], [0.1]]))
    opt = opt_cls(cfg, torch.tensor([-1.0]), torch.tensor([1.0]), torch.Generator().manual_seed(0))
    return SamplingPlanner(model, quadratic_reward, None, opt, 4)


NONFINITE = [
    (CEMOptimizer, CEMConfig(population=20, iterations=2)),
    (CEMOptimizer, replace(ICEM_DEFAULTS, population=20)),
    (MPPIOptimizer, MPPIConfig(population=20, iterations=2)),
    (RandomShootingOptimizer, RandomShootingConfig(population=20)),
]


@pytest.mark.parametrize(("opt_cls", "cfg"), NONFINITE, ids=["cem", "icem", "mppi", "shooting"])
def test_all_nonfinite_candidates_warn_naming_the_planner_and_keep_the_warm_start(opt_cls, cfg):
    planner = _nan_planner(opt_cls, cfg)
    with pytest.warns(
        RuntimeWarning, match=rf"{opt_cls.__name__}: every candidate.*dynamics model"
    ):
        plan = planner.plan(torch.tensor([1.0, 0.0]))
    assert torch.equal(plan, torch.zeros(4, 1))  # the warm start: the middle of the box
    with pytest.raises(PlanningNonFiniteError, match="non-finite return"):
        _nan_planner(opt_cls, replace(cfg, on_nonfinite="raise")).plan(torch.tensor([1.0, 0.0]))


def test_only_the_rows_without_a_finite_candidate_fall_back(point_mass):
    opt = CEMOptimizer(CEMConfig(population=30), LOW, HIGH, torch.Generator().manual_seed(0))
    initial = torch.full((2, 3, 2), 0.25)

    def objective(cands):  # row 0 diverged, row 1 is the quadratic problem
        scores = torch.stack([_objective(c) for c in cands])
        return torch.cat([torch.full_like(scores[:1], float("nan")), scores[1:]])

    with pytest.warns(RuntimeWarning, match=r"problem\(s\) \[0\] of 2"):
        best = opt.optimize(objective, initial)
    assert torch.equal(best[0], initial[0])
    assert float(_objective(best[1:])) > float(_objective(initial[1:]))  # row 1 optimised


def test_plus_inf_scores_rank_last_like_nan():
    opt = RandomShootingOptimizer(
        RandomShootingConfig(population=50), LOW, HIGH, torch.Generator().manual_seed(0)
    )

    def objective(cands):
        scores = _objective(cands)
        return torch.where(cands[:, 0, 0] > 0.5, torch.full_like(scores, float("inf")), scores)

    best = opt.optimize(objective, torch.zeros(3, 2))
    assert float(best[0, 0]) <= 0.5


def test_on_nonfinite_is_validated():
    with pytest.raises(ValueError, match="on_nonfinite"):
        CEMConfig(on_nonfinite="ignore")


@pytest.mark.parametrize(
    ("obs", "error", "match"),
    [
        ("abc", TypeError, r"obs must be numbers of shape \(2,\) or \(B, 2\), got str 'abc'"),
        (["a", "b"], TypeError, r"obs must be numbers of shape \(2,\) or \(B, 2\)"),
        ([[1.0], [1.0, 2.0]], TypeError, r"obs must be numbers"),
        (None, TypeError, r"obs must be numbers"),
        (torch.tensor([True, False]), TypeError, r"obs must be real numbers"),
        (torch.zeros(3), ValueError, r"obs must have shape \(2,\) or \(B, 2\), got \(3,\)"),
        (torch.zeros(2, 2, 2), ValueError, r"obs must have shape \(2,\) or \(B, 2\)"),
        (torch.zeros(0, 2), ValueError, r"obs must have shape"),
    ],
    ids=["str", "strings", "ragged", "none", "bool", "size", "rank", "empty"],
)
def test_plan_rejects_bad_obs_naming_it_and_the_expected_shape(point_mass, obs, error, match):
    planner = SamplingPlanner(
        point_mass,
        quadratic_reward,
        None,
        CEMOptimizer(CEMConfig(), torch.tensor([-1.0]), torch.tensor([1.0]), torch.Generator()),
        5,
    )
    with pytest.raises(error, match=match):
        planner.plan(obs)
    assert planner.plan_stats.last is None  # refused before any work


def test_plan_accepts_numpy_and_lists_of_numbers(point_mass):
    import numpy as np

    opt = CEMOptimizer(
        CEMConfig(population=20), torch.tensor([-1.0]), torch.tensor([1.0]), torch.Generator()
    )
    planner = SamplingPlanner(point_mass, quadratic_reward, None, opt, 3)
    assert planner.plan(np.array([1.0, 0.0])).shape == (3, 1)
    assert planner.plan([[1.0, 0.0], [0.0, 1.0]]).shape == (2, 3, 1)
    assert planner.plan(np.array([1, 0], np.int64)).shape == (3, 1)
