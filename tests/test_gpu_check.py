"""scripts/gpu_check.sh / mbrl.bench.gpu: the dry mode runs every section on the CPU in CI."""

from __future__ import annotations

import json
import math
import os
import subprocess
from pathlib import Path

import pytest
import torch

from mbrl.bench import gpu

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "gpu_check.sh"


def test_dry_mode_runs_every_section_and_passes(tmp_path, capsys):
    threads = torch.get_num_threads()
    out = tmp_path / "gpu.json"
    try:
        assert gpu.main(["--dry", "--json", str(out)]) == 0
    finally:
        torch.set_num_threads(threads)
    report = json.loads(out.read_text())
    assert report["mode"] == "dry" and report["device"] == "cpu" and report["ok"]
    for row in report["rollout"]:
        assert row["engine_Msteps_s"] > 0 and row["bare_Msteps_s"] > 0
    graphs = report["graphs"]
    assert graphs["backend"] == "eager" and "CUDA device" in graphs["fallback_reason"]
    assert graphs["deterministic_max_rel_error"] < 1e-4
    cem = report["cem"]
    assert cem["eager_ms_per_action"] > 0 and math.isfinite(cem["graph_ms_per_action"])
    assert cem["budgeted"]["stopped_early"] >= 1
    assert max(cem["budgeted_iterations"]) <= gpu.DRY.cem_iterations
    run = report["run"]
    assert run["returncode"] == 0 and run["device"] == "cpu" and len(run["episodes"]) == 2
    checks = {c["check"]: c["ok"] for c in report["checks"]}
    assert checks["CUDA graph backend in use"] is None  # skipped on the CPU, not failed
    assert all(ok is not False for ok in checks.values())
    assert "gpu_check: all checks passed" in capsys.readouterr().out


def test_a_failed_run_fails_the_check_and_the_exit_status(tmp_path):
    def failing(cmd, **kwargs):
        return subprocess.CompletedProcess(cmd, 1, "", "ValueError: something broke\n")

    report = gpu.Report("dry", "cpu", tmp_path / "r.json")
    gpu.check_run(report, gpu.DRY, torch.device("cpu"), runner=failing)
    (check,) = report.checks
    assert check["ok"] is False and "something broke" in check["detail"]
    assert report.failed == ["mbrl run --device cpu"]
    assert json.loads((tmp_path / "r.json").read_text())["ok"] is False


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is present")
def test_without_cuda_the_full_check_refuses_with_status_2(capsys):
    assert gpu.main([]) == 2
    assert "--dry" in capsys.readouterr().err


def test_the_script_is_an_executable_wrapper_of_the_module():
    assert os.access(SCRIPT, os.X_OK)
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)
    assert "-m mbrl.bench.gpu" in SCRIPT.read_text()


@pytest.mark.cuda
@pytest.mark.slow
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_full_check_on_cuda(tmp_path):
    out = tmp_path / "gpu.json"
    proc = subprocess.run([str(SCRIPT), "--json", str(out)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(out.read_text())
    assert report["graphs"]["backend"] == "graph" and report["run"]["device"].startswith("cuda")
    assert report["seconds"] < 300
