import pytest
import torch
from conftest import TINY_CARTPOLE

from mbrl.agents import RunConfig, run
from mbrl.cli import main as cli_main
from mbrl.data import TransitionBatch
from mbrl.models import FitConfig, load_checkpoint, save_checkpoint
from mbrl.models.value_model import LearnedValue, discounted_returns, fit_value

FAST = FitConfig(max_steps=1500, eval_every=100, patience=6, holdout_frac=0.1)


def _batch(reward, terminated, truncated, obs=None) -> TransitionBatch:
    n = len(reward)
    obs = torch.zeros(n, 1) if obs is None else obs
    return TransitionBatch(
        obs,
        torch.zeros(n, 1),
        torch.tensor(reward, dtype=torch.float32),
        obs.clone(),
        torch.tensor(terminated),
        torch.tensor(truncated),
    )


def test_discounted_returns_cut_at_terminations_and_bootstrap_elsewhere() -> None:
    # episode 1: 3 steps, terminated; episode 2: 2 steps, truncated; episode 3: 1 step, running
    batch = _batch(
        [1.0, 2.0, 3.0, 1.0, 1.0, 5.0],
        [False, False, True, False, False, False],
        [False, False, False, False, True, False],
    )
    boot = torch.tensor([100.0, 100.0, 100.0, 100.0, 10.0, 20.0])
    g = discounted_returns(batch, 0.5, boot)
    expected = torch.tensor([1 + 0.5 * (2 + 0.5 * 3), 2 + 0.5 * 3, 3.0, 1 + 0.5 * 6, 1 + 5, 5 + 10])
    torch.testing.assert_close(g, expected)
    assert g.dtype == torch.float32 and g.shape == (6,)


def test_discounted_returns_reject_bad_gamma_and_bootstrap_shape() -> None:
    batch = _batch([1.0, 1.0], [False, True], [False, False])
    with pytest.raises(ValueError, match="gamma"):
        discounted_returns(batch, 1.0, torch.zeros(2))
    with pytest.raises(ValueError, match=r"bootstrap must have shape \(2,\)"):
        discounted_returns(batch, 0.9, torch.zeros(3))


def _countdown_episodes(lengths: list[int]) -> TransitionBatch:
    """Reward 1 per step until termination; obs = steps left, so V(k) = (1 - g^k) / (1 - g)."""
    obs, term = [], []
    for n in lengths:
        obs += [float(n - t) for t in range(n)]
        term += [False] * (n - 1) + [True]
    o = torch.tensor(obs).unsqueeze(1)
    return _batch([1.0] * len(obs), term, [False] * len(obs), obs=o)


def test_learned_value_recovers_the_discounted_steps_to_termination() -> None:
    gamma = 0.9
    data = _countdown_episodes(list(range(1, 31)))
    value = LearnedValue(1)
    torch.manual_seed(0)
    fit_value(value, data, gamma, FAST, torch.Generator().manual_seed(0))
    k = torch.arange(1, 31, dtype=torch.float32).unsqueeze(1)
    truth = (1 - gamma ** k.squeeze(1)) / (1 - gamma)
    with torch.no_grad():
        err = (value(k) - truth).abs().max().item()
    assert err < 0.25, err  # values span 1..9.6


def test_value_is_a_clipped_lower_bound_that_falls_away_from_the_data() -> None:
    gamma = 0.9
    value = LearnedValue(1)
    fit_value(value, _countdown_episodes(list(range(1, 31))), gamma, FAST, torch.Generator())
    near = torch.arange(1, 31, dtype=torch.float32).unsqueeze(1)
    far = torch.tensor([[-40.0], [80.0], [300.0]])
    with torch.no_grad():
        spread_near = value.members(near).std(dim=0, unbiased=False)
        members_far = value.members(far)
        bound_far = value(far)
    # The members agree on the visited states and disagree away from them, so the bound
    # (mean - 1 std) drops there; it never leaves the targets' range [1, 1/(1-g)].
    spread_far = members_far.std(dim=0, unbiased=False)
    assert float(spread_far.min()) > 5 * float(spread_near.max())
    lcb = members_far.mean(dim=0) - spread_far
    top = (1 - gamma**30) / (1 - gamma)
    torch.testing.assert_close(bound_far, lcb.clamp(1.0, top))
    with pytest.raises(ValueError, match="pessimism must be"):
        LearnedValue(1, pessimism=-1.0)


