"""`modelreg export`, `import`, `copy` and `mirror`: moving versions between registries and archives."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from modelreg.cli.context import (
    AcceptHostKey,
    AllowYanked,
    JsonOption,
    RemoteOption,
    current_settings,
    ref_of,
    resolve,
)
from modelreg.cli.errors import State
from modelreg.cli.output import human_size, print_json, progress_reporter, stdout

FromOption = typer.Option(..., "--from", help="Source remote name or URL.")
ToOption = typer.Option(..., "--to", help="Destination remote name or URL.")


def export(refs: list[str] = typer.Argument(..., help="Versions or tags, e.g. v9 emotion:production"),
           output: Path = typer.Option(..., "--output", "-o", help="The tar archive to write."),
           tags: bool = typer.Option(False, "--tags", help="Include the tags given as REFs and (online) "
                                     "every tag on the remote pointing at an exported version."),
           allow_yanked: bool = AllowYanked,
           remote: Optional[str] = RemoteOption, accept_new_host_key: bool = AcceptHostKey,
           json_output: bool = JsonOption) -> None:
    """Write versions from the cache (pulling what is missing) into one tar laid out as a registry."""
    from modelreg.moving.archive import export as export_versions

    settings, spec = resolve(remote, accept_new_host_key)
    with progress_reporter(State.quiet or json_output) as reporter:
        result = export_versions(settings, [ref_of(settings, ref) for ref in refs], output, spec,
                                 tags=tags, reporter=reporter, allow_yanked=allow_yanked)
    if json_output:
        print_json(result.to_json())
        return
    tag_text = f", tags {', '.join(f'{t.name}:{t.tag}' for t in result.tags)}" if result.tags else ""
    stdout.line(f"Exported {', '.join(str(v.ref) for v in result.versions)} to {result.path}: "
                f"{result.blobs} blob(s) ({human_size(result.blob_bytes)}), each verified while written"
                f"{tag_text}. 'tar -xf {result.path.name}' gives a file:// registry.")


def import_archive(archive: Path = typer.Argument(..., help="A tar written by 'modelreg export'"),
                   remote: Optional[str] = typer.Option(None, "--remote", "-r", help="Import into this "
                                                        "remote (name or URL) instead of the local cache."),
                   accept_new_host_key: bool = AcceptHostKey, json_output: bool = JsonOption) -> None:
    """Verify every blob and signature of an archive, then add its versions to the cache (or a remote)."""
    from modelreg.moving.unpack import import_archive as import_versions

    if remote is None:
        settings, spec = current_settings(), None
    else:
        settings, spec = resolve(remote, accept_new_host_key)
    with progress_reporter(State.quiet or json_output) as reporter:
        result = import_versions(settings, archive, spec, reporter=reporter)
        for note in result.notes:
            reporter.message(f"Warning: {note}")
    if json_output:
        print_json(result.to_json())
        return
    tag_text = f", tags {', '.join(f'{t.name}:{t.tag}' for t in result.tags)}" if result.tags else ""
    versions = ", ".join(f"{v.ref} ({v.status.describe()})" for v in result.versions)
    unreferenced = f" ({result.unreferenced} named by no manifest: left out)" if result.unreferenced else ""
    stdout.line(f"Imported {versions} from {archive} into {result.dest}: {result.blobs} blob(s) "
                f"verified{unreferenced}{tag_text}.")


def copy(ref: str = typer.Argument(..., help="[NAME:]VERSION or a tag on the source"),
         from_remote: str = FromOption, to_remote: str = ToOption,
         tags: bool = typer.Option(False, "--tags", help="Also set the source's tags that point at "
                                   "this version."),
         accept_new_host_key: bool = AcceptHostKey, json_output: bool = JsonOption) -> None:
    """Copy one version between two registries, verified, without putting it in the cache."""
    from modelreg.moving.copy import copy as copy_version

    settings, source = resolve(from_remote, accept_new_host_key)
    _settings, dest = resolve(to_remote, accept_new_host_key)
    with progress_reporter(State.quiet or json_output) as reporter:
        result = copy_version(settings, ref_of(settings, ref), source, dest, tags=tags, reporter=reporter)
    if json_output:
        print_json(result.to_json())
        return
    stdout.line(_copy_line(result))


def _copy_line(result) -> str:
    sent = sum(e.size for e in result.copied)
    state = " (its manifest was already there)" if result.already_there else ""
    tag_text = f"; tags {', '.join(f'{t.name}:{t.tag}' for t in result.tags)}" if result.tags else ""
    yank_text = "; YANKED on the source: its yank record was copied too" if result.yank_copied else ""
    return (f"Copied {result.manifest.ref} from {result.source} to {result.dest}{state}: "
            f"{len(result.copied)} blob(s) streamed through verification ({human_size(sent)}), "
            f"{len(result.present)} already there; manifest {result.manifest.digest[:12]}; "
            f"{result.signature.describe() if result.signature else 'unsigned'}{tag_text}{yank_text}.")


def mirror(from_remote: str = FromOption, to_remote: str = ToOption,
           dry_run: bool = typer.Option(False, "--dry-run", help="Only list the versions that would be copied."),
           tags: bool = typer.Option(False, "--tags", help="Also set the source's tags on the destination."),
           accept_new_host_key: bool = AcceptHostKey, json_output: bool = JsonOption) -> None:
    """Copy every version the destination lacks (each verified, manifest last)."""
    from modelreg.moving.mirror import mirror as mirror_registry

    settings, source = resolve(from_remote, accept_new_host_key)
    _settings, dest = resolve(to_remote, accept_new_host_key)
    with progress_reporter(State.quiet or json_output) as reporter:
        result = mirror_registry(settings, source, dest, dry_run=dry_run, tags=tags, reporter=reporter)
    if json_output:
        print_json(result.to_json())
        return
    if dry_run:
        for ref in result.missing:
            stdout.line(f"would copy {ref}")
        stdout.line(f"{len(result.missing)} version(s) on {result.source} missing from {result.dest}; "
                    f"nothing was copied (--dry-run).")
        return
    for copied in result.copied:
        stdout.line(_copy_line(copied))
    tag_text = f" and {len(result.tags)} tag(s)" if tags else ""
    stdout.line(f"Mirrored {result.source} to {result.dest}: {len(result.copied)} version(s){tag_text} "
                f"copied.")
