"""The CUDA-graph / torch.compile rollout path: eager-identical on CPU, checked on CUDA if any."""

from __future__ import annotations

import warnings

import pytest
import torch

from mbrl.models import DeltaModelConfig, GaussianEnsemble, MLPDynamics
from mbrl.planners import CEMConfig, CEMOptimizer, SamplingPlanner
from mbrl.rollout import rollout
from mbrl.rollout.compiled import CompiledRollout, compile_planner
from mbrl.task_fns import get_task_fns

FNS = get_task_fns("InvertedPendulum-v5")  # reward and a termination function
OBS = torch.tensor([0.05, -0.02, 0.1, 0.0])


def _ensemble(device="cpu") -> GaussianEnsemble:
    torch.manual_seed(0)
    cfg = DeltaModelConfig(ensemble_size=2, hidden_size=32, num_layers=2)
    return GaussianEnsemble(4, 1, cfg).to(device).eval()


def _candidates(n=12, h=6, device="cpu") -> torch.Tensor:
    gen = torch.Generator().manual_seed(1)
    return (torch.rand(n, h, 1, generator=gen) * 6 - 3).to(device)


def _eager(model, acts, gen, gamma=0.9) -> torch.Tensor:
    return rollout(
        model,
        OBS.to(acts.device),
        acts,
        FNS.reward,
        FNS.termination,
        n_particles=3,
        gamma=gamma,
        generator=gen,
    ).returns


def test_auto_on_cpu_is_the_eager_engine():
    model, acts = _ensemble(), _candidates()
    ref = _eager(model, acts, torch.Generator().manual_seed(5))
    fast = CompiledRollout(
        model,
        FNS.reward,
        FNS.termination,
        n_particles=3,
        gamma=0.9,
        generator=torch.Generator().manual_seed(5),
    )
    assert fast.backend == "eager" and "cpu" in fast.fallback_reason
    assert torch.equal(fast(OBS, acts), ref)


def test_loop_body_matches_the_engine_with_termination_and_discount():
    model, acts = _ensemble(), _candidates()
    ref = _eager(model, acts, torch.Generator().manual_seed(7))
    fast = CompiledRollout(
        model,
        FNS.reward,
        FNS.termination,
        n_particles=3,
        gamma=0.9,
        generator=torch.Generator().manual_seed(7),
    )
    state = fast._initial_state(OBS, acts.shape[0])
    assert torch.equal(fast.rollout_from_state(state, acts), ref)


def test_graph_on_cpu_falls_back_with_a_reason():
    model, acts = _ensemble(), _candidates()
    ref = _eager(model, acts, torch.Generator().manual_seed(3))
    with pytest.warns(UserWarning, match="CUDA graphs need a CUDA device"):
        fast = CompiledRollout(
            model,
            FNS.reward,
            FNS.termination,
            n_particles=3,
            gamma=0.9,
            generator=torch.Generator().manual_seed(3),
            mode="graph",
        )
    assert fast.backend == "eager" and "CUDA" in fast.fallback_reason
    assert torch.equal(fast(OBS, acts), ref)


def test_compile_backend_runs_the_same_numbers():
    # The dynamo front end with the "eager" compiler backend: exercises torch.compile of the
    # loop body without minutes of inductor code generation on a small CPU.
    model, acts = _ensemble(), _candidates()
    ref = _eager(model, acts, torch.Generator().manual_seed(11))
    fast = CompiledRollout(
        model,
        FNS.reward,
        FNS.termination,
        n_particles=3,
        gamma=0.9,
        generator=torch.Generator().manual_seed(11),
        mode="compile",
        compile_options={"backend": "eager"},
    )
    out = fast(OBS, acts)
    assert fast.backend == "compile" and fast.fallback_reason is None
    assert torch.equal(out, ref)


def test_compile_failure_falls_back_to_eager():
    model, acts = _ensemble(), _candidates()
    fast = CompiledRollout(
        model,
        FNS.reward,
        n_particles=2,
        mode="compile",
        compile_options={"backend": "no-such-backend"},
    )
    with pytest.warns(UserWarning, match="torch.compile failed"):
        out = fast(OBS, acts)
    assert fast.backend == "eager" and out.shape == (12,)


def test_compiled_planner_plans_like_the_plain_one():
    def planner(seed: int) -> SamplingPlanner:
        model = _ensemble()
        gen = torch.Generator().manual_seed(seed)
        opt = CEMOptimizer(
            CEMConfig(population=20, iterations=2), torch.tensor([-3.0]), torch.tensor([3.0]), gen
        )
        return SamplingPlanner(model, FNS.reward, FNS.termination, opt, 5, n_particles=2)

    plain, fast_planner = planner(0), planner(0)
    fast = compile_planner(fast_planner, mode="auto")
    assert fast.backend == "eager"
    for _ in range(2):  # warm start and shift included
        assert torch.equal(plain.plan(OBS), fast_planner.plan(OBS))


