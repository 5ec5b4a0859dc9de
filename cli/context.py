"""Options shared by several commands, and the settings/remote resolution they all start with."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path
from typing import Optional

import typer

from modelreg.cli.errors import State
from modelreg.config import RemoteSpec, Settings
from modelreg.refs import Ref, parse_ref

RemoteOption = typer.Option(None, "--remote", "-r", help="Remote name or URL (default: "
                            "$MODELREG_REMOTE, the configured default, else the local registry).")
AcceptHostKey = typer.Option(False, "--accept-new-host-key",
                             help="SSH only: trust and record an unknown host key (like OpenSSH accept-new).")
JsonOption = typer.Option(False, "--json", help="Print machine-readable JSON.")
AllowYanked = typer.Option(False, "--allow-yanked", help="Use a version even though its publisher "
                           "withdrew it (yanked); the reason is still printed.")


def current_settings() -> Settings:
    """Settings for this command: the global options applied over environment, config and defaults."""
    return Settings.resolve(workspace=Path(State.workspace) if State.workspace else None,
                            stall_timeout=State.stall_timeout, offline=State.offline or None)


def resolve(remote: Optional[str], accept_new_host_key: bool = False) -> tuple[Settings, RemoteSpec]:
    """Settings and the chosen remote; on a terminal, SSH key passphrases are asked for when needed."""
    settings = current_settings()
    spec = settings.remote(remote, accept_new_host_key=accept_new_host_key or None)
    if spec.url.startswith("ssh://") and "passphrase" not in spec.options and sys.stdin.isatty():
        spec = replace(spec, options={**spec.options, "passphrase": ask_ssh_passphrase})
    return settings, spec


def ask_ssh_passphrase(key_path) -> str:
    return typer.prompt(f"Passphrase for SSH key {key_path}", hide_input=True, default="",
                        show_default=False)


def ref_of(settings: Settings, text: str) -> Ref:
    return parse_ref(text, settings.default_model)
