"""Packaging facts users rely on: one version, ``mbrl --version``, typed, licensed."""

from __future__ import annotations

import subprocess
import sys
from importlib import metadata
from pathlib import Path

import mbrl

ROOT = Path(__file__).resolve().parents[1]


def test_version_is_written_once_and_reported_everywhere() -> None:
    assert metadata.version("mbrl-toolkit") == mbrl.__version__
    out = subprocess.run(
        [sys.executable, "-m", "mbrl.cli", "--version"], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == f"mbrl-toolkit {mbrl.__version__}"
    assert f"## {mbrl.__version__}" in (ROOT / "CHANGELOG.md").read_text()


def test_package_is_typed_and_licensed() -> None:
    assert (Path(mbrl.__file__).parent / "py.typed").exists()
    assert metadata.metadata("mbrl-toolkit")["License-Expression"] == "MIT"
    assert "MIT License" in (ROOT / "LICENSE").read_text()
