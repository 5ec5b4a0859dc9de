"""`modelreg yank|unyank|tag-history|rollback`: withdrawing versions and moving tags back."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from modelreg.cli.context import AcceptHostKey, AllowYanked, JsonOption, RemoteOption, ref_of, resolve
from modelreg.cli.output import print_json, stderr, stdout

SignOption = typer.Option(None, "--sign", help="Sign the record with this ECDSA private key (see keygen); "
                          "default: signing_key in the config.")


def _signing(settings, sign: Optional[Path]) -> tuple[Optional[Path], Optional[bytes]]:
    from modelreg.cli.context import key_passphrase

    key = sign or (Path(settings.signing_key).expanduser() if settings.signing_key else None)
    return key, key_passphrase(settings, key)


def _warn(notes: list[str]) -> None:
    for note in notes:
        stderr.print(f"Warning: {note}", highlight=False, markup=False, soft_wrap=True)


def yank(ref: str = typer.Argument(..., help="[NAME:]VERSION (a tag yanks the version it points at)"),
         reason: str = typer.Option(..., "--reason", help="Why it is withdrawn; shown to everyone refused."),
         sign: Optional[Path] = SignOption,
         remote: Optional[str] = RemoteOption, accept_new_host_key: bool = AcceptHostKey,
         json_output: bool = JsonOption) -> None:
    """Withdraw a version: pulls and loads refuse it (with REASON) unless --allow-yanked."""
    from modelreg.yanking import yank as yank_version

    settings, spec = resolve(remote, accept_new_host_key)
    key, passphrase = _signing(settings, sign)
    found = yank_version(settings, ref_of(settings, ref), spec, reason, sign_key=key, passphrase=passphrase)
    if json_output:
        print_json({"remote": spec.label, "yanked": found.to_dict()})
        return
    stdout.print(f"Yanked {found.ref} on {spec.label}: {found.reason} (by {found.yanked_by} at "
                 f"{found.yanked_at}; record {found.signature}). Undo with 'modelreg unyank {found.ref}'.",
                 highlight=False, markup=False)


def unyank(ref: str = typer.Argument(..., help="[NAME:]VERSION"),
           remote: Optional[str] = RemoteOption, accept_new_host_key: bool = AcceptHostKey,
           json_output: bool = JsonOption) -> None:
    """Make a yanked version usable again (removes its yank record)."""
    from modelreg.yanking import unyank as unyank_version

    settings, spec = resolve(remote, accept_new_host_key)
    removed = unyank_version(settings, ref_of(settings, ref), spec)
    if json_output:
        print_json({"remote": spec.label, "unyanked": removed.to_dict()})
        return
    stdout.print(f"Unyanked {removed.ref} on {spec.label} (it was yanked by {removed.yanked_by} at "
                 f"{removed.yanked_at}: {removed.reason}). Machines that cached it see this within "
                 f"yank_check_interval.", highlight=False, markup=False)


def tag_history(tag: str = typer.Argument(..., help="[NAME:]TAG, e.g. production"),
                remote: Optional[str] = RemoteOption, accept_new_host_key: bool = AcceptHostKey,
                json_output: bool = JsonOption) -> None:
    """List every recorded move of a tag, newest first."""
    from modelreg.tag_moves import tag_history as read_tag_history

    settings, spec = resolve(remote, accept_new_host_key)
    report = read_tag_history(settings, ref_of(settings, tag), spec)
    moves, broken = report.history.moves, report.history.broken
    if json_output:
        print_json({"remote": spec.label, "current": report.current.__dict__ if report.current else None,
                    "moves": [{**move.to_dict(), "applied": move.record_id not in report.not_applied}
                              for move in moves],
                    "broken": [{"key": key, "error": error} for key, error in broken]})
        return
    current = report.current
    stdout.print(f"{ref_of(settings, tag)} on {spec.label}: now "
                 f"{f'{current.version} (manifest {current.manifest_sha256[:12]})' if current else 'absent'}",
                 highlight=False, markup=False)
    from rich.table import Table

    table = Table("when", "action", "from", "to", "who", "signature", "note")
    for move in moves:
        before = f"{move.previous.version} ({move.previous.manifest_sha256[:12]})" if move.previous else "-"
        table.add_row(move.when, move.action, before, f"{move.new.version} ({move.new.manifest_sha256[:12]})",
                      move.who, move.signature, "not applied" if move.record_id in report.not_applied else "")
    stdout.print(table)
    _warn([f"skipped {key}: {error}" for key, error in broken])


def rollback(tag: str = typer.Argument(..., help="[NAME:]TAG to move back, e.g. production"),
             sign: Optional[Path] = SignOption, allow_yanked: bool = AllowYanked,
             remote: Optional[str] = RemoteOption, accept_new_host_key: bool = AcceptHostKey,
             json_output: bool = JsonOption) -> None:
    """Move TAG back to the version it pointed at before (recorded; a second rollback undoes it)."""
    from modelreg.tag_moves import rollback as rollback_tag

    settings, spec = resolve(remote, accept_new_host_key)
    key, passphrase = _signing(settings, sign)
    result = rollback_tag(settings, ref_of(settings, tag), spec, sign_key=key, passphrase=passphrase,
                          allow_yanked=allow_yanked)
    if json_output:
        print_json({"remote": spec.label, "tag": result.tag.__dict__,
                    "move": result.move.to_dict() if result.move else None, "notes": result.notes})
        return
    _warn(result.notes)
    move = result.move
    previous = move.previous.version if move and move.previous else "?"
    stdout.print(f"Rolled back {result.tag.name}:{result.tag.tag} from {previous} to {result.tag.version} "
                 f"(manifest {result.tag.manifest_sha256[:12]}) on {spec.label}; recorded"
                 f"{' and signed' if key else ''} as {move.record_id if move else 'nothing (no change)'}.",
                 highlight=False, markup=False)
