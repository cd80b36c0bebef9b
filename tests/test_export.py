"""Export for deployment: parity of policy / planner artefacts with the Python objects, the
torch-only loader, run-directory sources (distillation from MPC actions), and the errors."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import gymnasium as gym
import pytest
import torch
from conftest import LinearModel, quadratic_reward

from mbrl.agents.config import RunConfig
from mbrl.agents.writer import RunWriter, config_json
from mbrl.commands.export import cli
from mbrl.data.buffer import TransitionBatch, TransitionBuffer
from mbrl.export import (
    DeployedPlanner,
    DeployedPolicy,
    DistillConfig,
    UnexportableError,
    export_planner,
    export_policy,
    export_run,
    load,
    measure_latency,
    mpc_transitions,
    planner_parity,
    policy_parity,
    random_observations,
    reference_planner,
)
from mbrl.export import loader as loader_module
from mbrl.export.programs import PlannerProgram
from mbrl.export.run_dir import run_planner, run_policy
from mbrl.models.checkpoint import save_checkpoint
from mbrl.models.known.pendulum import KnownPendulum
from mbrl.models.policy_model import LearnedPolicy
from mbrl.models.registry import build_model
from mbrl.models.task_models import LearnedReward, LearnedTermination
from mbrl.models.training import FitConfig
from mbrl.planners.cem import CEMConfig, CEMOptimizer
from mbrl.planners.mppi import MPPIConfig, MPPIOptimizer
from mbrl.planners.registry import ICEM_DEFAULTS
from mbrl.planners.sampling import SamplingPlanner
from mbrl.task_fns import get_task_fns

AWAKE = "mbrl/AwakeSteering-v0"
AWAKE_OBS = gym.spaces.Box(-30.0, 30.0, shape=(10,))
TOL = 1e-5
MODEL_OPTIONS = {"ensemble_size": 2, "hidden_size": 32, "num_layers": 2}


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """One intra-op thread: these tensors are tiny, and on a loaded 2-core machine two
    threads' synchronisation makes each small op thousands of times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _policy(obs_dim: int = 10, action_dim: int = 10, seed: int = 0) -> LearnedPolicy:
    """A policy with non-trivial weights and input statistics."""
    torch.manual_seed(seed)
    policy = LearnedPolicy(obs_dim, action_dim, False, [-1.0] * action_dim, [1.0] * action_dim)
    with torch.no_grad():
        for p in policy.parameters():
            p.normal_(0.0, 0.3)
        policy.input_norm.mean.uniform_(-5, 5)
        policy.input_norm.std.uniform_(2, 10)
    return policy.eval()


