import math

import pytest
import torch

from mbrl.data import TransitionBuffer
from mbrl.models import (
    DeltaModelConfig,
    FitConfig,
    GaussianEnsemble,
    LearnedReward,
    LearnedTermination,
    MLPDynamics,
    fit,
    load_checkpoint,
    load_weights,
    save_checkpoint,
)
from mbrl.models.base import DETERMINISTIC, ENSEMBLE, PARTICLES, PropagationView
from mbrl.models.coordinates import StateCoordinates
from mbrl.models.delta_model import DeltaModel
from mbrl.models.known.pendulum import KnownPendulum
from mbrl.rollout.core import simulate

SMALL = DeltaModelConfig(ensemble_size=4, hidden_size=32, num_layers=2)


def _linear_data(n: int, seed: int = 0) -> TransitionBuffer:
    g = torch.Generator().manual_seed(seed)
    obs = torch.randn(n, 2, generator=g)
    act = torch.rand(n, 1, generator=g) * 2 - 1
    nxt = obs @ torch.tensor([[0.9, 0.1], [-0.2, 0.95]]).T + 0.3 * act
    buf = TransitionBuffer(2, 1, capacity=n)
    buf.add(obs, act, -nxt.square().sum(1), nxt, nxt[:, 0] > 1.5, torch.zeros(n, dtype=torch.bool))
    return buf


@pytest.mark.parametrize("propagation", ["ts_inf", "ts1", "expectation"])
def test_step_shapes_and_dtypes(propagation):
    model = GaussianEnsemble(
        3,
        2,
        DeltaModelConfig(ensemble_size=5, hidden_size=16, num_layers=2, propagation=propagation),
    )
    obs = torch.randn(7, 3)
    state = model.initial_state(obs, n_particles=5)
    assert state.shape == (35, 3)
    assert torch.equal(state[7:14], obs)  # particle-major: rows p*B + b
    nxt = model.step(state, torch.zeros(35, 2), torch.Generator().manual_seed(0))
    assert nxt.shape == (35, 3) and nxt.dtype == torch.float32
    single = model.step(obs[:1], torch.zeros(1, 2), torch.Generator().manual_seed(0))
    assert single.shape == (1, 3)


def test_ts_inf_keeps_each_particle_on_one_member():
    model = GaussianEnsemble(
        2, 1, DeltaModelConfig(ensemble_size=4, hidden_size=16, num_layers=2, propagation="ts_inf")
    )
    model.max_logvar.data.fill_(-30.0)  # effectively noiseless: each row shows its member's mean
    model.min_logvar.data.fill_(-40.0)
    obs = torch.zeros(1, 2)
    state = model.initial_state(obs, n_particles=4)
    with torch.no_grad():
        out = model.step(state, torch.zeros(4, 1))
        per_member = model.net(model.input_norm.normalize(torch.zeros(4, 1, 3)))[..., :2]
    assert torch.allclose(out, per_member[:, 0, :], atol=1e-4)


def _labelled_ensemble(propagation: str) -> DeltaModel:
    """5 deterministic members, member ``e`` adds ``e + 1`` to the state; elites 0, 2, 4."""
    cfg = DeltaModelConfig(
        ensemble_size=5,
        hidden_size=4,
        num_layers=1,
        probabilistic=False,
        num_elites=3,
        propagation=propagation,
    )
    model = DeltaModel(1, 1, cfg)
    with torch.no_grad():
        model.net.out.weight.zero_()
        model.net.out.bias.copy_(torch.arange(1.0, 6.0).view(5, 1, 1))
    model.on_fit_end(torch.tensor([0.0, 9.0, 1.0, 9.0, 2.0]))
    assert model.elites.tolist() == [0, 2, 4]
    return model


def _members_per_step(model: DeltaModel, m_rows: int, horizon: int = 6) -> torch.Tensor:
    """``(H, M)`` member index each row used at each step of a rollout through ``simulate``."""
    out = simulate(
        model,
        torch.zeros(1, 1),
        lambda o, a, n: torch.zeros(o.shape[0]),
        actions=torch.zeros(1, horizon, 1),
        n_particles=m_rows,
        generator=torch.Generator().manual_seed(0),
        record=True,
    )
    delta = out.observations.diff(dim=0)[..., 0, 0]  # (H, P) with N = 1
    return delta.round().long() - 1


