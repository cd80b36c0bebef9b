"""``mbrl report``: figures, ranking tables and failed cells from a results directory."""

from __future__ import annotations

import json
import math
import sys

import pytest

from mbrl.bench.cells import CellOutcome, CellSpec, write_outcome
from mbrl.bench.report import FIGURES, MissingPlotDependency, load_results, write_report
from mbrl.bench.suite import Suite, write_summary
from mbrl.cli import main as cli_main

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _episodes(spec: CellSpec, returns: list[float], plan_ms: float, steps: int = 50):
    out = []
    for i, ret in enumerate(returns):
        kind = "seed" if i == 0 else "mpc"
        out.append(
            {
                "cell_id": spec.cell_id,
                "env": spec.env_id,
                "model": spec.model,
                "planner": spec.planner,
                "tag": spec.tag,
                "seed": spec.seed,
                "episode": i,
                "kind": kind,
                "return": ret,
                "steps": steps,
                "plan_ms": 0.0 if kind == "seed" else plan_ms,
                "model_val_loss": None if i == 0 else 0.1,
                "env_steps": steps * (i + 1),
                "fit_seconds": 0.0,
                "terminated": False,
                "truncated": True,
            }
        )
    return out


# Returns per seed (seed episode first). cem is best on average, shooting is cheaper.
RESULTS = {
    ("Pendulum-v1", "cem"): {0: [-900, -500, -200, -150, -140], 1: [-950, -600, -300, -160, -120]},
    ("Pendulum-v1", "shooting"): {0: [-900, -700, -500, -400, -380], 1: [-950, -650, -450, -420, -400]},
    ("mbrl/AwakeSteering-v0", "cem"): {0: [-50, -30, -10, -5, -4], 1: [-60, -20, -12, -6, -5]},
}  # fmt: skip
PLAN_MS = {"cem": 40.0, "shooting": 10.0}


@pytest.fixture
def results_dir(tmp_path):
    out = tmp_path / "res"
    cells = []
    for (env, planner), per_seed in RESULTS.items():
        for seed, returns in per_seed.items():
            spec = CellSpec(env, "ensemble", planner, seed)
            cells.append(spec)
            write_outcome(
                out, CellOutcome(spec, "ok", _episodes(spec, returns, PLAN_MS[planner]), 3.0, "h")
            )
    failed = CellSpec("Pendulum-v1", "ensemble", "mppi", 0)
    cells.append(failed)
    write_outcome(
        out,
        CellOutcome(
            failed,
            "failed",
            [],
            1.0,
            "h",
            "Traceback (most recent call last):\n  ...\nRuntimeError: boom",
            "RuntimeError: boom",
        ),
    )
    missing = CellSpec("Pendulum-v1", "ensemble", "mppi", 1)
    cells.append(missing)
    suite = Suite("unit", "", "unit.toml", tuple(cells))
    (out / "suite.json").write_text(json.dumps(suite.to_json()))
    write_summary(out, suite)
    return out


def test_report_files_figures_and_ranking(results_dir):
    files = write_report(results_dir)
    assert set(files.figures) == {"learning_curves", "return_vs_plan_time", "return_vs_env_steps"}
    for path in files.figures.values():
        data = path.read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 10_000
    md = files.markdown.read_text()
    for name in FIGURES.values():
        assert f"]({name})" in md
    # Pendulum ranking: cem (mean of last-3 means) above shooting, with its spread over seeds.
    cem = [sum(r[-3:]) / 3 for r in RESULTS[("Pendulum-v1", "cem")].values()]
    mean = sum(cem) / 2
    std = math.sqrt(sum((c - mean) ** 2 for c in cem))  # sample std of 2 values
    pend = md[md.index("### Pendulum-v1") : md.index("### mbrl/AwakeSteering-v0")]
    rows = [
        line for line in pend.splitlines() if line.startswith("| 1 ") or line.startswith("| 2 ")
    ]
    assert "ensemble+cem" in rows[0] and f"{mean:.1f} ± {std:.1f}" in rows[0]
    assert "ensemble+shooting" in rows[1] and "| 10.0 |" in rows[1]
    assert "| 2/2 |" in rows[0]
    assert "## Failed cells" in md and "RuntimeError: boom" in md
    assert "Pendulum-v1__ensemble__mppi__s1" in md  # not run yet
    page = files.html.read_text()
    assert page.count("data:image/png;base64,") == 3 and "Traceback" in page


def test_ranking_counts_failed_seeds(results_dir):
    results = load_results(results_dir)
    pend = {v.label: v for v in results.variants["Pendulum-v1"]}
    assert len(pend["ensemble+cem"].rows) == 2 and not pend["ensemble+cem"].failed
    assert len(pend["ensemble+mppi"].failed) == 1 and not pend["ensemble+mppi"].rows
    assert results.missing == ["Pendulum-v1__ensemble__mppi__s1"]


def test_cli_report_and_bad_dirs(results_dir, tmp_path, capsys):
    assert cli_main(["report", str(results_dir)]) == 0
    assert "report.md" in capsys.readouterr().out
    assert (results_dir / "report.html").exists()
    assert cli_main(["report", str(tmp_path / "nothing")]) == 2
    assert "holds no benchmark results" in capsys.readouterr().err


def test_missing_matplotlib_is_a_clear_error(results_dir, monkeypatch, capsys):
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(MissingPlotDependency, match="mbrl\\[plot\\]"):
        write_report(results_dir)
    assert not (results_dir / "report.md").exists()
    assert cli_main(["report", str(results_dir)]) == 2
    assert "pip install" in capsys.readouterr().err