def _write_run(out: Path, *, model: str = "ensemble", planner: str = "cem", **extra) -> Path:
    """A run directory as `mbrl run --out` leaves it: config, model, buffer, metrics (seed
    episode of random actions, then MPC episodes whose action is a fixed linear law)."""
    cfg = RunConfig(
        env_id=AWAKE,
        model=model,
        planner=planner,
        horizon=3,
        n_particles=2,
        model_options=MODEL_OPTIONS if model in ("ensemble", "mlp") else {},
        planner_options={"population": 32, "iterations": 2},
        out=str(out),
        progress=False,
        **extra,
    )
    RunWriter(out).start({"config": config_json(cfg)})
    gen = torch.Generator().manual_seed(1)
    obs = (torch.rand(120, 10, generator=gen) * 2 - 1) * 20
    law = torch.randn(10, 10, generator=gen) * 0.05
    action = torch.cat([torch.rand(40, 10, generator=gen) * 2 - 1, (obs[40:] @ law).clamp(-1, 1)])
    next_obs = obs + 0.1 * action
    buffer = TransitionBuffer(10, 10, capacity=200)
    ends = torch.zeros(120, dtype=torch.bool)
    ends[[39, 79, 119]] = True
    buffer.add(
        obs, action, -next_obs.norm(dim=1), next_obs, ends, torch.zeros(120, dtype=torch.bool)
    )
    buffer.save(out / "buffer.pt")
    records = [
        {"episode": i, "kind": kind, "steps": 40, "return": -1.0}
        for i, kind in enumerate(["seed", "mpc", "mpc"])
    ]
    (out / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    if model in ("ensemble", "mlp"):
        dyn = build_model(model, 10, 10, MODEL_OPTIONS, AWAKE)
        dyn.update_normalizers(buffer.all())
        save_checkpoint(out / "model.pt", dyn, {"env": AWAKE})
    return out


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _write_run(tmp_path_factory.mktemp("run"))


@pytest.fixture(scope="module")
def planner_artefact(run_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("art") / "planner.pt2"
    exported, planner = export_run(run_dir, "planner", out, seed=7)
    return exported, planner


# ---------------------------------------------------------------------------- policy
def test_policy_artefact_matches_python_policy_on_1000_observations(tmp_path: Path) -> None:
    policy = _policy()
    exported = export_policy(policy, tmp_path / "policy.pt2", env_id=AWAKE)
    deployed = load(exported.path)
    assert isinstance(deployed, DeployedPolicy)
    obs = random_observations(AWAKE_OBS, 1000, seed=3)
    assert policy_parity(policy, deployed, obs) <= TOL
    # One observation in, one action out; bounds respected.
    single = deployed(obs[0])
    assert single.shape == (10,)
    assert bool((deployed(obs).abs() <= 1.0).all())
    spec = deployed.spec
    assert spec["kind"] == "policy" and spec["env_id"] == AWAKE
    assert spec["inputs"][0]["shape"] == ["B", 10] and spec["outputs"][0]["shape"] == ["B", 10]
    assert spec["action_low"] == [-1.0] * 10 and spec["action_high"] == [1.0] * 10


def test_policy_artefact_does_not_change_the_exported_policy(tmp_path: Path) -> None:
    policy = _policy().train()
    before = {k: v.clone() for k, v in policy.state_dict().items()}
    export_policy(policy, tmp_path / "p.pt2")
    assert all(p.requires_grad for p in policy.parameters())
    assert policy.training
    assert all(torch.equal(before[k], v) for k, v in policy.state_dict().items())


def test_loader_checks_observations(tmp_path: Path) -> None:
    deployed = load(export_policy(_policy(), tmp_path / "p.pt2").path)
    with pytest.raises(ValueError, match=r"obs must have shape \(10,\) or \(B, 10\)"):
        deployed(torch.zeros(3))
    with pytest.raises(ValueError, match="NaN or inf"):
        deployed(torch.full((10,), float("nan")))
    with pytest.raises(TypeError, match="obs must be numbers"):
        deployed("ten numbers")


# ---------------------------------------------------------------------------- planner
def test_planner_artefact_matches_python_cem_planner(planner_artefact) -> None:
    exported, planner = planner_artefact
    deployed = load(exported.path)
    assert isinstance(deployed, DeployedPlanner)
    obs = random_observations(AWAKE_OBS, 24, seed=5)
    assert planner_parity(planner, 7, deployed.plan, obs) <= TOL
    spec = deployed.spec["planner"]
    assert spec["horizon"] == 3 and spec["populations"] == [32, 32]
    assert spec["model"] == "GaussianEnsemble" and spec["noise_seed"] == 7


def test_planner_artefact_warm_start_is_the_shifted_last_plan(planner_artefact) -> None:
    exported, planner = planner_artefact
    deployed = load(exported.path)
    ref = reference_planner(planner, 7)
    obs = random_observations(AWAKE_OBS, 2, seed=9)
    deployed.reset()
    first = deployed.act(obs[0])
    second = deployed.act(obs[1])
    plan = ref.plan(obs[0])
    assert torch.allclose(first, plan[0], atol=TOL)
    warm = torch.cat([plan[1:], torch.zeros(1, 10)])  # the middle of [-1, 1]
    ref.optimizer.generator.manual_seed(7)
    expected = ref.optimizer.optimize(ref.objective(obs[1]), warm)
    assert torch.allclose(second, expected[0], atol=TOL)


def test_icem_artefact_with_known_physics_matches_python() -> None:
    """Coloured noise, population decay, kept elites and best-ever (iCEM) on KnownPendulum."""
    model = KnownPendulum()
    cfg = CEMConfig(**{**ICEM_DEFAULTS.__dict__, "population": 40})
    low, high = torch.tensor([-2.0]), torch.tensor([2.0])
    opt = CEMOptimizer(cfg, low, high, torch.Generator().manual_seed(0))
    fns = get_task_fns("Pendulum-v1")
    planner = SamplingPlanner(model, fns.reward, None, opt, 8, gamma=0.99)
    program = PlannerProgram(planner, seed=11)
    assert program.populations == [40, 20, 10]
    obs = torch.tensor([[1.0, 0.0, 0.5], [-1.0, 0.1, -2.0], [0.0, 1.0, 4.0]])
    initial = torch.zeros(3, 8, 1)
    exported = torch.export.export(program, (obs, initial))
    got = exported.module()(obs, initial)
    ref = reference_planner(planner, 11)
    expected = ref.plan(obs, generators=[torch.Generator().manual_seed(11) for _ in range(3)])
    assert (got - expected).abs().max() <= TOL


# ---------------------------------------------------------------------------- run dirs
def test_mpc_transitions_leave_out_the_seed_episode(run_dir: Path) -> None:
    batch = mpc_transitions(run_dir)
    everything = TransitionBuffer.load(run_dir / "buffer.pt").all()
    assert len(batch) == 80
    assert torch.equal(batch.obs, everything.obs[40:])


def test_distilled_policy_imitates_the_mpc_actions(run_dir: Path, tmp_path: Path) -> None:
    distill = DistillConfig(fit=FitConfig(max_steps=600, batch_size=64, eval_every=100))
    exported, policy = export_run(
        run_dir, "policy", tmp_path / "distilled.pt2", policy_source="distill", distill=distill
    )
    assert exported.spec["source"]["policy"] == "distill"
    assert exported.spec["source"]["mpc_transitions"] == 80
    data: TransitionBatch = mpc_transitions(run_dir)
    deployed = load(exported.path)
    imitation = (deployed(data.obs) - data.action).abs().mean()
    centre = data.action.abs().mean()  # the error of always acting in the middle
    assert imitation < 0.5 * centre
    assert policy_parity(policy, deployed, data.obs) <= TOL


def test_policy_model_file_is_exported_as_saved(run_dir: Path, tmp_path: Path) -> None:
    policy = _policy(seed=4)
    save_checkpoint(run_dir / "policy_model.pt", policy)
    try:
        exported, source = export_run(run_dir, "policy", tmp_path / "p.pt2")
    finally:
        (run_dir / "policy_model.pt").unlink()
    assert exported.spec["source"]["policy"] == "policy_model"
    obs = random_observations(AWAKE_OBS, 100)
    assert policy_parity(policy, load(exported.path), obs) <= TOL


# ---------------------------------------------------------------------------- errors
def test_unknown_what_and_not_a_run_dir(run_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"what must be one of \('policy', 'planner'\)"):
        export_run(run_dir, "value", tmp_path / "x.pt2")
    with pytest.raises(ValueError, match="is not a run directory"):
        export_run(tmp_path, "planner", tmp_path / "x.pt2")
    with pytest.raises(ValueError, match="does not exist"):
        export_run(tmp_path / "missing", "planner", tmp_path / "x.pt2")


def test_run_dir_without_a_model(tmp_path: Path) -> None:
    run = _write_run(tmp_path / "run")
    (run / "model.pt").unlink()
    with pytest.raises(ValueError, match="has no model.pt"):
        export_run(run, "planner", tmp_path / "x.pt2")


def test_models_and_planners_that_cannot_be_exported(tmp_path: Path) -> None:
    rssm = _write_run(tmp_path / "rssm", model="rssm")
    save_checkpoint(rssm / "model.pt", _policy())  # any file: refused before it is read
    with pytest.raises(UnexportableError, match="rssm"):
        export_run(rssm, "planner", tmp_path / "x.pt2")
    # A Dreamer actor reads belief features: as an obs -> action policy it would be wrong
    # (export_run exports it with the belief filter instead, tests/test_latent_imagination.py).
    save_checkpoint(rssm / "actor.pt", _policy())
    with pytest.raises(UnexportableError, match="belief features"):
        run_policy(rssm)
    mppi = SamplingPlanner(
        KnownPendulum(),
        get_task_fns("Pendulum-v1").reward,
        None,
        MPPIOptimizer(MPPIConfig(), torch.tensor([-2.0]), torch.tensor([2.0]), torch.Generator()),
        5,
    )
    with pytest.raises(UnexportableError, match="only CEM / iCEM"):
        export_planner(mppi, tmp_path / "x.pt2")
    linear = LinearModel(torch.eye(2), torch.ones(2, 1))
    cem = CEMOptimizer(CEMConfig(), torch.tensor([-1.0]), torch.tensor([1.0]), torch.Generator())
    with pytest.raises(UnexportableError, match="LinearModel model cannot be exported"):
        export_planner(SamplingPlanner(linear, quadratic_reward, None, cem, 5), tmp_path / "x.pt2")
    with pytest.raises(UnexportableError, match="must be a LearnedPolicy"):
        export_policy(torch.nn.Linear(2, 2), tmp_path / "x.pt2")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"must end in \.pt2"):
        export_policy(_policy(), tmp_path / "x.pt")


def test_loader_refuses_damaged_edited_and_pickled_files(tmp_path: Path) -> None:
    path = export_policy(_policy(), tmp_path / "p.pt2").path
    (tmp_path / "text.pt2").write_text("not a zip")
    with pytest.raises(ValueError, match="not an exported mbrl artefact"):
        load(tmp_path / "text.pt2")
    with pytest.raises(ValueError, match="does not exist"):
        load(tmp_path / "none.pt2")

    def rewrite(target: Path, edit) -> None:
        with zipfile.ZipFile(path) as src, zipfile.ZipFile(target, "w") as dst:
            for name in src.namelist():
                dst.writestr(name, edit(name, src.read(name)))

    def bump_weight(name: str, data: bytes) -> bytes:
        if name.endswith("/data/weights/weight_1"):
            return bytes([data[0] ^ 1]) + data[1:]
        return data

    edited = tmp_path / "edited.pt2"
    rewrite(edited, bump_weight)
    with pytest.raises(ValueError, match="fails its SHA-256 check"):
        load(edited)

    def pickled(name: str, data: bytes) -> bytes:
        if name.endswith("model_weights_config.json"):
            doc = json.loads(data)
            next(iter(doc["config"].values()))["use_pickle"] = True
            return json.dumps(doc).encode()
        return data

    bad = tmp_path / "pickled.pt2"
    rewrite(bad, pickled)
    with pytest.raises(ValueError, match="holds a pickled object"):
        load(bad)


# ---------------------------------------------------------------------------- CLI, loader
def test_cli_exports_checks_and_times(
    planner_artefact, run_dir: Path, tmp_path: Path, capsys
) -> None:
    out = tmp_path / "cli_policy.pt2"
    save_checkpoint(run_dir / "actor.pt", _policy(seed=2))
    try:
        code = cli(
            [str(run_dir), "--what", "policy", "--out", str(out), "--check", "50", "--latency", "5"]
        )
    finally:
        (run_dir / "actor.pt").unlink()
    text = capsys.readouterr().out
    assert code == 0, text
    assert "parity: max |artefact - python| over 50 observations = 0" in text
    assert "latency: policy artefact on cpu: median" in text
    assert cli([str(tmp_path / "nowhere"), "--what", "policy", "--out", str(out)]) == 2
    assert "does not exist" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli([str(run_dir), "--what", "value", "--out", str(out)])


def test_loader_runs_without_mbrl(tmp_path: Path) -> None:
    """The loader file alone, in a process where importing mbrl fails."""
    policy = _policy()
    path = export_policy(policy, tmp_path / "p.pt2").path
    obs = random_observations(AWAKE_OBS, 5, seed=1)
    torch.save(obs, tmp_path / "obs.pt")
    script = (
        "import sys, importlib.util, torch\n"
        "sys.modules['mbrl'] = None\n"
        f"spec = importlib.util.spec_from_file_location('loader', {str(loader_module.__file__)!r})\n"
        "loader = importlib.util.module_from_spec(spec); spec.loader.exec_module(loader)\n"
        f"p = loader.load({str(path)!r})\n"
        f"obs = torch.load({str(tmp_path / 'obs.pt')!r}, weights_only=True)\n"
        f"torch.save(p(obs), {str(tmp_path / 'out.pt')!r})\n"
        "assert not any(m == 'mbrl' or m.startswith('mbrl.') for m in sys.modules if sys.modules[m])\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120)
    got = torch.load(tmp_path / "out.pt", weights_only=True)
    assert (got - policy.mode(obs)).abs().max() <= TOL


def test_latency_report_statistics() -> None:
    report = measure_latency("noop", lambda: None, calls=50, warmup=2)
    assert report.calls == 50
    assert 0 <= report.median_ms <= report.p99_ms <= report.max_ms
    assert "noop on cpu: median" in report.line()


def test_cpu_clock_counts_this_process_only() -> None:
    import time

    stats = loader_module.time_calls(lambda: time.sleep(0.002), calls=5, warmup=0, clock="cpu")
    assert stats["median_ms"] < 1.0  # sleeping uses no CPU: another process's load neither
    wall = loader_module.time_calls(lambda: time.sleep(0.002), calls=5, warmup=0)
    assert wall["median_ms"] >= 2.0
    with pytest.raises(ValueError, match="clock must be 'wall' or 'cpu'"):
        loader_module.time_calls(lambda: None, clock="gpu")


def test_an_exploring_run_exports_a_planner_for_the_task_reward_alone(tmp_path: Path) -> None:
    out = _write_run(tmp_path / "run", reward="learned", explore="always")
    save_checkpoint(out / "reward_model.pt", LearnedReward(10, 10), {"env": AWAKE})
    save_checkpoint(out / "termination_model.pt", LearnedTermination(10, 10), {"env": AWAKE})
    planner = run_planner(out)
    # The disagreement bonus is how the run gathered data, not what a deployment optimises.
    assert type(planner.reward_fn) is LearnedReward
