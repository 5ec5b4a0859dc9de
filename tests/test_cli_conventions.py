"""Command-line conventions users bring from git and pip: global options anywhere, --version, exit codes."""

from __future__ import annotations

import subprocess
import sys

from modelreg import __version__
from modelreg.cli.app import hoist_global_options
from modelreg.cli.errors import EXIT_CODES, exit_code_for
from modelreg.errors import (
    DigestMismatch,
    ManifestMismatch,
    MissingFile,
    NotFound,
    RegistryError,
    RemoteError,
    UntrustedError,
    UsageError,
)
from tests.helpers import make_bundle, run_cli


def test_global_options_after_the_subcommand_move_to_the_front():
    assert hoist_global_options(["pull", "v9", "-q", "--workspace", "w", "--debug"]) == [
        "-q", "--workspace", "w", "--debug", "pull", "v9"]
    assert hoist_global_options(["pull", "--workspace=w", "v9"]) == ["--workspace=w", "pull", "v9"]


def test_nothing_after_a_double_dash_is_treated_as_a_global_option():
    assert hoist_global_options(["predict", "v9", "--", "-q"]) == ["predict", "v9", "--", "-q"]


def test_quiet_after_the_subcommand_is_accepted(settings, tmp_path):
    make_bundle(settings, "v9", {"w.bin": b"w" * 100}, tmp_path)
    pushed = run_cli("push", "v9", "-q")
    assert "Pushed emotion:v9" in pushed.stdout
    missing = run_cli("pull", "v10", "--quiet", expect=1)
    assert "neither a version nor a tag" in missing.stderr
    assert "No such option" not in missing.stderr


def test_version_flag_and_python_dash_m_print_the_single_sourced_version():
    assert run_cli("--version").stdout.strip() == f"modelreg {__version__}"
    module = subprocess.run([sys.executable, "-m", "modelreg", "--version"], capture_output=True, text=True,
                            timeout=60)
    assert module.returncode == 0 and module.stdout.strip() == f"modelreg {__version__}"


def test_a_usage_error_exits_2_with_one_line_and_no_traceback():
    result = run_cli("pull", "not a ref!", expect=2)
    assert "Invalid version" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_unknown_option_is_a_usage_error():
    result = run_cli("pull", "v9", "--no-such-option", expect=2)
    assert "No such option" in result.stderr


def test_debug_shows_the_traceback_of_an_expected_failure():
    result = run_cli("--debug", "pull", "v10", expect=1)
    assert "Traceback" in result.stderr and "NotFound" in result.stderr


def test_exit_code_table_maps_subclasses_before_their_bases():
    assert exit_code_for(UsageError("x")) == 2
    assert exit_code_for(DigestMismatch(path="a", expected="e", actual="a", expected_size=1, actual_size=2,
                                        where="x", outcome="", fix="", source="cache")) == 3
    assert exit_code_for(MissingFile(path="a", expected="e" * 64, where="x", fix="", source="cache")) == 3
    assert exit_code_for(ManifestMismatch(subject="s", expected="e", actual="a", promised_by="p", outcome="",
                                          fix="", path="p", source="remote")) == 3
    assert exit_code_for(UntrustedError("x")) == 4
    assert exit_code_for(RemoteError("x")) == 5
    assert exit_code_for(NotFound("x")) == 1
    assert exit_code_for(ValueError("a bug")) == 1
    classes = [cls for cls, _code, _label in EXIT_CODES]
    assert classes[-1] is RegistryError


def test_output_closed_early_exits_141_quietly(settings, tmp_path):
    for index in range(3):
        make_bundle(settings, f"v{index}", {"w.bin": bytes([index]) * 10}, tmp_path)
        run_cli("push", f"v{index}", "-q")
    pipeline = subprocess.run(f"'{sys.executable}' -m modelreg list --json | head -c 1 >/dev/null; "
                              f"echo ${{PIPESTATUS[0]}}", shell=True, executable="/bin/bash",
                              capture_output=True, text=True, timeout=120)
    assert pipeline.stdout.strip() in ("0", "141"), pipeline.stdout + pipeline.stderr
    assert "Traceback" not in pipeline.stderr and "Internal error" not in pipeline.stderr