@pytest.mark.parametrize("m_rows", [3, 7, 10])
def test_ts_inf_keeps_members_fixed_for_any_row_count(m_rows):
    members = _members_per_step(_labelled_ensemble("ts_inf"), m_rows)
    assert (members == members[0]).all(), members  # one member per row for the whole rollout
    assert set(members[0].tolist()) <= {0, 2, 4}  # elites only
    assert set(members[0].tolist()) == {0, 2, 4}  # spread over all of them (M >= 3)
    counts = torch.bincount(members[0], minlength=5)[[0, 2, 4]]
    assert int(counts.max() - counts.min()) <= 1  # blocks of floor/ceil(M / 3) rows


def test_ts1_gives_rows_new_members():
    members = _members_per_step(_labelled_ensemble("ts1"), 7, horizon=10)
    assert set(members.flatten().tolist()) <= {0, 2, 4}
    assert bool((members != members[0]).any())  # the test above can tell TS1 from TS-inf


def test_uneven_member_blocks_match_each_members_own_prediction():
    torch.manual_seed(0)
    cfg = DeltaModelConfig(ensemble_size=5, hidden_size=8, num_layers=2, num_elites=3)
    model = GaussianEnsemble(2, 1, cfg)
    model.on_fit_end(torch.tensor([0.0, 9.0, 1.0, 9.0, 2.0]))
    obs, act = torch.randn(7, 2), torch.randn(7, 1)
    with torch.no_grad():
        inp = model.input_norm.normalize(model._features(obs, act))
        mean, logvar = model._member_blocks(inp, model.elites)
        every, every_lv = model._members_forward(inp.expand(3, -1, -1), model.elites)
    own = torch.arange(7) * 3 // 7
    assert torch.allclose(mean, every[own, torch.arange(7)], atol=1e-6)
    assert torch.allclose(logvar, every_lv[own, torch.arange(7)], atol=1e-6)


def test_propagating_returns_a_view_and_never_changes_the_model():
    model = GaussianEnsemble(2, 1, DeltaModelConfig(ensemble_size=3, hidden_size=8, num_layers=2))
    assert model.propagating(None) is model and model.propagating("ts_inf") is model
    mean = model.propagating("expectation")
    assert isinstance(mean, PropagationView) and mean.propagation == "expectation"
    assert model.propagation == "ts_inf"  # untouched
    assert DETERMINISTIC in mean.capabilities and PARTICLES not in mean.capabilities
    assert ENSEMBLE in mean.capabilities and mean.num_active == 3  # delegated
    assert set(mean.parameters()) == set(model.parameters())  # shared, not copied
    obs, act = torch.randn(4, 2), torch.randn(4, 1)
    with torch.no_grad():
        expected = model.predict(obs, act)[0]
        assert torch.allclose(mean.step(mean.initial_state(obs), act), expected, atol=1e-6)
        # The view and a model built with propagation="expectation" step identically.
        assert torch.equal(mean.step(obs, act), model.step_with(obs, act, None, "expectation"))
    ts1 = model.propagating("ts1")
    assert ts1.propagating(None) is ts1 and ts1.propagating("ts_inf") is model
    with pytest.raises(ValueError, match=r"supports propagation modes \('ts_inf', 'ts1'"):
        model.propagating("sample")


@pytest.mark.parametrize("model", [MLPDynamics(2, 1), KnownPendulum()], ids=["mlp", "known"])
def test_single_behaviour_models_are_their_own_expectation(model):
    assert model.propagating("expectation") is model and model.propagating(None) is model
    with pytest.raises(ValueError, match=r"supports propagation modes \('expectation',\)"):
        model.propagating("ts_inf")


