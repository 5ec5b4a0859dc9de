"""The CLI's everyday commands stay fast: --help, push and pull never import tensorflow, and a
command imports only the client library of the backend it uses (botocore for S3, paramiko for SSH)."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.helpers import make_bundle, register_remote, run_cli

PROBE = """
import sys
from modelreg.cli.app import app
try:
    app(sys.argv[1:], standalone_mode=False)
finally:
    heavy = sorted(m for m in ("tensorflow", "keras", "tf_keras", "sklearn", "boto3", "botocore", "s3transfer",
                               "paramiko", "jsonschema") if m in sys.modules)
    print("HEAVY:" + ",".join(heavy))
"""


def imported_heavy_modules(*args: str) -> str:
    out = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True,
                         env=dict(os.environ), timeout=120)
    line = [text for text in out.stdout.splitlines() if text.startswith("HEAVY:")]
    assert line, out.stdout + out.stderr
    return line[-1].removeprefix("HEAVY:")


def test_help_imports_no_tensorflow_and_no_backend():
    assert imported_heavy_modules("--help") == ""


def test_every_lazy_command_lists_the_help_its_own_docstring_gives():
    from modelreg.cli.app import ModelregGroup
    from modelreg.cli.lazy_group import build_command

    for entry in ModelregGroup.lazy_commands:
        command = build_command(entry)
        assert command.name == entry.name
        assert command.get_short_help_str(limit=10_000) == entry.help, entry.name


def test_the_top_level_listing_names_every_command_once_in_order():
    listed = run_cli("--help").stdout.split("Commands:", 1)[1].split()
    for name in ("push", "pull", "tag", "verify", "keygen", "list", "diff", "remote", "cache"):
        assert name in listed
    names = [line.split()[0] for line in run_cli("--help", env={"COLUMNS": "300"}).stdout
             .split("Commands:", 1)[1].strip().splitlines()]
    assert names[:6] == ["push", "pull", "tag", "verify", "keygen", "list"] and names[-2:] == ["remote", "cache"]
    assert len(names) == len(set(names)) == 25


def test_a_mistyped_command_is_suggested_from_the_lazy_ones_too():
    result = run_cli("tag-histroy", expect=2)
    assert "tag-history" in result.stderr


def test_file_push_and_pull_import_no_tensorflow_boto3_paramiko_or_jsonschema(settings, tmp_path,
                                                                              monkeypatch):
    make_bundle(settings, "v9", {"weights.h5": b"w" * 1000}, tmp_path)
    assert imported_heavy_modules("push", "v9") == ""
    monkeypatch.setenv("MODELREG_CACHE", str(tmp_path / "fresh"))
    assert imported_heavy_modules("pull", "v9", "--dest", str(tmp_path / "dest")) == ""
    assert (tmp_path / "dest" / "weights.h5").is_file()


def test_s3_push_and_pull_import_botocore_but_not_boto3_or_paramiko(settings, s3_remote, tmp_path, monkeypatch):
    """botocore alone: the backend creates its clients itself, and s3transfer comes only with a multipart upload."""
    make_bundle(settings, "v9", {"weights.h5": b"w" * 1000}, tmp_path)
    target = register_remote(settings, s3_remote)
    assert imported_heavy_modules("push", "v9", "--remote", target) == "botocore"
    monkeypatch.setenv("MODELREG_CACHE", str(tmp_path / "fresh"))
    assert imported_heavy_modules("pull", "v9", "--remote", target) == "botocore"


def test_ssh_push_and_pull_import_paramiko_but_not_boto3(settings, ssh_remote, tmp_path, monkeypatch):
    make_bundle(settings, "v9", {"weights.h5": b"w" * 1000}, tmp_path)
    target = register_remote(settings, ssh_remote)
    assert imported_heavy_modules("push", "v9", "--remote", target) == "paramiko"
    monkeypatch.setenv("MODELREG_CACHE", str(tmp_path / "fresh"))
    assert imported_heavy_modules("pull", "v9", "--remote", target) == "paramiko"


EXIT_PROBE = """
import atexit, sys, threading, time
from pathlib import Path
from modelreg.cli.app import main

marks = Path(sys.argv[1])
atexit.register(lambda: (marks / "atexit").write_text("ran"))

class Teardown:
    def __del__(self):  # runs only if the interpreter tears its modules down
        (marks / "teardown").write_text("ran")

kept = Teardown()
if sys.argv[2] == "thread":
    def late():
        time.sleep(0.3)
        (marks / "thread").write_text("finished")
    threading.Thread(target=late).start()
sys.argv = ["modelreg", "--help"]
main()
"""


def exit_probe(tmp_path, mode: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", EXIT_PROBE, str(tmp_path), mode], capture_output=True,
                          text=True, env=dict(os.environ), timeout=120)


def test_a_finished_command_exits_without_interpreter_teardown_after_its_atexit_work(tmp_path):
    """Tearing down the loaded modules took ~27 ms of a 0.23 s pull; what shutdown must do still happens."""
    done = exit_probe(tmp_path, "plain")
    assert done.returncode == 0, done.stderr
    assert "pull" in done.stdout and done.stdout.endswith("\n")  # flushed whole through the pipe
    assert (tmp_path / "atexit").read_text() == "ran"
    assert not (tmp_path / "teardown").exists()


def test_a_command_leaves_it_to_python_to_exit_while_a_thread_still_runs(tmp_path):
    done = exit_probe(tmp_path, "thread")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "thread").read_text() == "finished"  # joined, not cut short
    assert (tmp_path / "atexit").read_text() == "ran"
    assert (tmp_path / "teardown").exists()  # the normal shutdown


def test_a_command_exit_code_survives_the_quick_exit(tmp_path):
    done = subprocess.run([sys.executable, "-m", "modelreg", "no-such-command"], capture_output=True, text=True,
                          env=dict(os.environ), timeout=120)
    assert done.returncode == 2
    assert "no-such-command" in done.stderr


def test_a_command_run_under_a_profiler_still_leaves_its_profile(tmp_path):
    """`python -m cProfile` writes its results after the program returns: no quick exit under a profiler."""
    profile = tmp_path / "help.prof"
    done = subprocess.run([sys.executable, "-m", "cProfile", "-o", str(profile), "-m", "modelreg", "--help"],
                          capture_output=True, text=True, env=dict(os.environ), timeout=120)
    assert done.returncode == 0, done.stderr
    assert profile.stat().st_size > 0
