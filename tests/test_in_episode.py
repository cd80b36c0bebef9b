"""Learning inside an episode: random steps until a fit, then plans refitted every K steps."""

import numpy as np
import pytest

from mbrl.agents import RunConfig, run
from mbrl.agents.in_episode import LearningPolicy
from mbrl.models import FitConfig

GP_TINY = dict(
    model="gp",
    planner="cem",
    seed_episodes=0,
    episodes=1,
    max_episode_steps=25,
    horizon=5,
    n_particles=2,
    planner_options={"population": 40, "iterations": 2},
    fit=FitConfig(max_steps=50, eval_every=25),
    progress=False,
)


class _Counter:
    """Fake agent pieces: which policy acted at each step, and when the refits happened."""

    def __init__(self, ready_after: int) -> None:
        self.log: list[str] = []
        self.data = 0
        self.ready_after = ready_after

    def plan(self, obs):
        self.log.append("plan")
        return np.zeros(1)

    def explore(self, obs):
        self.log.append("random")
        return np.ones(1)

    def refit(self):
        self.log.append("fit")
        return {"at": self.data}

    def ready(self):
        return self.data >= self.ready_after


def _drive(policy: LearningPolicy, counter: _Counter, steps: int) -> None:
    for _ in range(steps):
        policy(np.zeros(3))
        counter.data += 1  # the env step adds a transition to the buffer


def test_random_until_ready_then_plans_with_a_refit_every_k_steps():
    c = _Counter(ready_after=3)
    policy = LearningPolicy(c.plan, c.explore, c.refit, c.ready, every=4, fitted=False)
    _drive(policy, c, 12)
    assert c.log == ["random"] * 3 + ["fit"] + ["plan"] * 4 + ["fit"] + ["plan"] * 4 + ["fit"] + [
        "plan"
    ]
    assert (policy.random_steps, policy.refits) == (3, 3)
    assert policy.report == {"at": 11}
    assert policy.fit_seconds >= 0.0


def test_fitted_before_the_episode_plans_at_once_and_zero_never_refits():
    c = _Counter(ready_after=0)
    policy = LearningPolicy(c.plan, c.explore, c.refit, c.ready, every=0, fitted=True)
    _drive(policy, c, 6)
    assert c.log == ["plan"] * 6
    assert (policy.random_steps, policy.refits, policy.report) == (0, 0, None)


@pytest.mark.parametrize("every", [-1, 1.5, True, "3"])
def test_bad_refit_interval_is_rejected(every):
    c = _Counter(0)
    with pytest.raises(ValueError, match="refit_every"):
        LearningPolicy(c.plan, c.explore, c.refit, c.ready, every=every, fitted=True)


def test_run_config_rejects_a_negative_refit_interval():
    with pytest.raises(ValueError, match="refit_every"):
        RunConfig(refit_every=-1)


def test_a_seed_free_run_starts_at_random_and_learns_inside_its_first_episode():
    cfg = RunConfig(**GP_TINY, min_seed_transitions=8, refit_every=5)
    result = run(cfg)
    (rec,) = result.records
    assert rec.kind == "mpc" and rec.steps == 25 and rec.env_steps == 25
    # 8 random steps, a fit before step 9, then refits before steps 14, 19 and 24.
    assert (rec.random_steps, rec.refits) == (8, 4)
    assert rec.fit_seconds > 0.0
    assert result.model.num_data == 23  # the last refit saw this episode's first 23 steps
    again = run(cfg)
    assert again.records[0].episode_return == rec.episode_return
    assert again.model.num_data == 23


def test_refits_inside_later_episodes_count_from_a_fit_before_the_episode():
    cfg = RunConfig(**{**GP_TINY, "seed_episodes": 1, "episodes": 1}, refit_every=10)
    seed, mpc = run(cfg).records
    assert (seed.kind, seed.random_steps, seed.refits) == ("seed", 25, 0)
    # Fitted before the episode on the 25 seed steps, refitted before steps 11 and 21.
    assert (mpc.random_steps, mpc.refits) == (0, 2)


def test_without_refits_a_seed_free_run_fits_once_when_the_data_suffices():
    cfg = RunConfig(**GP_TINY, min_seed_transitions=6)
    (rec,) = run(cfg).records
    assert (rec.random_steps, rec.refits) == (6, 1)


