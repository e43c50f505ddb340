"""The click layer: exit codes, one-line errors, JSON output."""

import json
import subprocess
import sys

from click.testing import CliRunner

from edgeml import __version__
from edgeml.cli import main


def invoke(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_version_and_help_everywhere():
    assert __version__ in invoke("--version").output
    for command in main.commands:
        assert invoke(command, "--help").exit_code == 0


def test_data_info_json_has_counts_and_per_class_stats():
    result = invoke("data", "info", "--json")
    assert result.exit_code == 0
    info = json.loads(result.output)
    assert info["classes"] == ["g", "q", "w", "z", "t"] and len(info["features"]) == 16
    assert sum(info["class_counts"].values()) == info["n_jets"]
    assert set(info["stats"]["multiplicity"]["g"]) == {"mean", "std", "median"}


def test_input_errors_exit_2_with_one_line_and_no_traceback(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  epochs: -1\n")
    result = CliRunner().invoke(main, ["train", str(bad)])
    assert result.exit_code == 2
    assert result.output.strip() == "error: config error: train.epochs = -1 is below the minimum 1"

    result = CliRunner().invoke(main, ["data", "info", "--data", str(tmp_path / "none.csv")])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_run_refuses_foreign_directory(tmp_path):
    run_dir = tmp_path / "r"
    run_dir.mkdir()
    (run_dir / "notes.txt").write_text("keep me")
    result = CliRunner().invoke(main, ["run", "--run-dir", str(run_dir)])
    assert result.exit_code == 2 and "pass --force" in result.output
    assert (run_dir / "notes.txt").read_text() == "keep me"


def test_debug_shows_traceback(tmp_path):
    result = CliRunner().invoke(main, ["--debug", "data", "info", "--data", str(tmp_path / "none.csv")])
    assert result.exit_code != 0 and result.exception is not None


def test_console_script_is_installed():
    out = subprocess.run([sys.executable, "-m", "edgeml", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and __version__ in out.stdout
