"""Bad input gets one clear error that names the argument and what was expected, before any
work: config fields, option strings, fit() sizes, CLI flags and damaged surrogate files."""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
from typing import Literal

import gymnasium as gym
import numpy as np
import pytest
import torch

from mbrl.commands import options
from mbrl.data import TransitionBuffer
from mbrl.dyna.surrogate import load_surrogate, save_surrogate
from mbrl.models import (
    DeltaModelConfig,
    FitConfig,
    GaussianEnsemble,
    MLPDynamics,
    fit,
    save_checkpoint,
)
from mbrl.planners import CEMConfig, MPPIConfig
from mbrl.util.configs import bounded, check_config, config_from_options
from mbrl.util.paths import check_output_dir

PENDULUM_OBS = gym.spaces.Box(-8.0, 8.0, (3,), np.float32)
PENDULUM_ACT = gym.spaces.Box(-2.0, 2.0, (1,), np.float32)
TINY = DeltaModelConfig(ensemble_size=2, hidden_size=8, num_layers=2)


# ------------------------------------------------------------------------------ configs
@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"lr": math.nan}, ValueError, "FitConfig.lr must be a finite number > 0, got nan"),
        ({"lr": 0.0}, ValueError, "FitConfig.lr must be > 0, got 0.0"),
        ({"lr": -1e-3}, ValueError, "FitConfig.lr must be > 0"),
        ({"weight_decay": math.inf}, ValueError, "FitConfig.weight_decay must be a finite"),
        ({"weight_decay": -1.0}, ValueError, "FitConfig.weight_decay must be >= 0"),
        ({"holdout_frac": 1.5}, ValueError, "FitConfig.holdout_frac must be <= 1, got 1.5"),
        ({"holdout_frac": -0.1}, ValueError, "FitConfig.holdout_frac must be >= 0"),
        ({"max_steps": 0}, ValueError, "FitConfig.max_steps must be >= 1, got 0"),
        ({"patience": 0}, ValueError, "FitConfig.patience must be >= 1"),
        ({"max_steps": "abc"}, TypeError, "FitConfig.max_steps must be an int, got 'abc'"),
        ({"batch_size": 2.5}, TypeError, "FitConfig.batch_size must be an int, got 2.5"),
        ({"patience": True}, TypeError, "FitConfig.patience must be an int, got True"),
        ({"bootstrap": "yes"}, TypeError, "FitConfig.bootstrap must be true or false"),
    ],
)
def test_fit_config_refuses_bad_fields(kwargs, error, message):
    with pytest.raises(error, match=message.replace("(", r"\(").replace(".", r"\.")):
        FitConfig(**kwargs)


def test_fit_config_accepts_edges_and_ints_for_floats():
    cfg = FitConfig(lr=1, weight_decay=0, holdout_frac=0.0, max_holdout=1, patience=1)
    assert cfg.lr == 1 and cfg.holdout_frac == 0.0
    assert FitConfig(holdout_frac=1.0).holdout_frac == 1.0
    assert FitConfig(max_steps=np.int64(7)).max_steps == 7


@dataclasses.dataclass(frozen=True)
class _Demo:
    """A config using every checked kind of annotation."""

    rate: float = bounded(0.5, gt=0, lt=1)
    limit: float = bounded(math.inf, ge=0, allow_inf=True)
    mode: Literal["a", "b"] = "a"
    cap: int | None = None
    sizes: tuple[int, ...] = (1, 2)

    def __post_init__(self) -> None:
        check_config(self)


def test_check_config_covers_literal_optional_tuple_and_allowed_inf():
    assert _Demo().limit == math.inf
    with pytest.raises(ValueError, match=r"_Demo\.rate must be < 1, got 1\.0"):
        _Demo(rate=1.0)
    with pytest.raises(ValueError, match=r"_Demo\.limit must be a finite number >= 0, got nan"):
        _Demo(limit=math.nan)
    with pytest.raises(TypeError, match=r"_Demo\.mode must be one of 'a', 'b', got 'c'"):
        _Demo(mode="c")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"_Demo\.cap must be an int or None, got 'x'"):
        _Demo(cap="x")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"_Demo\.sizes must be a list"):
        _Demo(sizes=3)  # type: ignore[arg-type]
    assert _Demo(cap=3).cap == 3


