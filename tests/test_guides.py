"""The docs: the strict API-reference build, and every code block of the guides, run.

The guides in ``docs/guides/`` form one series: a python block with a ``title="name.py"`` is a
file the reader creates (every guide's files are written to a fresh directory before a guide
runs), every other python block runs in order in one namespace per guide (a fresh process,
the directory as working directory and on ``sys.path``), and each command of a bash block runs
in a shell there, in document order. Tracebacks point at the guide's own line numbers.

Run a single guide by hand: ``python tests/test_guides.py docs/guides/NAME.md WORKDIR``.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
GUIDES = sorted((ROOT / "docs" / "guides").glob("*.md"))
RUNNABLE = ("python", "bash")
_FENCE = re.compile(r"^```(?P<lang>[\w-]*)(?P<attrs>[^\n]*)\n(?P<code>.*?)^```[ \t]*$", re.M | re.S)
_TITLE = re.compile(r'title="([^"]+)"')


@dataclass(frozen=True)
class Block:
    """One fenced code block of a guide.

    Attributes:
        lang: the fence's language; title: its ``title="..."`` (a file to create), or None;
        code: the block's text; line: the line of the guide its code starts on (1-based).
    """

    lang: str
    title: str | None
    code: str
    line: int


def code_blocks(path: Path) -> list[Block]:
    """The fenced code blocks of the markdown file ``path``, in order."""
    text = path.read_text()
    out = []
    for m in _FENCE.finditer(text):
        title = _TITLE.search(m.group("attrs"))
        line = text.count("\n", 0, m.start("code")) + 1
        out.append(Block(m.group("lang"), title.group(1) if title else None, m.group("code"), line))
    return out


def write_files(workdir: Path) -> None:
    """Write every titled block of every guide into ``workdir`` (the reader's files)."""
    for guide in GUIDES:
        for block in code_blocks(guide):
            if block.title is not None:
                target = workdir / block.title
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(block.code)


def shell_commands(code: str) -> list[str]:
    """The commands of a bash block: one per line (``\\`` continues), comments dropped."""
    commands, current = [], ""
    for raw in code.splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        commands.append(current + line)
        current = ""
    if current:
        commands.append(current)
    return commands


def guide_env() -> dict[str, str]:
    """The environment guides run in: this interpreter's scripts first on ``PATH``, and one
    torch thread (the guides' models are tiny; on a loaded 2-core machine two threads made a
    guide's runs 7x slower in CPU time)."""
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    return dict(os.environ, PATH=path, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")


def run_guide(guide: Path, workdir: Path) -> None:
    """Execute ``guide``'s untitled blocks in order in ``workdir`` (this process)."""
    import torch

    torch.set_num_threads(1)
    os.chdir(workdir)
    sys.path.insert(0, str(workdir))
    env = guide_env()
    namespace: dict = {"__name__": "__guide__"}
    for block in code_blocks(guide):
        if block.title is not None:
            continue
        start = time.perf_counter()
        if block.lang == "python":
            # Padding keeps the guide's line numbers in tracebacks.
            source = "\n" * (block.line - 1) + block.code
            exec(compile(source, str(guide), "exec"), namespace)
        elif block.lang == "bash":
            for command in shell_commands(block.code):
                done = subprocess.run(command, shell=True, executable="/bin/bash", env=env)
                if done.returncode != 0:
                    raise SystemExit(f"{guide}:{block.line}: `{command}` exited {done.returncode}")
        print(f"[{guide.name}:{block.line} {block.lang}: {time.perf_counter() - start:.1f} s]")


def test_guides_exist_and_every_block_is_runnable():
    names = {g.stem for g in GUIDES}
    assert {"wrap-your-env", "add-a-model-or-planner", "deploy-a-saved-model"} <= names
    for guide in GUIDES:
        blocks = code_blocks(guide)
        assert any(b.lang == "python" and b.title is None for b in blocks), guide
        for b in blocks:
            # A block in another language would be skipped silently: not allowed.
            assert b.lang in RUNNABLE, f"{guide.name}:{b.line}: {b.lang!r} block is not run"


def test_shell_commands_split_and_join_lines():
    code = "# a comment\nmbrl run --env X \\\n  --quiet\n\nmbrl dyna --algo dynaq\n"
    assert shell_commands(code) == ["mbrl run --env X  --quiet", "mbrl dyna --algo dynaq"]


@pytest.mark.parametrize("guide", GUIDES, ids=[g.stem for g in GUIDES])
def test_guide_code_runs(guide: Path, tmp_path: Path):
    # Later guides use the files of earlier ones (beamline.py): every guide's directory
    # holds all of them, so each guide runs on its own.
    write_files(tmp_path)
    done = subprocess.run(
        [sys.executable, __file__, str(guide), str(tmp_path)],
        env=guide_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, (
        f"{guide.name} failed:\n{done.stdout[-4000:]}\n{done.stderr[-6000:]}"
    )


def _load_griffe_extension():
    pytest.importorskip("griffe", reason="griffe (the docs extra) is not installed")
    spec = importlib.util.spec_from_file_location(
        "griffe_docstrings", ROOT / "docs" / "api" / "griffe_docstrings.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_griffe_extension_rewrites_wrapped_lines_and_roles():
    ext = _load_griffe_extension()
    text = (
        "Summary with :class:`~mbrl.models.DynamicsModel` and :func:`mbrl.run`.\n\n"
        "Attributes:\n"
        "    config: the config, the rollout backend\n"
        "    chosen); records: every episode (:class:`EpisodeRecord`, or\n"
        "    :class:`~a.b.PlanetRecord` for rssm).\n"
        "    reward_fn / termination_fn: the task functions.\n\n"
        "Args:\n"
        "    model, observation_space,\n"
        "    start_states: as SurrogateCore.\n"
        "    out (str): where.\n\n"
        "Text after the sections.\n"
        "plain line: with a colon stays.\n"
    )
    fixed = ext.fix_continuations(ext.plain_roles(text)).splitlines()
    assert fixed[0] == "Summary with ``DynamicsModel`` and ``mbrl.run``."
    assert fixed[3] == "    config: the config, the rollout backend"
    assert fixed[4].startswith("        chosen); records")  # a continuation, indented
    assert fixed[5] == "        ``PlanetRecord`` for rssm)."
    assert fixed[6] == "    reward_fn / termination_fn: the task functions."
    assert fixed[9] == "    model, observation_space, start_states: as SurrogateCore."
    assert fixed[10] == "    out (str): where."
    assert fixed[-1] == "plain line: with a colon stays."


def test_docs_build_strict(tmp_path: Path):
    for name in ("mkdocs", "mkdocstrings", "mkdocstrings_handlers.python", "material"):
        pytest.importorskip(
            name, reason=f"{name} (the docs extra: pip install -e '.[docs]') is missing"
        )
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=dict(os.environ, NO_MKDOCS_2_WARNING="1"),
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-6000:]
    assert (tmp_path / "site" / "api" / "rollout" / "index.html").is_file()
    assert (tmp_path / "site" / "guides" / "wrap-your-env" / "index.html").is_file()


if __name__ == "__main__":
    run_guide(Path(sys.argv[1]).resolve(), Path(sys.argv[2]).resolve())