def test_sweeps_propagate_bootstraps_through_time_limits() -> None:
    # One recurring state, reward 1, cut every 5 steps by a time limit: V = 1 / (1 - g) = 10.
    n, gamma = 400, 0.9
    trunc = [(t + 1) % 5 == 0 for t in range(n)]
    data = _batch([1.0] * n, [False] * n, trunc)
    errs = []
    for sweeps in (1, 12):
        value = LearnedValue(1, hidden_size=16, num_layers=1)
        fit_value(value, data, gamma, FAST, torch.Generator().manual_seed(0), sweeps=sweeps)
        with torch.no_grad():
            errs.append(abs(value(torch.zeros(1, 1)).item() - 10.0))
    assert errs[1] < 0.5 < errs[0], errs


def test_unfitted_value_is_zero_and_shapes_follow_the_input() -> None:
    value = LearnedValue(3)
    out = value(torch.randn(4, 5, 3))
    assert out.shape == (4, 5) and out.dtype == torch.float32
    assert torch.all(out == 0)
    with pytest.raises(ValueError, match=r"obs must have shape \(\.\.\., 3\)"):
        value(torch.randn(4, 2))


def test_fit_value_rejects_bad_input_before_training() -> None:
    value = LearnedValue(2)
    data = _countdown_episodes([3, 4])
    with pytest.raises(ValueError, match="value expects 2"):
        fit_value(value, data, 0.9)
    with pytest.raises(ValueError, match="gamma must be in"):
        fit_value(LearnedValue(1), data, 1.0)
    with pytest.raises(ValueError, match="sweeps"):
        fit_value(LearnedValue(1), data, 0.9, sweeps=0)


def test_value_checkpoint_round_trip_gives_identical_predictions(tmp_path) -> None:
    value = LearnedValue(1)
    fit_value(value, _countdown_episodes([5, 9]), 0.9, FitConfig(max_steps=100))
    path = tmp_path / "value.pt"
    save_checkpoint(path, value)
    loaded, _ = load_checkpoint(path, expected_class=LearnedValue)
    x = torch.linspace(0, 10, 11).unsqueeze(1)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), value(x), rtol=0, atol=0)


def test_run_with_learned_value_fits_it_and_saves_it(tmp_path) -> None:
    out = tmp_path / "run"
    result = run(RunConfig(**TINY_CARTPOLE, gamma=0.95, value="learned", out=str(out)))
    assert result.value_fn is not None
    obs = result.buffer.all().obs
    with torch.no_grad():
        v = result.value_fn(obs)
    assert v.shape == (len(obs),) and bool((v != 0).any())
    loaded, meta = load_checkpoint(out / "value_model.pt", expected_class=LearnedValue)
    assert meta["env"] == "CartPole-v1"
    with torch.no_grad():
        torch.testing.assert_close(loaded(obs), v, rtol=0, atol=0)


def test_cartpole_preset_learns_a_value_and_explicit_flags_win() -> None:
    result = run(RunConfig(**{**TINY_CARTPOLE, "episodes": 0}))
    assert result.config.value == "learned" and result.config.gamma == 0.99
    assert result.config.policy == "learned" and result.config.termination == "box"
    assert result.policy is not None
    cfg = RunConfig(**{**TINY_CARTPOLE, "episodes": 0}, value="none", explicit={"value"})
    assert run(cfg).value_fn is None


def test_learned_value_needs_a_value_planner_and_a_discount() -> None:
    with pytest.raises(ValueError, match="planner 'ilqr' does not"):
        run(
            RunConfig(
                env_id="Pendulum-v1", planner="ilqr", value="learned", gamma=0.99, progress=False
            )
        )
    with pytest.raises(ValueError, match="needs gamma < 1"):
        run(RunConfig(**TINY_CARTPOLE, value="learned", gamma=1.0, explicit={"gamma"}))
    with pytest.raises(ValueError, match="value must be"):
        RunConfig(value="guess")
    with pytest.raises(ValueError, match="gamma must be in"):
        RunConfig(gamma=0.0)


def test_cli_value_and_gamma_flags(capsys) -> None:
    argv = ["run", "--env", "CartPole-v1", "--planner", "mcts", "--gamma", "1", "--quiet"]
    assert cli_main(argv) == 2
    err = capsys.readouterr().err
    assert "needs gamma < 1 (e.g. --gamma 0.99), got gamma=1.0; pass --value none" in err
    argv = ["run", "--planner", "ilqr", "--value", "learned", "--gamma", "0.9", "--quiet"]
    assert cli_main(argv) == 2
    assert "planner 'ilqr' does not" in capsys.readouterr().err
