"""Options shared by several commands, and the settings/remote resolution they all start with.

`modelreg.config` is imported by the functions that resolve settings, not here: the
top-level `--help` imports this module (for the options of push and pull) and no config.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer

from modelreg.cli.errors import State

if TYPE_CHECKING:
    from modelreg.config import RemoteSpec, Settings
    from modelreg.refs import Ref

RemoteOption = typer.Option(None, "--remote", "-r", help="Remote name or URL (default: "
                            "$MODELREG_REMOTE, the configured default, else the local registry).")
AcceptHostKey = typer.Option(False, "--accept-new-host-key",
                             help="SSH only: trust and record an unknown host key (like OpenSSH accept-new).")
JsonOption = typer.Option(False, "--json", help="Print machine-readable JSON.")
AllowYanked = typer.Option(False, "--allow-yanked", help="Use a version even though its publisher "
                           "withdrew it (yanked); the reason is still printed.")


def current_settings() -> Settings:
    """Settings for this command: the global options applied over environment, config and defaults."""
    from modelreg.config import Settings

    return Settings.resolve(workspace=Path(State.workspace) if State.workspace else None,
                            stall_timeout=State.stall_timeout, offline=State.offline or None)


def resolve(remote: Optional[str], accept_new_host_key: bool = False) -> tuple[Settings, RemoteSpec]:
    """Settings and the chosen remote; on a terminal, SSH key passphrases are asked for when needed."""
    from dataclasses import replace

    settings = current_settings()
    spec = settings.remote(remote, accept_new_host_key=accept_new_host_key or None)
    if spec.url.startswith("ssh://") and "passphrase" not in spec.options and sys.stdin.isatty():
        spec = replace(spec, options={**spec.options, "passphrase": ask_ssh_passphrase})
    return settings, spec


def ask_ssh_passphrase(key_path) -> str:
    return typer.prompt(f"Passphrase for SSH key {key_path}", hide_input=True, default="",
                        show_default=False)


def ref_of(settings: Settings, text: str) -> Ref:
    from modelreg.refs import parse_ref

    return parse_ref(text, settings.default_model)


def key_passphrase(settings: Settings, key: Optional[Path], ask: bool = False,
                   confirm: bool = False) -> Optional[bytes]:
    """MODELREG_KEY_PASSPHRASE, else a prompt on a terminal when the key is encrypted (or `ask`)."""
    import sys

    if key is None:
        return None
    if settings.key_passphrase:
        return settings.key_passphrase.encode()
    encrypted = ask or (key.is_file() and b"ENCRYPTED" in key.read_bytes()[:200])
    if encrypted and sys.stdin.isatty():
        return typer.prompt(f"Passphrase for {key}", hide_input=True,
                            confirmation_prompt=confirm).encode()
    return None
