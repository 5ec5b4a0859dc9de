"""`modelreg delete` and `modelreg gc`: freeing space on a remote."""

from __future__ import annotations

from typing import Optional

import typer

from modelreg.cli.context import AcceptHostKey, JsonOption, RemoteOption, ref_of, resolve
from modelreg.cli.output import human_size, print_json, stderr, stdout


def delete(ref: str = typer.Argument(..., help="[NAME:]VERSION to delete (not a tag)"),
           force: bool = typer.Option(False, "--force", help="Delete even when tags point at the version "
                                      "(they are left dangling until moved)."),
           remote: Optional[str] = RemoteOption, accept_new_host_key: bool = AcceptHostKey,
           json_output: bool = JsonOption) -> None:
    """Delete one version from a remote: its manifest first (it disappears at once), then the rest
    of its directory. Its blobs stay until 'modelreg gc' finds them unreferenced."""
    from modelreg.remote.delete import delete_version

    settings, spec = resolve(remote, accept_new_host_key)
    result = delete_version(settings, ref_of(settings, ref), spec, force=force)
    if json_output:
        print_json(result.to_dict())
        return
    for key in result.deleted:
        stdout.line(f"deleted {key}")
    what = (f"manifest {result.manifest_sha256[:12]}" if result.manifest_sha256
            else "its manifest was already gone: finished an earlier delete")
    stdout.line(f"Deleted {result.ref} from {result.remote} ({what}); its blobs stay until 'modelreg gc' "
                f"removes the ones no other version uses.")
    if result.dangling_tags:
        stderr.line(f"Warning: tag(s) {', '.join(result.dangling_tags)} pointed at {result.ref} and now "
                    f"dangle: move them with 'modelreg tag VERSION TAG'.")


def gc(dry_run: bool = typer.Option(False, "--dry-run", help="Print what would be deleted; delete nothing."),
       grace: str = typer.Option("24h", "--grace", metavar="DURATION", help="Keep unreferenced blobs and "
                                 "unfinished uploads younger than this (e.g. 30m, 24h, 7d); it must exceed "
                                 "the longest push."),
       allow_broken: bool = typer.Option(False, "--allow-broken", help="Sweep even when some manifests "
                                         "cannot be read (digests in their text are still kept)."),
       remote: Optional[str] = RemoteOption, accept_new_host_key: bool = AcceptHostKey,
       json_output: bool = JsonOption) -> None:
    """Delete the blobs no manifest on the remote references (older than --grace), and abandoned
    uploads (temp files, incomplete multipart uploads); prints each and the bytes freed."""
    from modelreg.remote.gc import collect_garbage
    from modelreg.units import format_duration, parse_duration

    settings, spec = resolve(remote, accept_new_host_key)
    result = collect_garbage(settings, spec, grace=parse_duration(grace, "--grace"), dry_run=dry_run,
                             allow_broken=allow_broken)
    if json_output:
        print_json(result.to_dict())
        return
    verb = "would delete" if dry_run else "deleted"
    for removal in result.removed:
        size = human_size(removal.size) if removal.size is not None else "size unknown"
        label = "" if removal.kind == "blob" else f" (unfinished upload {removal.upload_id})"
        stdout.line(f"{verb} {removal.key}{label}  {size}")
    for key in result.unknown:
        stderr.line(f"Warning: left {key} alone: not a blob key (blobs/sha256/<2 hex>/<64 hex>).")
    for key, error in sorted(result.broken.items()):
        stderr.line(f"Warning: could not read {key} ({error}); digests in its text were kept.")
    for key in result.damaged:
        stderr.line(f"Warning: {key} was published while gc ran and references a blob it deleted: "
                    f"repair it with 'modelreg push NAME:VERSION --repair' from a machine that has it cached.")
    blobs = sum(1 for removal in result.removed if removal.kind == "blob")
    would = "would be " if dry_run else ""
    stdout.line(f"{'Dry run, nothing deleted: ' if dry_run else ''}{blobs} unreferenced blob(s) and "
                f"{len(result.removed) - blobs} abandoned upload(s) {would}deleted on {result.remote}, "
                f"{human_size(result.bytes_freed)} {would}freed; "
                f"{result.referenced} blob(s) referenced by {result.manifests} manifest(s) kept, "
                f"{len(result.young)} unreferenced blob(s) and {result.uploads_in_progress} upload(s) younger "
                f"than {format_duration(result.grace)} kept.")
