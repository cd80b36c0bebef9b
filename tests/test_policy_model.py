import re

import pytest
import torch
from conftest import TINY_CARTPOLE

from mbrl.agents import RunConfig, run
from mbrl.cli import main as cli_main
from mbrl.data import TransitionBatch
from mbrl.models import FitConfig, load_checkpoint, save_checkpoint
from mbrl.models.policy_model import LearnedPolicy, fit_policy

FAST = FitConfig(max_steps=800, eval_every=100, patience=4)


def _batch(obs: torch.Tensor, action: torch.Tensor) -> TransitionBatch:
    n = obs.shape[0]
    return TransitionBatch(
        obs, action, torch.zeros(n), obs.clone(), torch.zeros(n, dtype=torch.bool),
        torch.zeros(n, dtype=torch.bool),
    )  # fmt: skip


def _bang_bang(n: int, seed: int = 0) -> TransitionBatch:
    """A balancing rule: push right (slot 1) when obs[0] + 0.5 obs[1] > 0, else left."""
    g = torch.Generator().manual_seed(seed)
    obs = torch.randn(n, 2, generator=g)
    slot = (obs[:, 0] + 0.5 * obs[:, 1] > 0).long()
    return _batch(obs, torch.nn.functional.one_hot(slot, 2).float())


def test_discrete_policy_imitates_a_known_rule_and_samples_one_hot_rows() -> None:
    policy = LearnedPolicy(2, 2, discrete=True)
    fit_policy(policy, _bang_bang(2000), FAST, torch.Generator().manual_seed(0))
    test = _bang_bang(500, seed=1)
    with torch.no_grad():
        chosen = policy(test.obs).argmax(dim=-1)
        sampled = policy.sample(test.obs, torch.Generator().manual_seed(2))
    assert (chosen == test.action.argmax(dim=-1)).float().mean() > 0.95
    assert sampled.shape == (500, 2) and sampled.dtype == torch.float32
    assert torch.equal(sampled.sum(dim=1), torch.ones(500))
    # Away from the switching line the samples follow the rule almost always.
    far = (test.obs[:, 0] + 0.5 * test.obs[:, 1]).abs() > 0.5
    assert (sampled[far].argmax(dim=1) == test.action[far].argmax(dim=1)).float().mean() > 0.95


def test_unfitted_policies_are_uniform_or_centred_and_seeded() -> None:
    obs = torch.randn(4000, 3)
    discrete = LearnedPolicy(3, 4, discrete=True)
    with torch.no_grad():
        slots = discrete.sample(obs, torch.Generator().manual_seed(0)).argmax(dim=1)
    counts = torch.bincount(slots, minlength=4).float() / 4000
    assert torch.allclose(counts, torch.full((4,), 0.25), atol=0.03)
    box = LearnedPolicy(3, 1, discrete=False, low=[-2.0], high=[2.0])
    with torch.no_grad():
        a = box.sample(obs, torch.Generator().manual_seed(0))
        again = box.sample(obs, torch.Generator().manual_seed(0))
    assert a.shape == (4000, 1) and torch.equal(a, again)
    assert bool((a.abs() <= 2.0).all()) and abs(float(a.mean())) < 0.1 and float(a.std()) > 0.8


def test_box_policy_learns_a_linear_controller_within_bounds() -> None:
    g = torch.Generator().manual_seed(0)
    obs = torch.randn(3000, 2, generator=g)
    target = (-0.8 * obs[:, :1] + 0.05 * torch.randn(3000, 1, generator=g)).clamp(-1.0, 1.0)
    policy = LearnedPolicy(2, 1, discrete=False, low=[-1.0], high=[1.0])
    fit_policy(policy, _batch(obs, target), FitConfig(max_steps=3000, patience=10), g)
    test = torch.tensor([[-0.5, 0.0], [0.0, 1.0], [0.5, -1.0], [3.0, 0.0]])
    with torch.no_grad():
        mean = policy.mode(test)
        draws = policy.sample(test.repeat(200, 1), g).view(200, 4)
    torch.testing.assert_close(
        mean.squeeze(1), torch.tensor([0.4, 0.0, -0.4, -1.0]), atol=0.08, rtol=0
    )
    assert bool((draws.abs() <= 1.0).all())
    # The spread shrinks from the unfitted 1.0 towards the data's 0.05.
    assert float(policy.log_std.detach().exp()) < 0.3


