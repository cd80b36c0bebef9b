"""Messages go through the standard logging module: the package logger ``mbrl`` has a
NullHandler, the resume notice is an INFO record of it, and ``mbrl --log-level`` sets what the
command line prints to stderr (one ``mbrl: LEVEL: message`` line each), results staying on
stdout."""

from __future__ import annotations

import logging

import pytest
from test_resume import TINY

from mbrl.agents.config import RunConfig
from mbrl.agents.episode_loop import run_config_document
from mbrl.agents.loop import resume
from mbrl.agents.writer import RunWriter
from mbrl.cli import _chosen_command
from mbrl.cli import main as cli_main
from mbrl.util.log import configure_cli_logging, get_logger, logger, reset_cli_logging

ONE_EPISODE = {**TINY, "episodes": 0}
"""One 10-step seed episode: no model is fitted."""


def _unstarted_run(directory) -> None:
    """A run directory holding only its config.json (killed before its first episode)."""
    cfg = RunConfig(out=str(directory), **ONE_EPISODE)
    RunWriter(directory).start(run_config_document(cfg, cfg))


def test_package_logger_is_silent_by_default_and_modules_log_under_it():
    assert any(isinstance(h, logging.NullHandler) for h in logger.handlers)
    assert logger.name == "mbrl"
    assert get_logger("mbrl.agents.loop").parent is logger


def test_resume_notice_is_an_info_record_of_the_mbrl_logger(tmp_path, caplog, capsys):
    out = tmp_path / "run"
    _unstarted_run(out)
    with caplog.at_level(logging.INFO, logger="mbrl"):
        result = resume(out)
    assert len(result.records) == 1
    notices = [r for r in caplog.records if "resuming the run in" in r.getMessage()]
    assert len(notices) == 1
    assert notices[0].name.startswith("mbrl.") and notices[0].levelno == logging.INFO
    assert (
        notices[0].getMessage()
        == f"resuming the run in {out} from the start (no episode was saved)"
    )
    assert "resuming" not in capsys.readouterr().out  # a message, not the command's output


@pytest.mark.parametrize("level, shown", [("info", True), ("warning", False)])
def test_cli_log_level_decides_whether_info_messages_reach_stderr(tmp_path, capsys, level, shown):
    out = tmp_path / "run"
    _unstarted_run(out)
    assert cli_main(["--log-level", level, "run", "--resume", str(out)]) == 0
    captured = capsys.readouterr()
    line = f"mbrl: INFO: resuming the run in {out} from the start (no episode was saved)"
    assert (line in captured.err.splitlines()) is shown
    assert "resuming" not in captured.out
    assert "outputs in" in captured.out  # results stay on stdout at every level
    # main() leaves logging as it found it
    assert logger.level == logging.NOTSET and all(
        isinstance(h, logging.NullHandler) for h in logger.handlers
    )


def test_configure_cli_logging_formats_one_line_and_replaces_its_handler(capsys):
    try:
        configure_cli_logging("debug")
        configure_cli_logging("warning")  # replaces, not adds
        get_logger("mbrl.test").info("hidden")
        get_logger("mbrl.test").warning("shown %d", 3)
        assert capsys.readouterr().err == "mbrl: WARNING: shown 3\n"
    finally:
        reset_cli_logging()
    with pytest.raises(ValueError, match="log level must be one of"):
        configure_cli_logging("loud")


def test_the_log_level_value_is_not_taken_for_the_subcommand():
    assert _chosen_command(["--log-level", "debug", "run", "--env", "x"]) == "run"
    assert _chosen_command(["--log-level=error", "bench"]) == "bench"
    with pytest.raises(SystemExit):
        cli_main(["--log-level", "loud", "run"])
