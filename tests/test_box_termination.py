import math

import pytest
import torch

from mbrl.agents import RunConfig, run
from mbrl.data import TransitionBatch
from mbrl.models import FitConfig, load_checkpoint, save_checkpoint
from mbrl.models.box_termination import BoxTermination

LIMITS = torch.tensor([2.4, math.inf, 0.2095, math.inf])  # CartPole: |x| and |theta| bounded


def _batch(next_obs: torch.Tensor, terminated: torch.Tensor) -> TransitionBatch:
    n = next_obs.shape[0]
    return TransitionBatch(
        next_obs, torch.zeros(n, 2), torch.ones(n), next_obs,
        terminated, torch.zeros(n, dtype=torch.bool),
    )  # fmt: skip


def _cartpole_like(n_safe: int, n_end: int, seed: int = 0) -> TransitionBatch:
    """Safe states inside CartPole's limits; endings just past one limit (as the env gives)."""
    g = torch.Generator().manual_seed(seed)
    scale = torch.tensor([2.4, 2.0, 0.2095, 3.0])
    safe = (torch.rand(n_safe, 4, generator=g) * 2 - 1) * scale
    ends = (torch.rand(n_end, 4, generator=g) * 2 - 1) * scale
    side = torch.randint(0, 4, (n_end,), generator=g)  # x high, x low, theta high, theta low
    dim = torch.tensor([0, 0, 2, 2])[side]
    sign = torch.tensor([1.0, -1.0, 1.0, -1.0])[side]
    past = LIMITS[dim] + 0.05 * torch.rand(n_end, generator=g) * scale[dim]
    ends[torch.arange(n_end), dim] = sign * past
    obs = torch.cat([safe, ends])
    done = torch.cat([torch.zeros(n_safe, dtype=torch.bool), torch.ones(n_end, dtype=torch.bool)])
    return _batch(obs, done)


def test_box_recovers_cartpole_limits_and_predicts_endings() -> None:
    box = BoxTermination(4, 2)
    fit = box.fit_bounds(_cartpole_like(3000, 12))
    assert fit.endings == 12 and fit.unexplained == 0
    assert sorted((d, s) for d, s, _ in fit.sides) == [
        (0, "high"),
        (0, "low"),
        (2, "high"),
        (2, "low"),
    ]
    torch.testing.assert_close(box.high[[0, 2]], LIMITS[[0, 2]], atol=0.03, rtol=0)
    torch.testing.assert_close(box.low[[0, 2]], -LIMITS[[0, 2]], atol=0.03, rtol=0)
    assert box.high[1] == math.inf and box.low[3] == -math.inf
    test = _cartpole_like(2000, 500, seed=1)
    pred = box(test.obs, test.action, test.next_obs)
    assert pred.shape == (2500,) and pred.dtype == torch.bool
    # Limits sit halfway between the last safe state and the nearest ending: no safe state is
    # flagged, and only endings that overshoot by less than that half-gap are missed.
    assert not bool((pred & ~test.terminated).any())
    assert pred[test.terminated].float().mean() > 0.8
    assert torch.equal(box.probability(test.obs, test.action, test.next_obs), pred.float())


def test_more_endings_settle_an_ambiguous_side() -> None:
    # One fall: past the safe range in angle (dim 2) and, further, in angular speed (dim 3).
    safe = torch.zeros(200, 4)
    safe[:, 2] = torch.linspace(-0.2, 0.2, 200)
    safe[:, 3] = torch.linspace(-1.0, 1.0, 200)
    first = torch.tensor([[0.0, 0.0, 0.21, 1.5]])
    box = BoxTermination(4, 2)
    one = box.fit_bounds(_batch(torch.cat([safe, first]), torch.arange(201) >= 200))
    assert [(d, s) for d, s, _ in one.sides] == [(3, "high")]  # the larger overshoot wins
    # A slow lean past the same angle: only the angle limit accounts for both endings.
    second = torch.tensor([[0.0, 0.0, 0.22, 0.1]])
    two = box.fit_bounds(_batch(torch.cat([safe, first, second]), torch.arange(202) >= 200))
    assert [(d, s) for d, s, _ in two.sides] == [(2, "high")]
    assert box.high[3] == math.inf and 0.2 < float(box.high[2]) < 0.21


def test_endings_inside_the_safe_box_are_reported_not_hidden() -> None:
    obs = torch.tensor([[0.0], [1.0], [-1.0], [0.5], [3.0]])
    done = torch.tensor([False, False, False, True, True])
    box = BoxTermination(1, 1)
    fit = box.fit_bounds(_batch(obs, done))
    assert fit.endings == 2 and fit.unexplained == 1 and fit.sides == ((0, "high", 2.0),)


def test_without_endings_nothing_terminates() -> None:
    box = BoxTermination(3, 1)
    obs = torch.randn(50, 3)
    fit = box.fit_bounds(_batch(obs, torch.zeros(50, dtype=torch.bool)))
    assert fit.sides == () and fit.endings == 0
    assert not bool(box(obs, torch.zeros(50, 1), obs * 100).any())


def test_box_checkpoint_round_trip_keeps_open_sides(tmp_path) -> None:
    box = BoxTermination(4, 2)
    box.fit_bounds(_cartpole_like(500, 8))
    save_checkpoint(tmp_path / "term.pt", box)
    loaded, _ = load_checkpoint(tmp_path / "term.pt", expected_class=BoxTermination)
    assert torch.equal(loaded.low, box.low) and torch.equal(loaded.high, box.high)
    test = _cartpole_like(100, 100, seed=2)
    assert torch.equal(
        loaded(test.obs, test.action, test.next_obs), box(test.obs, test.action, test.next_obs)
    )


def test_box_rejects_bad_input() -> None:
    box = BoxTermination(4, 2)
    with pytest.raises(ValueError, match=r"next_obs must have shape \(\.\.\., 4\)"):
        box(torch.zeros(2, 4), torch.zeros(2, 2), torch.zeros(2, 3))
    with pytest.raises(ValueError, match=r"next_obs must have shape \(N, 4\)"):
        box.fit_bounds(_batch(torch.zeros(3, 5), torch.zeros(3, dtype=torch.bool)))
    bad = torch.zeros(3, 4)
    bad[1, 2] = math.nan
    with pytest.raises(ValueError, match="NaN or inf"):
        box.fit_bounds(_batch(bad, torch.zeros(3, dtype=torch.bool)))
    with pytest.raises(ValueError, match="termination must be 'mlp' or 'box'"):
        RunConfig(termination="tree")


def test_run_with_box_termination_plans_with_learned_limits() -> None:
    cfg = RunConfig(
        env_id="CartPole-v1",
        planner="mcts",
        reward="learned",
        termination="box",
        seed_episodes=3,
        episodes=1,
        horizon=5,
        gamma=0.95,
        model_options={"ensemble_size": 2, "hidden_size": 32, "num_layers": 2},
        planner_options={"num_simulations": 8, "leaves_per_batch": 4},
        fit=FitConfig(max_steps=50, eval_every=25),
        progress=False,
        explicit={"termination"},
    )
    result = run(cfg)
    box = result.termination_fn
    assert isinstance(box, BoxTermination)
    # Random CartPole episodes end by the pole falling: an angle limit near 0.21 is learned.
    limits = torch.cat([box.high[2:3], -box.low[2:3]])
    assert bool(((limits - 0.2095).abs() < 0.03).any())