def test_policy_checkpoint_round_trip_gives_identical_samples(tmp_path) -> None:
    policy = LearnedPolicy(2, 1, discrete=False, low=[-1.0], high=[3.0])
    data = _batch(torch.randn(200, 2), torch.rand(200, 1) * 4 - 1)
    fit_policy(policy, data, FitConfig(max_steps=100), torch.Generator().manual_seed(0))
    save_checkpoint(tmp_path / "policy.pt", policy)
    loaded, _ = load_checkpoint(tmp_path / "policy.pt", expected_class=LearnedPolicy)
    obs = torch.randn(50, 2)
    with torch.no_grad():
        a = policy.sample(obs, torch.Generator().manual_seed(3))
        b = loaded.sample(obs, torch.Generator().manual_seed(3))
        torch.testing.assert_close(loaded.log_prob(obs, a), policy.log_prob(obs, a), rtol=0, atol=0)
    assert torch.equal(a, b)


def test_policy_rejects_bad_input_before_training() -> None:
    with pytest.raises(ValueError, match="needs low and high"):
        LearnedPolicy(2, 1, discrete=False)
    with pytest.raises(ValueError, match=r"low and high must have shape \(2,\)"):
        LearnedPolicy(2, 2, discrete=False, low=[-1.0], high=[1.0])
    with pytest.raises(ValueError, match="low < high"):
        LearnedPolicy(2, 1, discrete=False, low=[1.0], high=[1.0])
    with pytest.raises(TypeError, match="discrete must be a bool"):
        LearnedPolicy(2, 2, discrete=1)  # type: ignore[arg-type]
    policy = LearnedPolicy(2, 2, discrete=True)
    with pytest.raises(ValueError, match=r"obs must have shape \(\.\.\., 2\)"):
        policy.sample(torch.zeros(3, 5))
    with pytest.raises(ValueError, match="the policy expects 2"):
        fit_policy(policy, _batch(torch.zeros(4, 3), torch.zeros(4, 2)))
    with pytest.raises(ValueError, match="data actions have 3 features"):
        fit_policy(policy, _batch(torch.zeros(4, 2), torch.zeros(4, 3)))


def test_run_with_learned_policy_fits_it_rolls_out_with_it_and_saves_it(tmp_path) -> None:
    out = tmp_path / "run"
    result = run(RunConfig(**TINY_CARTPOLE, policy="learned", out=str(out)))
    policy = result.policy
    assert policy is not None and result.config.policy == "learned"
    obs = result.buffer.all().obs
    with torch.no_grad():
        logits = policy(obs)
    assert logits.shape == (len(obs), 2) and bool((logits != 0).any())
    loaded, meta = load_checkpoint(out / "policy_model.pt", expected_class=LearnedPolicy)
    assert meta["env"] == "CartPole-v1"
    with torch.no_grad():
        torch.testing.assert_close(loaded(obs), logits, rtol=0, atol=0)


def test_learned_policy_needs_a_planner_that_rolls_out() -> None:
    with pytest.raises(ValueError, match="planner 'ilqr' does not"):
        run(RunConfig(env_id="Pendulum-v1", planner="ilqr", policy="learned", progress=False))
    with pytest.raises(ValueError, match="policy must be"):
        RunConfig(policy="expert")


def test_cli_policy_flag(capsys) -> None:
    assert cli_main(["run", "--planner", "ilqr", "--policy", "learned", "--quiet"]) == 2
    assert "(--policy learned) needs a planner" in capsys.readouterr().err
    argv = ["run", "--env", "CartPole-v1", "--model", "rssm", "--policy", "learned", "--quiet"]
    assert cli_main(argv) == 2
    assert re.search(r"--policy.* not supported with --model rssm", capsys.readouterr().err)