# ------------------------------------------------------------------------------ options
@pytest.mark.parametrize(
    ("cls", "opts", "message"),
    [
        (
            CEMConfig,
            {"return_best": "maybe"},
            "--planner-opt return_best (CEMConfig.return_best): expected true or false, got 'maybe'",
        ),
        (
            CEMConfig,
            {"init_std": "abc"},
            "--planner-opt init_std (CEMConfig.init_std): expected a float, got 'abc'",
        ),
        (
            MPPIConfig,
            {"temperature": "abc"},
            "--planner-opt temperature (MPPIConfig.temperature): expected a float, got 'abc'",
        ),
        (
            CEMConfig,
            {"population": 3.5},
            "--planner-opt population (CEMConfig.population): expected an int, got 3.5",
        ),
        (
            MPPIConfig,
            {"temperature": "nan"},
            "--planner-opt temperature (MPPIConfig.temperature): expected a number, got NaN",
        ),
    ],
)
def test_option_values_are_type_checked_against_the_config_field(cls, opts, message):
    with pytest.raises(ValueError) as info:
        config_from_options(cls, opts, source="--planner-opt")
    assert str(info.value) == message


def test_option_values_given_as_text_are_coerced():
    cfg = config_from_options(
        CEMConfig, {"return_best": "false", "init_std": "0.25", "population": 64.0}
    )
    assert cfg.return_best is False and cfg.init_std == 0.25 and cfg.population == 64
    assert isinstance(cfg.population, int)
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['populaton'\] for CEMConfig"):
        config_from_options(CEMConfig, {"populaton": 3})
    # The default label, for options that do not come from a CLI flag.
    with pytest.raises(ValueError, match=r"^option init_std \(CEMConfig\.init_std\)"):
        config_from_options(CEMConfig, {"init_std": "abc"})


def test_key_value_flags_without_equals_name_the_flag():
    assert options.parse_key_values(["population=300", "mode=fast"], "--planner-opt") == {
        "population": 300,
        "mode": "fast",
    }
    with pytest.raises(ValueError, match="--planner-opt expects KEY=VALUE, got 'population'"):
        options.parse_key_values(["population"], "--planner-opt")
    with pytest.raises(ValueError, match="--model-opt expects KEY=VALUE, got '=3'"):
        options.parse_key_values(["=3"], "--model-opt")


@pytest.mark.parametrize(
    ("parse", "text", "message"),
    [
        (options.int_at_least(0), "-1", "expected an int >= 0, got '-1'"),
        (options.int_at_least(1), "0", "expected an int >= 1, got '0'"),
        (options.int_at_least(1), "2.5", "expected an int >= 1, got '2.5'"),
        (options.finite_float(minimum=0.0), "nan", "expected a finite number >= 0.0, got 'nan'"),
        (options.finite_float(), "inf", "expected a finite number, got 'inf'"),
        (options.finite_float(minimum=0.0), "-0.5", "expected a finite number >= 0.0"),
    ],
)
def test_numeric_flag_types(parse, text, message):
    with pytest.raises(argparse.ArgumentTypeError, match=message):
        parse(text)


def test_numeric_flag_types_accept_valid_text():
    assert options.int_at_least(0)("0") == 0
    assert options.finite_float(minimum=0.0)("0.5") == 0.5


