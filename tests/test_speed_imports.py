"""What commands import: the SSH backend starts without paramiko's optional `invoke` (which `Match exec`
still gets) or `importlib.metadata`; no filelock, rich or jsonschema where they are not used."""

from __future__ import annotations

import shutil
import subprocess
import sys

from tests.helpers import python_prints


def test_ssh_backend_import_does_not_import_invoke():
    code = "import sys, modelreg.storage.ssh.backend; print('invoke' in sys.modules)"
    assert python_prints(code) == ["False"]


def test_ssh_backend_import_does_not_import_importlib_metadata_and_paramiko_knows_its_version():
    code = ("import sys, modelreg.storage.ssh.backend, paramiko\n"
            "print('importlib.metadata' in sys.modules, paramiko.__version__)\n"
            "import importlib.metadata\n"
            "print(importlib.metadata.version('paramiko'), importlib.metadata.entry_points is not None)")
    absent, version, version_again, found = python_prints(code)
    assert absent == "False"
    assert [version_again, found] == [version, "True"]
    assert version[0].isdigit()


def test_a_program_that_imported_importlib_metadata_keeps_it():
    code = ("import importlib.metadata as before, sys, modelreg.storage.ssh.backend, paramiko\n"
            "print(sys.modules['importlib.metadata'] is before, paramiko.__version__ == before.version('paramiko'))")
    assert python_prints(code) == ["True", "True"]


def test_s3_backend_import_does_not_import_pyopenssl_or_cryptography():
    code = ("import sys, modelreg.storage.s3.backend\n"
            "print(sorted(m for m in ('OpenSSL', 'cryptography', 'urllib3.contrib.pyopenssl') if m in sys.modules))")
    assert python_prints(code) == ["[]"]


def test_botocore_uses_the_same_ssl_context_class_without_pyopenssl():
    code = ("import modelreg.storage.s3.backend, botocore.httpsession, urllib3.util.ssl_\n"
            "print(botocore.httpsession.SSLContext is urllib3.util.ssl_.SSLContext)")
    assert python_prints(code) == ["True"]


def test_a_pull_imports_no_filelock(settings, file_remote, tmp_path):
    """Blob locks are `flock`s of our own (`modelreg.local.lockfile`), not the filelock package."""
    from tests.helpers import make_bundle, register_remote, run_cli

    make_bundle(settings, "v1", {"a.bin": b"a" * 1000}, tmp_path)
    target = register_remote(settings, file_remote)
    run_cli("push", "v1", "--remote", target)
    shutil.rmtree(settings.cache_dir)
    assert "filelock" not in imported_by("pull", "v1", "--remote", target, "-q")
    assert (settings.cache_dir / "locks").is_dir()
    assert "filelock" not in imported_by("pull", "v1", "--remote", target, "-q")
    assert "filelock" not in imported_by("--offline", "pull", "v1", "--remote", target, "-q")


def test_an_error_outside_a_terminal_is_printed_without_rich(settings):
    out = subprocess.run([sys.executable, "-X", "importtime", "-m", "modelreg", "--offline", "pull", "v77"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 1
    assert "Error: emotion:v77 is not in the local cache" in out.stderr
    assert not any(line.rsplit("|", 1)[-1].strip().startswith("rich") for line in out.stderr.splitlines()
                   if line.startswith("import time:"))


def test_pulling_a_tag_imports_no_jsonschema(settings, file_remote, tmp_path):
    from tests.helpers import make_bundle, register_remote, run_cli

    make_bundle(settings, "v1", {"a.bin": b"a" * 1000}, tmp_path)
    target = register_remote(settings, file_remote)
    run_cli("push", "v1", "--remote", target)
    run_cli("tag", "v1", "production", "--remote", target)
    shutil.rmtree(settings.cache_dir)
    assert "jsonschema" not in imported_by("pull", "production", "--remote", target, "-q")
    assert "jsonschema" not in imported_by("tag-history", "production", "--remote", target)


def test_match_exec_in_ssh_config_still_works(ssh_home):
    (ssh_home / ".ssh").mkdir()
    (ssh_home / ".ssh" / "config").write_text("Match exec true\n    Port 2222\n")
    code = ("from modelreg.config import RemoteSpec\n"
            "from modelreg.storage.ssh.connect import ConnectOptions, resolve_target\n"
            "spec = RemoteSpec(url='ssh://user@example.invalid/x')\n"
            "print(resolve_target(spec, ConnectOptions.from_spec(spec)).port)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         stdin=subprocess.DEVNULL)
    assert out.stdout.strip() == "2222"


HEAVY = ("boto3", "botocore", "paramiko", "pydantic", "tensorflow", "keras", "jsonschema")


def imported_by(*args: str) -> set[str]:
    """Top-level packages a whole `modelreg ARGS` process imported (from `python -X importtime`)."""
    out = subprocess.run([sys.executable, "-X", "importtime", "-m", "modelreg", *args],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return {line.rsplit("|", 1)[-1].strip().split(".")[0]
            for line in out.stderr.splitlines() if line.startswith("import time:")}


MODULES_PROBE = """
import sys
from modelreg.cli.app import main
try:
    main(sys.argv[1:])
finally:
    print("MODULES:" + ",".join(sorted(m for m in sys.modules if m.startswith("modelreg"))))
"""


def modelreg_modules_imported_by(*args: str) -> set[str]:
    """The `modelreg.*` modules loaded by the end of `modelreg ARGS` (from `sys.modules`: modules
    loaded with `importlib.import_module` are missing from `-X importtime`)."""
    out = subprocess.run([sys.executable, "-c", MODULES_PROBE, *args], capture_output=True, text=True,
                         timeout=120)
    line = [text for text in out.stdout.splitlines() if text.startswith("MODULES:")]
    assert out.returncode == 0 and line, out.stdout[-2000:] + out.stderr[-2000:]
    return set(line[-1].removeprefix("MODULES:").split(","))


def test_help_imports_nothing_heavy():
    assert imported_by("--help") & {*HEAVY, "rich", "cryptography", "numpy", "h5py", "filelock"} == set()


def test_help_imports_no_command_module_and_no_config():
    modules = modelreg_modules_imported_by("--help")
    assert {m for m in modules if m.endswith("_commands")} == set()
    assert "modelreg.config" not in modules and "modelreg.transfer" not in modules


def test_a_command_imports_only_its_own_command_module(isolated_home):
    modules = modelreg_modules_imported_by("paths")
    assert {m for m in modules if m.endswith("_commands")} == {"modelreg.cli.remote_commands"}


def test_a_pull_imports_only_the_backend_it_uses(settings, remote, target, tmp_path):
    from tests.helpers import make_bundle, run_cli

    make_bundle(settings, "v1", {"a.bin": b"a" * 1000}, tmp_path)
    run_cli("push", "v1", "--remote", target)
    shutil.rmtree(settings.cache_dir)  # so the pull below downloads through the backend
    imported = imported_by("pull", "v1", "--remote", target, "-q")
    others = {"file": {"boto3", "botocore", "paramiko"}, "s3": {"paramiko", "boto3", "s3transfer"},
              "ssh": {"boto3", "botocore"}}[remote.url.split(":", 1)[0]]
    assert imported & (others | {"pydantic", "tensorflow", "keras"}) == set()
    assert ({"s3": "botocore", "ssh": "paramiko"}.get(remote.url.split(":", 1)[0], "modelreg")) in imported
