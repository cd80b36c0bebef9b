"""``mbrl run`` input: bad flags give one line and exit code 2 before any work; ``--buffer`` /
``--load-model`` start a run from logged data or a saved model, and refuse foreign or
tampered files naming them."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from test_resume import CLI_TINY, TINY

import mbrl.agents.loop as loop_module
from mbrl.agents.config import RunConfig
from mbrl.agents.loop import run
from mbrl.cli import main as cli_main
from mbrl.data import TransitionBuffer
from mbrl.data.sequence_buffer import SequenceBuffer
from mbrl.models import DeltaModelConfig, GaussianEnsemble, load_checkpoint, save_checkpoint

BAD_FLAGS = [
    (["--seed", "-1"], "seed must be >= 0, got -1"),
    (["--max-episode-steps", "0"], "max_episode_steps must be >= 1, got 0"),
    (["--max-episode-steps", "-5"], "max_episode_steps must be >= 1, got -5"),
    (["--termination", "box", "--reward", "known"], "termination='box' (--termination) chooses"),
    (["--termination", "mlp"], "termination='mlp' (--termination) chooses"),
    (["--planner-opt", "population"], "--planner-opt expects KEY=VALUE, got 'population'"),
    (["--task-opt", "width=64", "--reward", "learned"], "unknown --task-opt(s) ['width']"),
    (["--task-opt", "num_layers=0", "--reward", "learned"], "num_layers must be >= 1, got 0"),
    (["--task-opt", "hidden_size=64"], "task_options={'hidden_size': 64} (--task-opt) sizes"),
    (["--fit-opt", "steps=3"], "--fit-opt: unknown option(s) ['steps'] for FitConfig"),
    (["--out", "AFILE"], "--out 'AFILE' is a file, not a directory"),
    (["--out", "AFILE/sub"], "'AFILE' is a file, not a directory"),
    (["--resume", "MISSING"], "--resume 'MISSING': no such directory"),
    (["--buffer", "AFILE"], "initial_buffer (--buffer): buffer file 'AFILE' is corrupt"),
    (["--load-model", "MISSING"], "initial_model (--load-model): checkpoint 'MISSING' does not"),
]


@pytest.mark.parametrize(("flags", "message"), BAD_FLAGS)
def test_bad_flags_give_one_line_and_exit_2_before_any_work(
    tmp_path, monkeypatch, capsys, flags, message
):
    afile = tmp_path / "afile"
    afile.write_text("not a directory, buffer or model")
    paths = {"AFILE": str(afile), "MISSING": str(tmp_path / "missing")}
    flags = [paths.get(f.split("/")[0], f.split("/")[0]) + f[len(f.split("/")[0]) :] for f in flags]
    for name, path in paths.items():
        message = message.replace(name, path)

    def no_set_up(*args, **kwargs):
        raise AssertionError("the run was set up")

    monkeypatch.setattr(loop_module, "build_run", no_set_up)
    assert cli_main(["run", *flags, "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("mbrl run: error: ")
    assert message in err[0], err[0]


def test_task_options_size_the_learned_reward_and_termination(tmp_path):
    from mbrl.agents.describe import describe_setup
    from mbrl.agents.setup import build_run
    from mbrl.models.task_models import LearnedReward, LearnedTermination

    small = {"hidden_size": 24, "num_layers": 2}
    idp = {**TINY, "progress": False, "env_id": "InvertedDoublePendulum-v5"}  # it ends
    cfg = RunConfig(reward="learned", task_options=small, **idp)
    setup = build_run(cfg, dry=True)
    models = setup.state.task_models
    assert isinstance(models.reward, LearnedReward)
    assert isinstance(models.termination, LearnedTermination)
    for net in (models.reward, models.termination):
        assert (net.hidden_size, net.num_layers) == (24, 2)
        assert sum(p.numel() for p in net.parameters()) < sum(
            p.numel() for p in LearnedReward(net.obs_dim, net.action_dim).parameters()
        )
    lines = describe_setup(setup)
    assert any("LearnedReward 24 x 2" in x and "LearnedTermination 24 x 2" in x for x in lines)
    # the sizes reach the saved run and a resume builds the same networks
    result = run(dataclasses.replace(cfg, out=str(tmp_path / "run"), episodes=1))
    assert result.config.task_options == small
    from mbrl.agents.loop import saved_run_config

    assert saved_run_config(tmp_path / "run").task_net() == cfg.task_net()
    default = build_run(dataclasses.replace(cfg, task_options={}), dry=True)
    assert default.state.task_models.reward.hidden_size == 200


def test_the_api_gets_the_same_errors():
    for bad, message in [
        ({"seed": -1}, "seed must be >= 0"),
        ({"max_episode_steps": 0}, "max_episode_steps must be >= 1"),
        ({"termination": "box"}, "termination='box'"),
        ({"task_options": {"hidden_size": 8}}, "task_options=.* sizes the learned"),
        ({"task_options": 8, "reward": "learned"}, "task_options must be a dict"),
        ({"initial_buffer": 3}, "initial_buffer must be a non-empty path string or None"),
    ]:
        with pytest.raises((ValueError, TypeError), match=message):
            RunConfig(**bad)
    # the env preset's termination (CartPole: box) and an env without known task functions
    # are not errors: there the setting is used
    assert RunConfig(env_id="CartPole-v1", termination="box").termination == "box"
    assert RunConfig(env_id="NoKnown-v0", termination="box").termination == "box"


@pytest.fixture(scope="module")
def earlier(tmp_path_factory):
    """A finished TINY run whose buffer and model start the next one."""
    out = tmp_path_factory.mktemp("earlier") / "run"
    return run(RunConfig(out=str(out), **TINY)), out


def test_a_run_starts_from_an_earlier_runs_buffer_and_model(tmp_path, earlier):
    first, out = earlier
    cfg = RunConfig(
        **{**TINY, "seed_episodes": 2, "episodes": 1},
        initial_buffer=str(out / "buffer.pt"),
        initial_model=str(out / "model.pt"),
        out=str(tmp_path / "next"),
    )
    fitted = []
    real_fit = loop_module.fit

    def spy(model, data, *args, **kwargs):
        fitted.append((len(data), {k: v.clone() for k, v in model.state_dict().items()}))
        return real_fit(model, data, *args, **kwargs)

    loop_module.fit, restore = spy, loop_module.fit
    try:
        result = run(cfg)
    finally:
        loop_module.fit = restore
    # the buffer's 4 complete episodes cover both seed episodes: one MPC episode, index 2
    assert [(r.episode, r.kind) for r in result.records] == [(2, "mpc")]
    assert fitted[0][0] == 40  # trained on the earlier run's data
    assert all(torch.equal(v, first.model.state_dict()[k]) for k, v in fitted[0][1].items())
    assert torch.equal(result.buffer.all().obs[:40], first.buffer.all().obs)
    assert len(result.buffer) == 50
    assert result.config.initial_buffer == str(out / "buffer.pt")


def test_start_files_that_do_not_fit_the_run_are_refused(tmp_path, earlier):
    _, out = earlier
    wide = TransitionBuffer(5, 1)
    wide.add(torch.zeros(5), torch.zeros(1), 0.0, torch.zeros(5), False, True)
    wide.save(tmp_path / "wide.pt")
    with pytest.raises(ValueError, match=r"holds transitions with obs_dim 5 and action_dim 1; "
                       r"Pendulum-v1 needs obs_dim 3 and action_dim 1"):  # fmt: skip
        run(RunConfig(**TINY, initial_buffer=str(tmp_path / "wide.pt")))
    seq = SequenceBuffer((3,), 1)
    seq.add_episode(torch.zeros(3, 3), torch.zeros(2, 1), torch.zeros(2))
    seq.save(tmp_path / "seq.pt")
    with pytest.raises(ValueError, match="not an mbrl transition buffer file .*'mbrl-sequence"):
        run(RunConfig(**TINY, initial_buffer=str(tmp_path / "seq.pt")))
    other = GaussianEnsemble(3, 1, DeltaModelConfig(ensemble_size=1, hidden_size=8, num_layers=1))
    save_checkpoint(tmp_path / "other.pt", other)
    with pytest.raises(ValueError, match=r"initial_model \(--load-model\): checkpoint .*other.pt"):
        run(RunConfig(**TINY, initial_model=str(tmp_path / "other.pt")))
    payload = torch.load(out / "model.pt", weights_only=True)
    key = next(k for k, v in payload["state_dict"].items() if v.is_floating_point())
    payload["state_dict"][key] = payload["state_dict"][key] + 1.0
    torch.save(payload, tmp_path / "tampered.pt")
    with pytest.raises(ValueError, match="fails its SHA-256 check"):
        run(dataclasses.replace(RunConfig(**TINY), initial_model=str(tmp_path / "tampered.pt")))
    assert load_checkpoint(out / "model.pt")[1]["env"] == "Pendulum-v1"


def test_cli_buffer_and_load_model_flags(tmp_path, earlier, capsys):
    _, out = earlier
    argv = ["run", *CLI_TINY, "--buffer", str(out / "buffer.pt"), "--load-model"]
    assert cli_main([*argv, str(out / "model.pt"), "--out", str(tmp_path / "r")]) == 0
    assert "done: 4 MPC episodes" in capsys.readouterr().out