def test_bad_arguments_are_named():
    model = _ensemble()
    with pytest.raises(ValueError, match="mode must be one of"):
        CompiledRollout(model, FNS.reward, mode="fast")
    with pytest.raises(ValueError, match="n_particles"):
        CompiledRollout(model, FNS.reward, n_particles=0)
    fast = CompiledRollout(model, FNS.reward)
    with pytest.raises(ValueError, match="candidates must have shape"):
        fast(OBS, torch.zeros(3, 4))
    with pytest.raises(ValueError, match="obs must have shape"):
        fast(torch.zeros(3), torch.zeros(3, 4, 1))
    with pytest.raises(TypeError, match="SamplingPlanner"):
        compile_planner(object())


# ---------------------------------------------------------------------------------- CUDA
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.mark.cuda
@cuda
def test_graph_replay_matches_eager_for_a_deterministic_model_and_recaptures():
    torch.manual_seed(0)
    model = MLPDynamics(
        4, 1, DeltaModelConfig(ensemble_size=1, hidden_size=64, num_layers=2, probabilistic=False)
    )
    model = model.cuda().eval()
    acts = _candidates(device="cuda")
    obs = OBS.cuda()
    fast = CompiledRollout(model, FNS.reward, FNS.termination, n_particles=1, gamma=0.9)
    assert fast.backend == "graph"
    ref = rollout(model, obs, acts, FNS.reward, FNS.termination, gamma=0.9).returns
    for _ in range(3):
        torch.testing.assert_close(fast(obs, acts), ref)
    assert fast.captures == 1 and fast.backend == "graph"
    # A second candidate count gets its own graph; the first still replays correctly.
    acts2 = _candidates(n=7, device="cuda")
    ref2 = rollout(model, obs, acts2, FNS.reward, FNS.termination, gamma=0.9).returns
    torch.testing.assert_close(fast(obs, acts2), ref2)
    torch.testing.assert_close(fast(obs, acts), ref)
    assert fast.captures == 2
    # In-place weight changes are seen without re-capture; replaced tensors trigger one.
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(1.1)
    ref3 = rollout(model, obs, acts, FNS.reward, FNS.termination, gamma=0.9).returns
    torch.testing.assert_close(fast(obs, acts), ref3)
    assert fast.captures == 2
    model.elites = model.elites.clone()
    torch.testing.assert_close(fast(obs, acts), ref3)
    assert fast.captures == 3


@pytest.mark.cuda
@cuda
def test_graph_replay_of_a_sampling_ensemble_draws_fresh_noise():
    model = _ensemble("cuda")
    acts = _candidates(n=64, device="cuda")
    gen = torch.Generator(device="cuda").manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no fallback warning
        fast = CompiledRollout(
            model, FNS.reward, FNS.termination, n_particles=8, gamma=0.9, generator=gen
        )
        a, b = fast(OBS.cuda(), acts), fast(OBS.cuda(), acts)
    assert fast.backend == "graph", fast.fallback_reason
    assert not torch.equal(a, b)  # the generator advanced between replays
    eager = torch.stack(
        [_eager(model, acts, torch.Generator(device="cuda").manual_seed(s)) for s in range(20)]
    ).mean(0)
    graph = torch.stack([fast(OBS.cuda(), acts) for _ in range(20)]).mean(0)
    torch.testing.assert_close(graph, eager, atol=0.5, rtol=0.05)


def test_compiled_planner_plans_batched_start_states_like_the_eager_planner():
    from mbrl.models.known.pendulum import KnownPendulum
    from mbrl.planners import CEMConfig, CEMOptimizer, SamplingPlanner
    from mbrl.task_fns import get_task_fns

    fns = get_task_fns("Pendulum-v1")
    model = KnownPendulum()
    starts = torch.tensor([[1.0, 0.0, 0.5], [0.0, 1.0, -1.0], [-1.0, 0.0, 0.0]])

    def planner() -> SamplingPlanner:
        opt = CEMOptimizer(
            CEMConfig(population=40, iterations=2),
            torch.tensor([-2.0]),
            torch.tensor([2.0]),
            torch.Generator().manual_seed(0),
        )
        return SamplingPlanner(model, fns.reward, fns.termination, opt, horizon=5)

    eager = planner().plan(starts)
    fast_planner = planner()
    compile_planner(fast_planner, mode="eager")
    assert torch.equal(fast_planner.plan(starts), eager)
    assert eager.shape == (3, 5, 1)