def test_refit_every_is_refused_for_the_planet_loop():
    with pytest.raises(ValueError, match="refit_every=5 .*--refit-every.* not supported"):
        run(RunConfig(model="rssm", refit_every=5, progress=False))


def test_conditioning_runs_on_every_plan_step_that_is_not_a_refit():
    c = _Counter(ready_after=2)
    taken: list[int] = []

    def condition() -> int:
        c.log.append("cond")
        taken.append(c.data)
        return 1

    policy = LearningPolicy(
        c.plan, c.explore, c.refit, c.ready, every=3, fitted=False, condition=condition
    )
    _drive(policy, c, 8)
    assert c.log == (
        ["random"] * 2
        + ["fit", "plan", "cond", "plan", "cond", "plan"]
        + ["fit", "plan", "cond", "plan", "cond", "plan"]
    )
    assert taken == [3, 4, 6, 7] and policy.conditioned == 4 and policy.refits == 2


def test_a_conditioned_gp_holds_every_transition_before_each_plan():
    cfg = RunConfig(**GP_TINY, min_seed_transitions=8, condition_steps=True)
    result = run(cfg)
    (rec,) = result.records
    # One fit on 8 random steps; then each of the 16 later plans first conditions on the
    # step before it, so the GP's posterior holds 24 of the 25 transitions (the last one
    # came after the last plan) though its hyperparameters were learned once.
    assert (rec.random_steps, rec.refits) == (8, 1)
    assert result.model.num_data == 24
    again = run(cfg)
    assert again.records[0].episode_return == rec.episode_return


def _gp_loop_fitted_at_8_with_14_transitions():
    """A GP state loop with ``condition_steps`` fitted on its first 8 of 14 random
    transitions; returns ``(setup, loop, model copy right after that fit)``."""
    import copy

    from mbrl.agents import build_run
    from mbrl.agents.loop import _StateLoop

    setup = build_run(RunConfig(**GP_TINY, min_seed_transitions=8, condition_steps=True))
    loop = _StateLoop(setup)
    gen = np.random.default_rng(0)
    for _ in range(14):
        o, a, o2 = gen.normal(size=3), gen.uniform(-2, 2, size=1), gen.normal(size=3)
        loop.buffer.add(o, a, 0.0, o2, False, False)
        if len(loop.buffer) == 8:
            loop.fit(0)
            at_fit = copy.deepcopy(setup.model)
    return setup, loop, at_fit


def test_the_loop_conditions_on_exactly_the_transitions_since_its_last_fit():
    import torch

    setup, loop, by_hand = _gp_loop_fitted_at_8_with_14_transitions()
    assert loop.condition() == 6 and loop.condition() == 0
    assert setup.model.num_data == 14
    data = loop.buffer.all()
    by_hand.add_data(data.obs[8:], data.action[8:], data.next_obs[8:])
    x, u = torch.randn(5, 3), torch.rand(5, 1) * 4 - 2
    for got, want in zip(setup.model.predict(x, u), by_hand.predict(x, u), strict=True):
        torch.testing.assert_close(got, want)
    loop.fit(0)  # a refit takes everything: nothing is left to condition on
    assert loop.condition() == 0


def test_a_rejected_refit_leaves_its_data_to_conditioning(monkeypatch):
    from mbrl.models.training import FitReport

    setup, loop, _ = _gp_loop_fitted_at_8_with_14_transitions()
    # The GP keeps its previous posterior when a refit fails or does not converge: the six
    # transitions since the accepted fit are not in it and must still reach it.
    monkeypatch.setattr(
        setup.model, "fit_transitions", lambda *args: FitReport(accepted=False), raising=True
    )
    loop.fit(0)
    assert setup.model.num_data == 8
    assert loop.condition() == 6 and setup.model.num_data == 14
    assert loop.condition() == 0


def test_conditioning_is_refused_for_a_model_without_a_cheap_update():
    with pytest.raises(ValueError, match="--condition-steps.*'conditioning' capability"):
        run(RunConfig(**{**GP_TINY, "model": "ensemble"}, condition_steps=True))
    with pytest.raises(TypeError, match="condition_steps must be a bool"):
        RunConfig(condition_steps=1)