# ------------------------------------------------------------------------------ output dirs
def test_output_dir_refuses_a_file_a_path_under_a_file_and_an_unwritable_place(
    tmp_path, monkeypatch
):
    afile = tmp_path / "afile"
    afile.write_text("x")
    with pytest.raises(ValueError, match=r"--out '.*afile' is a file, not a directory"):
        check_output_dir(afile, "--out")
    with pytest.raises(ValueError, match=r"'.*afile/sub/dir' cannot be created: '.*afile' is a"):
        check_output_dir(afile / "sub" / "dir", "--out")
    assert check_output_dir(tmp_path / "new" / "dir") == tmp_path / "new" / "dir"
    assert not (tmp_path / "new").exists()  # nothing is created
    assert list(tmp_path.iterdir()) == [afile]  # the probe directory is gone
    # Writable by its permission bits, yet no directory can be made there (as root in /proc).
    monkeypatch.setattr("mbrl.util.paths._make_dir_problem", lambda _p: "Read-only file system")
    with pytest.raises(
        ValueError, match=r"--out '.*new': cannot create a directory in '.*' \(Read"
    ):
        check_output_dir(tmp_path / "new", "--out")
    monkeypatch.undo()
    monkeypatch.setattr("os.access", lambda *_a, **_k: False)
    with pytest.raises(ValueError, match=r"is not writable"):
        check_output_dir(tmp_path / "new", "--out")


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux /proc")
def test_output_dir_refuses_proc_even_for_root():
    # root passes os.access everywhere; only making a directory shows /proc takes none
    with pytest.raises(ValueError, match=r"^--out '/proc/mbrl-run'"):
        check_output_dir("/proc/mbrl-run", "--out")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--out", "{afile}"], "argument --out: '{afile}' is a file, not a directory"),
        (["--out", "{afile}/sub"], "argument --out: '{afile}/sub' cannot be created"),
        (["--out", "{dir}", "--seed", "-1"], "argument --seed: expected an int >= 0, got '-1'"),
        (["--out", "{dir}", "--steps", "1"], "argument --steps: expected an int >= 2, got '1'"),
        (["--out", "{dir}", "--max-episode-steps", "0"], "argument --max-episode-steps"),
        (["--out", "{dir}", "--penalty", "nan"], "argument --penalty: expected a finite number"),
        (["--out", "{dir}", "--model-opt", "hidden_size"], "--model-opt expects KEY=VALUE"),
    ],
)
def test_cli_surrogate_refuses_bad_flags_before_collecting(
    tmp_path, monkeypatch, capsys, argv, message
):
    from mbrl.cli import main as cli_main

    def no_work(_cfg):
        raise AssertionError("build_surrogate ran although the flags were bad")

    monkeypatch.setattr("mbrl.commands.surrogate.build_surrogate", no_work)
    afile = tmp_path / "afile"
    afile.write_text("x")
    fill = {"afile": str(afile), "dir": str(tmp_path / "out")}
    args = ["surrogate", "--env", "Pendulum-v1", *(a.format(**fill) for a in argv)]
    try:
        code = cli_main(args)
    except SystemExit as exit_:  # argparse's own errors
        code = exit_.code
    assert code == 2
    err = capsys.readouterr().err
    assert message.format(**fill) in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--seed", "-1"], "argument --seed: expected an int >= 0, got '-1'"),
        (["--steps", "0"], "argument --steps: expected an int >= 1, got '0'"),
        (["--real-ratio", "inf"], "argument --real-ratio: expected a finite number >= 0.0"),
        (["--out", "{afile}"], "argument --out: '{afile}' is a file, not a directory"),
    ],
)
def test_cli_dyna_refuses_bad_flags_at_parse_time(tmp_path, capsys, argv, message):
    from mbrl.cli import main as cli_main

    afile = tmp_path / "afile"
    afile.write_text("x")
    with pytest.raises(SystemExit) as exit_:
        cli_main(["dyna", *(a.format(afile=afile) for a in argv)])
    assert exit_.value.code == 2
    assert message.format(afile=afile) in capsys.readouterr().err


# ------------------------------------------------------------------------------ fit()
def _buffer(obs_dim: int, action_dim: int, n: int = 8) -> TransitionBuffer:
    gen = torch.Generator().manual_seed(0)
    buf = TransitionBuffer(obs_dim, action_dim, capacity=n)
    buf.add(
        torch.randn(n, obs_dim, generator=gen),
        torch.randn(n, action_dim, generator=gen),
        torch.zeros(n),
        torch.randn(n, obs_dim, generator=gen),
        torch.zeros(n, dtype=torch.bool),
        torch.zeros(n, dtype=torch.bool),
    )
    return buf


