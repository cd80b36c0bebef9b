"""A full disk (or a permission error) while a run writes its checkpoint: one line naming the
file and the reason, the buffer kept in a named temporary directory, no partial files, and
the directory still resumes from the last complete checkpoint."""

from __future__ import annotations

import errno
import json
from pathlib import Path

import pytest
import torch
from test_resume import CLI_TINY, TINY

import mbrl.util.files as files_module
from mbrl.agents.config import RunConfig
from mbrl.agents.loop import RunOutputError, resume, run
from mbrl.cli import main as cli_main
from mbrl.data import TransitionBuffer


def _leftovers(out: Path) -> list[str]:
    return sorted(p.name for p in out.iterdir() if ".next-" in p.name or p.name.endswith(".tmp"))


def _disk_full_at(monkeypatch, target: str, generation: int, err: int = errno.ENOSPC) -> None:
    """Writing ``target`` of checkpoint ``generation`` fails with OSError(err): after part of
    the file was written, as a full disk fails (``fsync`` reports it)."""
    real = files_module._fsync_path

    def fsync(path: Path, directory: bool = False) -> None:
        if not directory and path.name.startswith(f"{target}.next-{generation}"):
            with open(path, "r+b") as fh:
                fh.truncate(max(1, path.stat().st_size // 2))
            raise OSError(
                err, "No space left on device" if err == errno.ENOSPC else "Permission denied"
            )
        real(path, directory)

    monkeypatch.setattr(files_module, "_fsync_path", fsync)


@pytest.fixture(autouse=True)
def _temp_dirs_in_tmp_path(tmp_path, monkeypatch):
    """Rescued buffers go to a new temporary directory: keep those under the test's."""
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))


@pytest.fixture(scope="module")
def reference():
    return run(RunConfig(**TINY))


@pytest.mark.parametrize("target", ["buffer.pt", "model.pt", "metrics.jsonl"])
def test_disk_full_keeps_the_buffer_and_the_last_checkpoint(
    tmp_path, monkeypatch, target, reference
):
    out = tmp_path / "run"
    _disk_full_at(monkeypatch, target, generation=3)  # after episode 2
    with pytest.raises(RunOutputError) as info:
        run(RunConfig(out=str(out), **TINY))
    err = info.value
    assert str(err) == f"cannot write {out / target}: No space left on device [ENOSPC]"
    assert err.errno == errno.ENOSPC and isinstance(err.__cause__, OSError)
    note = err.__notes__[0]
    saved = Path(note.split("were saved to ")[1].split(";")[0])
    assert saved.name == "buffer.pt" and saved.parent.name.startswith("mbrl-crash-")
    assert saved.parent.parent == tmp_path and len(TransitionBuffer.load(saved)) == 30  # eps 0-2
    assert note.endswith(f"{out} holds episodes 0-1 of 4; 'mbrl run --resume {out}' runs the rest")
    assert _leftovers(out) == [] and not (out / "summary.json").exists()
    assert json.loads((out / "state.json").read_text())["next_episode"] == 2
    monkeypatch.undo()
    resumed = resume(out)
    assert [r.episode_return for r in resumed.records] == [
        r.episode_return for r in reference.records
    ]
    assert torch.equal(resumed.buffer.all().obs, reference.buffer.all().obs)


def test_a_failed_torch_save_leaves_no_partial_file(tmp_path, monkeypatch):
    out = tmp_path / "run"
    real_save = torch.save

    def save(obj, f, *args, **kwargs):  # writes half a file, then the disk is full
        if "buffer.pt.next-2" in str(f):
            Path(f).write_bytes(b"PK\x03\x04 half a zip")
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save)
    with pytest.raises(RunOutputError, match=r"buffer.pt: No space left on device \[ENOSPC\]"):
        run(RunConfig(out=str(out), **TINY))
    assert _leftovers(out) == []
    assert len(TransitionBuffer.load(out / "buffer.pt")) == 10  # the first checkpoint's


def test_cli_prints_one_line_and_exits_1_on_a_full_disk(tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    _disk_full_at(monkeypatch, "model.pt", generation=2)
    assert cli_main(["run", *CLI_TINY, "--out", str(out)]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(
        f"mbrl run: error: cannot write {out / 'model.pt'}: No space left on device [ENOSPC]; "
        "the 30 transitions collected so far were saved to "
    )
    assert lines[0].endswith(f"{out} holds episode 0 of 6; 'mbrl run --resume {out}' runs the rest")


def test_permission_denied_is_reported_the_same_way(tmp_path, monkeypatch):
    out = tmp_path / "run"
    _disk_full_at(monkeypatch, "metrics.jsonl", generation=1, err=errno.EACCES)
    with pytest.raises(RunOutputError) as info:
        run(RunConfig(out=str(out), **TINY))
    assert str(info.value) == f"cannot write {out / 'metrics.jsonl'}: Permission denied [EACCES]"
    assert "the 10 transitions collected so far were saved to" in info.value.__notes__[0]
    assert _leftovers(out) == [] and not (out / "state.json").exists()


def test_rescue_failing_too_says_so(tmp_path, monkeypatch):
    out = tmp_path / "run"
    _disk_full_at(monkeypatch, "buffer.pt", generation=1)
    monkeypatch.setattr(
        "tempfile.mkdtemp", lambda **kw: (_ for _ in ()).throw(OSError(errno.ENOSPC, "full"))
    )
    with pytest.raises(RunOutputError) as info:
        run(RunConfig(out=str(out), **TINY))
    assert info.value.__notes__ == [
        "the 10 transitions collected so far could not be saved ([Errno 28] full)"
    ]