def test_latent_dynamics_expectation_is_the_prior_mean():
    from mbrl.models.rssm import RSSM, LatentDynamics, RSSMConfig

    torch.manual_seed(0)
    cfg = RSSMConfig(deter_size=8, stoch_size=4, hidden_size=8, embed_size=8, cnn_depth=4)
    latent = LatentDynamics(RSSM((3,), 1, cfg), sample=True)
    mean = latent.propagating("expectation")
    assert latent.propagation == "sample" and PARTICLES in latent.capabilities
    assert DETERMINISTIC in mean.capabilities and latent.sample  # the model is untouched
    state, act = torch.randn(4, latent.obs_dim), torch.randn(4, 1)
    with torch.no_grad():
        a = mean.step(state, act, torch.Generator().manual_seed(0))
        b = mean.step(state, act, torch.Generator().manual_seed(1))
        c = latent.step(state, act, torch.Generator().manual_seed(0))
        d = latent.step(state, act, torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and not torch.equal(c, d)


def test_expectation_is_deterministic_and_differentiable():
    model = GaussianEnsemble(
        2,
        1,
        DeltaModelConfig(ensemble_size=3, hidden_size=16, num_layers=2, propagation="expectation"),
    )
    obs = torch.randn(4, 2, requires_grad=True)
    a = model.step(obs, torch.zeros(4, 1))
    b = model.step(obs, torch.zeros(4, 1))
    assert torch.equal(a, b)
    a.sum().backward()
    assert obs.grad is not None and torch.isfinite(obs.grad).all()


@pytest.mark.parametrize("cls", [MLPDynamics, GaussianEnsemble])
def test_fit_recovers_linear_dynamics(cls):
    buf = _linear_data(600)
    cfg = DeltaModelConfig(
        ensemble_size=3 if cls is GaussianEnsemble else 1,
        hidden_size=64,
        num_layers=2,
        probabilistic=cls is GaussianEnsemble,
    )
    model = cls(2, 1, cfg)
    report = fit(
        model,
        buf,
        FitConfig(max_steps=1500, eval_every=100, patience=20),
        torch.Generator().manual_seed(0),
    )
    assert report.steps > 0 and report.val_score[-1] <= report.val_score[0]
    test = _linear_data(200, seed=1).all()
    mean, var = model.predict(test.obs, test.action)
    rmse = (mean - test.next_obs).square().mean().sqrt().item()
    assert rmse < 0.05, rmse
    assert var.shape == (200, 2) and (var >= 0).all()


def test_elites_are_best_held_out_members():
    buf = _linear_data(300)
    model = GaussianEnsemble(
        2, 1, DeltaModelConfig(ensemble_size=5, hidden_size=32, num_layers=2, num_elites=3)
    )
    report = fit(model, buf, FitConfig(max_steps=300), torch.Generator().manual_seed(0))
    scores = torch.tensor(report.member_val_scores)
    assert model.elites.tolist() == sorted(torch.argsort(scores)[:3].tolist())
    state = model.initial_state(torch.zeros(2, 2), n_particles=3)
    assert model.step(state, torch.zeros(6, 1), torch.Generator()).shape == (6, 2)


def test_fit_is_reproducible_with_seed():
    buf = _linear_data(200)
    outs = []
    for _ in range(2):
        torch.manual_seed(0)
        model = GaussianEnsemble(2, 1, SMALL)
        fit(model, buf, FitConfig(max_steps=200), torch.Generator().manual_seed(1))
        outs.append(model.predict(torch.ones(3, 2), torch.zeros(3, 1))[0])
    assert torch.equal(outs[0], outs[1])


def test_checkpoint_round_trip_gives_identical_predictions(tmp_path):
    buf = _linear_data(200)
    model = GaussianEnsemble(
        2, 1, DeltaModelConfig(ensemble_size=4, hidden_size=32, num_layers=2, num_elites=2)
    )
    fit(model, buf, FitConfig(max_steps=200), torch.Generator().manual_seed(0))
    save_checkpoint(tmp_path / "m.pt", model, {"env": "toy"})
    loaded, meta = load_checkpoint(tmp_path / "m.pt")
    assert meta == {"env": "toy"} and isinstance(loaded, GaussianEnsemble)
    assert loaded.config == model.config and torch.equal(loaded.elites, model.elites)
    obs, act = torch.randn(10, 2), torch.randn(10, 1)
    for m in (model, loaded):
        m.eval()
    assert torch.equal(model.predict(obs, act)[0], loaded.predict(obs, act)[0])
    s = model.initial_state(obs, 2)
    assert torch.equal(
        model.step(s, act.repeat(2, 1), torch.Generator().manual_seed(5)),
        loaded.step(s, act.repeat(2, 1), torch.Generator().manual_seed(5)),
    )
    fresh = GaussianEnsemble(
        2, 1, DeltaModelConfig(ensemble_size=4, hidden_size=32, num_layers=2, num_elites=2)
    )
    load_weights(fresh, tmp_path / "m.pt")
    assert torch.equal(fresh.predict(obs, act)[0], model.predict(obs, act)[0])


def test_task_model_checkpoints_round_trip(tmp_path):
    buf = _linear_data(300)
    rew, term = LearnedReward(2, 1, 32, 2), LearnedTermination(2, 1, 32, 2)
    for m in (rew, term):
        fit(m, buf, FitConfig(max_steps=200), torch.Generator().manual_seed(0))
        save_checkpoint(tmp_path / "t.pt", m)
        loaded, _ = load_checkpoint(tmp_path / "t.pt")
        d = buf.all()
        assert torch.equal(m(d.obs, d.action, d.next_obs), loaded(d.obs, d.action, d.next_obs))


def test_learned_reward_and_termination_fit_known_functions():
    buf = _linear_data(1500)
    rew, term = LearnedReward(2, 1, 64, 2), LearnedTermination(2, 1, 64, 2)
    fit(rew, buf, FitConfig(max_steps=1500, patience=20), torch.Generator().manual_seed(0))
    fit(term, buf, FitConfig(max_steps=1500, patience=20), torch.Generator().manual_seed(0))
    d = _linear_data(300, seed=2).all()
    r = rew(d.obs, d.action, d.next_obs)
    assert r.shape == (300,)
    assert (r - d.reward).abs().mean() < 0.1 * d.reward.abs().mean()
    pred = term(d.obs, d.action, d.next_obs)
    assert pred.dtype == torch.bool and (pred == d.terminated).float().mean() > 0.95


def test_corrupt_and_mismatched_checkpoints_raise_clear_errors(tmp_path):
    (tmp_path / "bad.pt").write_bytes(b"\x00garbage")
    with pytest.raises(ValueError, match="corrupt"):
        load_checkpoint(tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="does not exist"):
        load_checkpoint(tmp_path / "none.pt")
    torch.save({"x": 1}, tmp_path / "foreign.pt")
    with pytest.raises(ValueError, match="not an mbrl checkpoint"):
        load_checkpoint(tmp_path / "foreign.pt")
    save_checkpoint(tmp_path / "m.pt", GaussianEnsemble(2, 1, SMALL))
    with pytest.raises(ValueError, match=r"shape mismatches: .*net\.hidden\.0\.weight"):
        load_weights(GaussianEnsemble(3, 1, SMALL), tmp_path / "m.pt")
    with pytest.raises(ValueError, match="holds a GaussianEnsemble, cannot load into MLPDynamics"):
        load_weights(MLPDynamics(2, 1), tmp_path / "m.pt")
    with pytest.raises(ValueError, match="expected a MLPDynamics"):
        load_checkpoint(tmp_path / "m.pt", expected_class=MLPDynamics)


def test_bad_observations_and_configs_are_rejected():
    model = GaussianEnsemble(3, 1, SMALL)
    # Boundary code validates with check_obs; initial_state trusts its (internal) callers.
    with pytest.raises(ValueError, match=r"obs must have shape \(B, 3\)"):
        model.check_obs(torch.zeros(2, 4))
    with pytest.raises(ValueError, match="NaN"):
        model.check_obs(torch.tensor([[0.0, float("nan"), 0.0]]))
    with pytest.raises(ValueError, match="propagation"):
        DeltaModelConfig(propagation="magic")
    with pytest.raises(ValueError, match="num_elites"):
        DeltaModelConfig(ensemble_size=3, num_elites=4)
    with pytest.raises(ValueError, match="probabilistic"):
        MLPDynamics(2, 1, DeltaModelConfig())
    with pytest.raises(ValueError, match="at least 2 transitions"):
        fit(model, TransitionBuffer(3, 1, 4), FitConfig())


def test_bfloat16_compute_path_is_close_to_float32():
    torch.manual_seed(0)
    model = GaussianEnsemble(
        3,
        1,
        DeltaModelConfig(ensemble_size=5, hidden_size=64, num_layers=3, propagation="expectation"),
    )
    obs, act = torch.randn(50, 3), torch.randn(50, 1)
    with torch.no_grad():
        ref = model.step(obs, act)
        model.set_compute_dtype(torch.bfloat16)
        low = model.step(obs, act)
    assert low.dtype == torch.float32
    assert (low - ref).abs().max() < 0.05 * ref.abs().max()
    with pytest.raises(ValueError, match="compute dtype"):
        model.set_compute_dtype(torch.int8)


def test_fit_reports_and_restores_the_best_held_out_weights():
    buf = _linear_data(300)
    model = GaussianEnsemble(2, 1, SMALL)
    report = fit(
        model,
        buf,
        FitConfig(max_steps=400, eval_every=50, patience=100),
        torch.Generator().manual_seed(0),
    )
    assert report.evaluations == 8 and len(report.val_score) == 8
    assert report.best_val_score == pytest.approx(min(report.val_score))
    assert sum(report.member_val_scores) / len(report.member_val_scores) == pytest.approx(
        report.best_val_score, rel=1e-4
    )


def test_angle_dims_learn_across_the_wrap():
    # phi' = wrap(phi + 0.5): crossing +-pi is a small step the model must learn as one
    g = torch.Generator().manual_seed(0)
    phi = torch.rand(800, 1, generator=g) * 2 * torch.pi - torch.pi
    amp = torch.rand(800, 1, generator=g)
    obs = torch.cat([amp, phi], 1)
    nxt = torch.cat([amp, torch.remainder(phi + 0.5 + torch.pi, 2 * torch.pi) - torch.pi], 1)
    buf = TransitionBuffer(2, 1, 800)
    buf.add(
        obs,
        torch.zeros(800, 1),
        torch.zeros(800),
        nxt,
        torch.zeros(800, dtype=torch.bool),
        torch.zeros(800, dtype=torch.bool),
    )
    cfg = DeltaModelConfig(
        ensemble_size=1, hidden_size=64, num_layers=2, probabilistic=False, angle_dims=(1,)
    )
    model = MLPDynamics(2, 1, cfg)
    fit(model, buf, FitConfig(max_steps=1500, patience=20), torch.Generator().manual_seed(0))
    test = torch.tensor([[0.5, 3.0], [0.2, -3.1]])
    pred = model.predict(test, torch.zeros(2, 1))[0]
    expected = torch.tensor([3.5 - 2 * torch.pi, -2.6])
    assert torch.allclose(pred[:, 1], expected, atol=0.05), pred
    assert (pred[:, 1].abs() <= torch.pi).all()
    with pytest.raises(ValueError, match="angle_dims"):
        MLPDynamics(2, 1, DeltaModelConfig(ensemble_size=1, probabilistic=False, angle_dims=(2,)))


def _phasor_shift_buffer(n: int, shift: complex, seed: int) -> TransitionBuffer:
    """``(A, phi) -> polar(A e^{i phi} + shift)``: a phasor plus a constant phasor (linear in x, y)."""
    g = torch.Generator().manual_seed(seed)
    amp = torch.rand(n, generator=g)
    phi = torch.rand(n, generator=g) * 2 * torch.pi - torch.pi
    z = torch.polar(amp, phi) + shift
    obs = torch.stack([amp, phi], 1)
    nxt = torch.stack([z.abs(), z.angle()], 1)
    buf = TransitionBuffer(2, 1, n)
    flags = torch.zeros(n, dtype=torch.bool)
    buf.add(obs, torch.zeros(n, 1), torch.zeros(n), nxt, flags, flags)
    return buf


def test_state_coordinates_round_trip_and_bad_dims():
    coords = StateCoordinates(4, angle_dims=(3,), phasor_dims=((0, 1),))
    obs = torch.tensor([[0.7, -2.5, 1.5, 3.0], [0.0, 0.0, -1.0, -3.0], [2.0, 3.1, 0.1, 0.2]])
    z = coords.to_model(obs)
    assert z.shape == obs.shape and z.dtype == torch.float32
    assert torch.allclose(z[0, :2], torch.tensor([0.7 * math.cos(-2.5), 0.7 * math.sin(-2.5)]))
    assert torch.allclose(coords.from_model(z), obs, atol=1e-6)
    assert coords.features(z).shape == (3, 5)  # one extra column: the angle's cosine
    with pytest.raises(ValueError, match="must not repeat"):
        StateCoordinates(4, angle_dims=(1,), phasor_dims=((0, 1),))
    with pytest.raises(ValueError, match="phasor_dims"):
        StateCoordinates(2, phasor_dims=((0, 2),))
    with pytest.raises(ValueError, match="pairs"):
        StateCoordinates(3, phasor_dims=((0, 1, 2),))


def test_phasor_dims_learn_phasor_addition_near_zero_amplitude():
    # Adding a constant phasor is linear in Cartesian coordinates but wild in (A, phi) near
    # A = 0, where the phase of the sum swings through 2 pi. A canceller lives right there.
    buf = _phasor_shift_buffer(1000, complex(0.3, -0.2), seed=0)
    test = _phasor_shift_buffer(400, complex(0.3, -0.2), seed=1).all()
    errors = {}
    for name, extra in {
        "phasor": {"phasor_dims": ((0, 1),)},
        "angle": {"angle_dims": (1,)},
    }.items():
        cfg = DeltaModelConfig(
            ensemble_size=1, hidden_size=64, num_layers=2, probabilistic=False, **extra
        )
        model = MLPDynamics(2, 1, cfg)
        fit(model, buf, FitConfig(max_steps=1500, patience=20), torch.Generator().manual_seed(0))
        pred = model.predict(test.obs, test.action)[0]
        assert pred.shape == (400, 2) and (pred[:, 0] >= 0).all()
        errors[name] = (pred[:, 0] - test.next_obs[:, 0]).abs().mean().item()
    print("mean |A error|", errors)
    assert errors["phasor"] < 0.02, errors
    assert errors["phasor"] < 0.5 * errors["angle"], errors


def test_learned_termination_probability_is_calibrated_despite_class_weighting():
    # Endings are random with a known rate that depends on the state: 1% below x = 0.5, 30%
    # above. Class weighting inflates the raw odds ~5x; probability() must undo it.
    g = torch.Generator().manual_seed(0)
    n = 6000
    x = torch.rand(n, 1, generator=g)
    rate = torch.where(x[:, 0] < 0.5, 0.01, 0.3)
    ends = torch.rand(n, generator=g) < rate
    buf = TransitionBuffer(1, 1, capacity=n)
    buf.add(x, torch.zeros(n, 1), torch.zeros(n), x, ends, torch.zeros(n, dtype=torch.bool))
    term = LearnedTermination(1, 1, 32, 2)
    fit(term, buf, FitConfig(max_steps=1500, patience=20), torch.Generator().manual_seed(0))
    probe = torch.tensor([[0.2], [0.8]])
    with torch.no_grad():
        p = term.probability(probe, torch.zeros(2, 1), probe)
        raw = torch.sigmoid(term.raw(probe, torch.zeros(2, 1), probe))
    assert p.shape == (2,) and p.dtype == torch.float32
    assert abs(p[0].item() - 0.01) < 0.01 and abs(p[1].item() - 0.3) < 0.1, p
    assert abs(raw[0].item() - 0.01) > 0.01  # the weighted odds alone miss that tolerance


def test_a_termination_model_without_seen_endings_predicts_none_without_its_network(tmp_path):
    from mbrl.agents.learned import TaskModels

    buf = TransitionBuffer(2, 1, capacity=50)
    obs = torch.randn(50, 2, generator=torch.Generator().manual_seed(0))
    never = torch.zeros(50, dtype=torch.bool)
    buf.add(obs, torch.zeros(50, 1), torch.zeros(50), obs, never, never)
    models = TaskModels(2, 1, torch.device("cpu"), "mlp")
    term = models.termination
    before = [p.clone() for p in term.parameters()]
    models.fit(buf, FitConfig(max_steps=50), torch.Generator().manual_seed(0))
    assert all(torch.equal(a, b) for a, b in zip(before, term.parameters(), strict=True))
    assert term.capture_key == (False,)
    calls = []
    term.net.register_forward_hook(lambda *_: calls.append(1))
    d = buf.all()
    pred = term(d.obs, d.action, d.next_obs)
    assert pred.dtype == torch.bool and pred.shape == (50,) and not pred.any()
    assert not term.probability(d.obs, d.action, d.next_obs).any() and calls == []
    save_checkpoint(tmp_path / "t.pt", term)  # the flag survives a round trip
    loaded, _ = load_checkpoint(tmp_path / "t.pt")
    assert loaded.capture_key == (False,)
    # Once an ending is in the data, the classifier is fitted and its network runs.
    ends = torch.zeros(50, dtype=torch.bool)
    ends[:10] = True
    buf.add(obs, torch.zeros(50, 1), torch.zeros(50), obs + 3.0 * ends[:, None], ends, never)
    models.fit(buf, FitConfig(max_steps=300), torch.Generator().manual_seed(0))
    assert term.capture_key == (True,)
    d = buf.all()
    assert term(d.obs, d.action, d.next_obs).any() and calls
    state = {k: v for k, v in term.state_dict().items() if k != "endings_seen"}
    legacy = LearnedTermination(2, 1)
    legacy.load_state_dict(state)  # a file saved before the flag existed runs the network
    assert legacy.capture_key == (True,)