def test_fit_names_both_sizes_on_an_obs_or_action_mismatch():
    model = GaussianEnsemble(5, 1, TINY)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError) as info:
        fit(model, _buffer(3, 1), FitConfig(max_steps=2, eval_every=1))
    assert str(info.value) == (
        "fit: the data's obs has size 3 (shape (8, 3)) but GaussianEnsemble has obs_dim=5; "
        "the model must be built for the data's sizes"
    )
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    with pytest.raises(ValueError, match="action has size 2 .* MLPDynamics has action_dim=1"):
        fit(MLPDynamics(3, 1), _buffer(3, 2), FitConfig(max_steps=2, eval_every=1))
    with pytest.raises(TypeError, match="fit: config must be a FitConfig, got dict"):
        fit(model, _buffer(5, 1), {"lr": 1e-3})  # type: ignore[arg-type]


# ------------------------------------------------------------------------------ surrogates
@pytest.fixture
def saved_surrogate(tmp_path):
    model = GaussianEnsemble(3, 1, TINY)
    starts = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.5]])
    return save_surrogate(
        tmp_path / "sur", model, PENDULUM_OBS, PENDULUM_ACT, starts, env_id="Pendulum-v1"
    )


def _edit_meta(path, **changes):
    meta_path = path / "surrogate.json"
    meta = json.loads(meta_path.read_text())
    for key, value in changes.items():
        if value is KeyError:
            del meta[key]
        else:
            meta[key] = value
    meta_path.write_text(json.dumps(meta))
    return meta_path


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"env_id": KeyError}, "lacks the key 'env_id'"),
        ({"model_class": KeyError}, "lacks the key 'model_class'"),
        ({"reward": "sometimes"}, "'reward' must be 'known' or 'learned', got 'sometimes'"),
        ({"max_episode_steps": "long"}, "'max_episode_steps' must be int or null, got 'long'"),
        ({"uncertainty_penalty": True}, "'uncertainty_penalty' must be int or float, got True"),
        (
            {"observation_space": {"type": "Box", "low": [0.0]}},
            "'observation_space': Box space description lacks ['high', 'shape', 'dtype']",
        ),
    ],
)
def test_surrogate_json_with_a_missing_or_wrong_key_names_file_and_key(
    saved_surrogate, changes, message
):
    meta_path = _edit_meta(saved_surrogate, **changes)
    with pytest.raises(ValueError) as info:
        load_surrogate(saved_surrogate)
    assert str(meta_path) in str(info.value) and message in str(info.value)


def test_surrogate_whose_model_differs_from_its_json_is_refused(saved_surrogate):
    save_checkpoint(saved_surrogate / "model.pt", MLPDynamics(3, 1), {})
    with pytest.raises(ValueError) as info:
        load_surrogate(saved_surrogate)
    text = str(info.value)
    assert "model.pt' holds a MLPDynamics" in text
    assert "surrogate.json' says 'model_class': 'GaussianEnsemble'" in text


def test_save_surrogate_refuses_a_file_as_directory_before_writing(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("x")
    with pytest.raises(ValueError, match="save_surrogate: directory .* is a file"):
        save_surrogate(
            afile,
            GaussianEnsemble(3, 1, TINY),
            PENDULUM_OBS,
            PENDULUM_ACT,
            torch.zeros(1, 3),
            env_id="Pendulum-v1",
        )
    assert afile.read_text() == "x"


def test_build_surrogate_refuses_a_file_as_out_before_collecting(tmp_path, monkeypatch):
    from mbrl.dyna import job

    afile = tmp_path / "afile"
    afile.write_text("not a directory")

    def no_work(*args, **kwargs):
        raise AssertionError("make_env ran although out is a file")

    monkeypatch.setattr(job, "make_env", no_work)
    with pytest.raises(ValueError, match=r"out '.*afile' is a file, not a directory"):
        job.build_surrogate(job.SurrogateJobConfig(env_id="Pendulum-v1", out=str(afile)))
