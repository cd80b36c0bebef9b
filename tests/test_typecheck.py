"""The type checker in the test line: mypy, configured in pyproject.toml for Python 3.10.

One mypy run (a few seconds of CPU) checks the package and a small probe file that uses
3.11-only APIs and bad names; the package must pass, and every probe line must be caught, which
shows the configuration catches what it is there for.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("mypy", reason="mypy is in the dev extra")

ROOT = Path(__file__).resolve().parents[1]

PROBE = {
    "from typing import Self": 'Module "typing" has no attribute "Self"',
    "import tomllib": 'Cannot find implementation or library stub for module named "tomllib"',
    "from datetime import UTC": 'Module "datetime" has no attribute "UTC"',
    "from enum import StrEnum": 'Module "enum" has no attribute "StrEnum"',
    "from mbrl.models import NoSuchModel": 'Module "mbrl.models" has no attribute "NoSuchModel"',
    "import mbrl.no_such_module": 'library stub for module named "mbrl.no_such_module"',
    "ValueError('x').add_note('y')": '"ValueError" has no attribute "add_note"',
    "print(undefined_name)": 'Name "undefined_name" is not defined',
}
"""Probe line -> the mypy message it must get (Python 3.10 lacks each API)."""

FINE_ON_310 = [
    "'abc'.removeprefix('a')",
    "from typing import ParamSpec",
    "zip([1], [2], strict=True)",
]
"""Probe lines that exist on Python 3.10 and must pass."""


@pytest.fixture(scope="module")
def mypy_run(tmp_path_factory) -> tuple[Path, dict[int, list[str]], list[str], str]:
    tmp = tmp_path_factory.mktemp("mypy")
    probe = tmp / "probe_311_apis.py"
    lines = list(PROBE) + FINE_ON_310
    probe.write_text("\n".join(lines) + "\n")
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "--cache-dir", str(tmp / "cache"), "mbrl", str(probe)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    by_line: dict[int, list[str]] = {}
    elsewhere = []
    for line in proc.stdout.splitlines():
        m = re.match(r"(.+?):(\d+): error: (.*)", line)
        if m is None:
            continue
        if Path(m.group(1)).name == probe.name:
            by_line.setdefault(int(m.group(2)), []).append(m.group(3))
        else:
            elsewhere.append(line)
    return probe, by_line, elsewhere, proc.stdout + proc.stderr


def test_package_passes_the_type_check_for_python_310(mypy_run):
    _, _, elsewhere, output = mypy_run
    assert elsewhere == [], output
    assert "error: " in output  # the probe file's errors: mypy did run


def test_type_check_catches_typing_self_and_other_311_only_apis(mypy_run):
    _, by_line, _, output = mypy_run
    for number, (line, message) in enumerate(PROBE.items(), start=1):
        assert any(message in m for m in by_line.get(number, [])), (line, output)
    for number in range(len(PROBE) + 1, len(PROBE) + len(FINE_ON_310) + 1):
        assert number not in by_line, (FINE_ON_310[number - len(PROBE) - 1], output)


def test_type_check_targets_python_310():
    text = (ROOT / "pyproject.toml").read_text()
    assert re.search(r'^\[tool\.mypy\]\npython_version = "3\.10"$', text, re.M)
    assert re.search(r'^dev = \[.*"mypy', text, re.M)
