"""``import mbrl`` and ``mbrl --help`` load nothing heavy; every public name still resolves.

Each check runs in a fresh interpreter, since this test process has imported everything.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

import mbrl
from mbrl import cli

HEAVY = ("torch", "gpytorch", "linear_operator", "scipy", "matplotlib", "ray")
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def _python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=180, env=ENV
    )


def test_import_mbrl_does_not_import_gpytorch():
    proc = _python("import mbrl, sys; print('gpytorch' in sys.modules)")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"
    assert proc.stderr == ""


def test_import_mbrl_and_cli_load_no_heavy_module_yet_register_every_env_id():
    code = (
        "import json, sys, gymnasium, mbrl, mbrl.cli\n"
        "from mbrl.gym_ids import ENV_SPECS\n"
        f"heavy = [m for m in {HEAVY!r} if m in sys.modules]\n"
        "ids = [i for i in ENV_SPECS if i not in gymnasium.registry]\n"
        "print(json.dumps({'heavy': heavy, 'unregistered': ids}))\n"
    )
    proc = _python(code)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"heavy": [], "unregistered": []}


@pytest.mark.parametrize("flag", ["--help", "--version"])
def test_mbrl_help_and_version_print_no_warning_and_import_no_torch(flag):
    code = (
        "import sys, runpy\n"
        f"sys.argv = ['mbrl', {flag!r}]\n"
        "try:\n"
        "    runpy.run_module('mbrl.cli', run_name='__main__')\n"
        "except SystemExit:\n"
        "    pass\n"
        f"print('heavy', [m for m in {HEAVY!r} if m in sys.modules])\n"
    )
    proc = _python(code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert proc.stdout.rstrip().endswith("heavy []"), proc.stdout
    if flag == "--help":
        for name in cli.COMMANDS:
            assert f"    {name}" in proc.stdout
    else:
        assert proc.stdout.startswith(f"mbrl-toolkit {mbrl.__version__}")


def test_every_public_name_resolves_and_is_listed():
    proc = _python(
        "import mbrl\n"
        "missing = [n for n in mbrl.__all__ if getattr(mbrl, n, None) is None]\n"
        "unlisted = [n for n in mbrl.__all__ if n not in dir(mbrl)]\n"
        "print(missing, unlisted, mbrl.models.__name__, mbrl.envs.__name__)\n"
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["[]", "[]", "mbrl.models", "mbrl.envs"]
    with pytest.raises(AttributeError, match="module 'mbrl' has no attribute 'nope'"):
        mbrl.nope  # noqa: B018


def test_a_re_export_named_like_its_submodule_stays_the_re_export():
    # mbrl.rollout is the function of the subpackage mbrl.rollout, however the two are reached.
    proc = _python(
        "import mbrl.rollout.core, mbrl\n"
        "from mbrl.rollout import rollout, simulate\n"
        "print(mbrl.rollout is rollout, callable(mbrl.rollout), simulate.__module__)\n"
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["True", "True", "mbrl.rollout.core"]


def test_gp_loads_gpytorch_on_first_use_without_its_warning(tmp_path):
    from mbrl.models import save_checkpoint
    from mbrl.models.gp import GPDynamics

    path = tmp_path / "gp.pt"
    save_checkpoint(path, GPDynamics(3, 1), {})
    proc = _python(
        "import sys\n"
        "from mbrl.models import load_checkpoint\n"
        "from mbrl.models.registry import build_model\n"
        "print('gpytorch' in sys.modules)\n"
        f"model, _ = load_checkpoint({str(path)!r})\n"
        "print(type(model).__name__, 'gpytorch' in sys.modules)\n"
        "print(type(build_model('gp', 3, 1)).__name__)\n"
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["False", "GPDynamics", "True", "GPDynamics"], proc.stderr
    assert "torch.jit.script" not in proc.stderr and "FutureWarning" not in proc.stderr


@pytest.mark.parametrize("first", ["mbrl.task_fns", "mbrl.envs.awake", "mbrl.envs.spill"])
def test_env_task_functions_are_registered_whatever_is_imported_first(first):
    proc = _python(
        f"import {first}\n"
        "from mbrl.task_fns import get_task_fns\n"
        "from mbrl.envs import AWAKE_ENV_ID, SPILL_ENV_ID\n"
        "print(get_task_fns(AWAKE_ENV_ID) is not None, get_task_fns(SPILL_ENV_ID) is not None)\n"
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["True", "True"]


def test_gym_ids_match_the_modules_that_define_the_envs():
    from mbrl import gym_ids
    from mbrl.dyna import DYNA_MAZE_ENV_ID, SURROGATE_ENV_ID
    from mbrl.envs import AWAKE_ENV_ID, POINT_MASS_ENV_ID, SPILL_ENV_ID

    assert gym_ids.POINT_MASS_ENV_ID == POINT_MASS_ENV_ID
    for env_id in (AWAKE_ENV_ID, SPILL_ENV_ID, DYNA_MAZE_ENV_ID, SURROGATE_ENV_ID):
        assert env_id in gym_ids.ENV_SPECS


def test_cli_help_lines_equal_the_subcommand_modules_own():
    def help_lines(parser):
        sub = next(a for a in parser._actions if a.dest == "command")
        return {a.dest: a.help for a in sub._choices_actions}

    assert help_lines(cli.build_parser()) == {name: h for name, (_, h) in cli.COMMANDS.items()}
    only_report = cli.build_parser("report")
    assert help_lines(only_report) == {name: h for name, (_, h) in cli.COMMANDS.items()}
    assert cli._chosen_command(["--version"]) == ""
    assert cli._chosen_command(["-h", "surrogate", "--out", "x"]) == "surrogate"
