"""Run exported artefacts with mbrl/export/loader.py in a fresh venv that has only torch.

A venv is created without pip or system site-packages; torch and the distributions it
requires (its ``Requires-Dist`` closure: filelock, sympy, networkx, ..., the CUDA wheels of a
CUDA build) are linked into it from this interpreter's site-packages, so nothing is
downloaded; mbrl and numpy are not there. ``loader.py`` is copied next to the artefacts and
each artefact is loaded and called on random observations in that venv (``python -I``); the
script fails unless ``import mbrl`` fails there.

    python scripts/loader_fresh_venv.py policy.pt2 planner.pt2 --workdir /tmp/deploy
"""

from __future__ import annotations

import argparse
import importlib.metadata as md
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

# The loader is found by path: this script needs no mbrl installed, only torch.
LOADER = Path(__file__).resolve().parents[1] / "mbrl" / "export" / "loader.py"

_CHECK = r"""
import json, sys, time
import torch
try:
    import mbrl  # noqa: F401
    sys.exit("mbrl is importable in the fresh venv")
except ImportError:
    pass
import loader
for path in sys.argv[1:]:
    art = loader.load(path)
    obs = torch.randn(8, art.obs_dim)
    kind = art.spec["kind"]
    if kind == "planner":
        out, one = art.plan(obs), art.act(obs[0])
    elif kind == "belief_policy":
        b = art.spec["belief"]
        zeros = lambda n: torch.zeros(8, n)  # noqa: E731
        out = art.step(obs, zeros(b["deter_size"]), zeros(b["stoch_size"]), zeros(art.action_dim))[0]
        one = art.act(obs[0])
    else:
        out, one = art(obs), art(obs[0])
    print(json.dumps({"artefact": path, "kind": art.spec["kind"], "out": list(out.shape),
                      "one": list(one.shape), "finite": bool(torch.isfinite(out).all()),
                      "torch": torch.__version__, "python": sys.version.split()[0],
                      "numpy": "numpy" in sys.modules}))
"""


def _requirements(name: str, seen: set[str]) -> None:
    """Add ``name`` and the distributions it requires (markers evaluated here) to ``seen``."""
    key = re.sub(r"[-_.]+", "-", name).lower()
    if key in seen:
        return
    try:
        dist = md.distribution(name)
    except md.PackageNotFoundError:
        return
    seen.add(key)
    for req in dist.requires or []:
        spec, _, marker = req.partition(";")
        if "extra ==" in marker:
            continue
        if marker.strip():
            from packaging.markers import Marker

            if not Marker(marker.strip()).evaluate():
                continue
        _requirements(re.split(r"[\s<>=!~\[(]", spec.strip(), maxsplit=1)[0], seen)


def link_torch(site: Path) -> list[str]:
    """Link torch and its requirement closure into the venv site-packages ``site``; returns
    the distribution names linked."""
    names: set[str] = set()
    _requirements("torch", names)
    names.discard("numpy")  # optional for torch; not installed, to show the loader needs none
    source = Path(sysconfig.get_paths()["purelib"])
    linked = []
    for name in sorted(names):
        dist = md.distribution(name)
        tops = {Path(str(f)).parts[0] for f in dist.files or []}
        for top in tops:
            src = source / top
            skip = top.startswith("..") or top == "__pycache__" or (site / top).exists()
            if src.exists() and not skip:
                (site / top).symlink_to(src)
        linked.append(f"{dist.metadata['Name']}=={dist.version}")
    return linked


def main(argv: list[str] | None = None) -> int:
    """Build the venv, copy the loader and artefacts, run the check there."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("artefacts", nargs="+")
    p.add_argument("--workdir", required=True)
    args = p.parse_args(argv)
    work = Path(args.workdir)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    print("linked into the venv: " + ", ".join(link_torch(site)))
    shutil.copy(LOADER, work / "loader.py")
    files = []
    for art in args.artefacts:
        files.append(str(shutil.copy(art, work / Path(art).name)))
    # -I: isolated (no user site, no PYTHONPATH); the cwd is put on sys.path explicitly.
    code = "import sys; sys.path.insert(0, '.')\n" + _CHECK
    run = subprocess.run([str(python), "-I", "-c", code, *files], cwd=work, text=True)
    return run.returncode


if __name__ == "__main__":
    sys.exit(main())
