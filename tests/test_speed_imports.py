"""The SSH backend starts without paramiko's optional `invoke`, which `Match exec` still gets."""

from __future__ import annotations

import subprocess
import sys


def test_ssh_backend_import_does_not_import_invoke():
    code = "import sys, modelreg.storage.ssh.backend; print('invoke' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


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
