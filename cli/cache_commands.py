"""`modelreg cache list` and `modelreg cache prune`: what the local cache holds, and freeing space."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import Any, Optional

import typer

from modelreg.cli.context import JsonOption, current_settings, ref_of
from modelreg.cli.output import human_size, print_json, stdout
from modelreg.errors import LocalIOError

cache_app = typer.Typer(help="The local cache: what it holds, and freeing space (never pinned or in-use "
                             "versions).", no_args_is_help=True, rich_markup_mode=None)


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@cache_app.command("list")
def cache_list(json_output: bool = JsonOption) -> None:
    """Each cached version: size, last use, whether this workspace pins it; shared blobs counted once."""
    from modelreg.local.inventory import take_inventory

    settings = current_settings()
    inventory = take_inventory(settings)
    rows: list[dict[str, Any]] = [
        {"name": v.ref.name, "version": v.ref.version, "bytes": v.size, "shared_bytes": inventory.shared_size(v),
         "snapshot_bytes": v.snapshot_size, "last_used": iso(v.last_used), "last_used_from": v.last_used_from,
         "pinned": v.pinned, "in_use": list(v.held_by)} for v in inventory.versions]
    leftover_bytes = sum(item.size for item in inventory.leftovers)
    if json_output:
        print_json({"cache": str(inventory.root), "workspace": str(inventory.workspace), "versions": rows,
                    "total_bytes": inventory.total, "blob_bytes": sum(inventory.blob_sizes.values()),
                    "blobs": len(inventory.blob_sizes), "snapshot_bytes": inventory.snapshot_bytes,
                    "leftovers": len(inventory.leftovers), "leftover_bytes": leftover_bytes,
                    "max_size": settings.cache_max_size})
        return
    if rows:
        from rich.table import Table

        table = Table("model", "version", "size", "shared", "last used", "pinned", "in use", title=str(inventory.root))
        for row in rows:
            used = row["last_used"] + (" (manifest mtime)" if row["last_used_from"] != "record" else "")
            table.add_row(row["name"], row["version"], human_size(row["bytes"]), human_size(row["shared_bytes"]),
                          used, "yes" if row["pinned"] else "", "; ".join(row["in_use"]))
        stdout.print(table)
    else:
        stdout.line(f"No version is cached in {inventory.root}.")
    limit = f"; cache_max_size {human_size(settings.cache_max_size)}" if settings.cache_max_size else ""
    stdout.line(f"Total {human_size(inventory.total)}: {len(inventory.blob_sizes)} blob(s), each counted once "
                f"however many versions share it ({human_size(sum(inventory.blob_sizes.values()))}), snapshots "
                f"{human_size(inventory.snapshot_bytes)}; {len(inventory.leftovers)} leftover(s) prune would "
                f"remove ({human_size(leftover_bytes)}){limit}. Pins are read from {inventory.workspace}.")


@cache_app.command("prune")
def cache_prune(max_size: Optional[str] = typer.Option(
                    None, "--max-size", metavar="SIZE", help="Evict least recently used versions until the "
                    "cache holds at most SIZE (500MB, 10G, 1.5GiB); default: cache_max_size from the config."),
                older_than: Optional[str] = typer.Option(
                    None, "--older-than", metavar="DURATION", help="Evict versions last used more than "
                    "DURATION ago (90m, 12h, 30d)."),
                keep: list[str] = typer.Option([], "--keep", metavar="REF", help="Never evict this version "
                                               "(or the version a tag last pulled named); repeatable."),
                dry_run: bool = typer.Option(False, "--dry-run", help="Print the plan; remove nothing."),
                json_output: bool = JsonOption) -> None:
    """Remove cached versions and leftovers; never a pinned or in-use version, never a blob still named."""
    from modelreg.local.prune import prune_cache
    from modelreg.units import parse_duration, parse_size

    settings = current_settings()
    result = prune_cache(settings, max_size=None if max_size is None else parse_size(max_size, "--max-size"),
                         older_than=None if older_than is None else parse_duration(older_than, "--older-than"),
                         keep=tuple(ref_of(settings, ref) for ref in keep), dry_run=dry_run)
    plan = result.plan
    evictions = plan.evictions if dry_run else result.removed
    leftovers = plan.leftovers if dry_run else result.removed_leftovers
    if json_output:
        print_json({"dry_run": dry_run, "cache": str(plan.inventory.root),
                    "removed": [{"name": e.version.ref.name, "version": e.version.ref.version, "bytes": e.frees,
                                 "last_used": iso(e.version.last_used), "reason": e.reason} for e in evictions],
                    "leftovers": [{"path": str(item.path), "kind": item.kind, "bytes": item.size}
                                  for item in leftovers],
                    "kept": [{"name": ref.name, "version": ref.version, "reason": why}
                             for ref, why in sorted(plan.protected.items(), key=str)],
                    "freed_bytes": result.freed, "planned_bytes": plan.frees, "total_before": plan.inventory.total,
                    "total_after": plan.total_after if dry_run else plan.inventory.total - result.freed,
                    "max_size": plan.max_size, "notes": plan.notes, "failures": result.failures})
    else:
        render_prune(result, dry_run, evictions, leftovers)
    if result.failures:
        raise LocalIOError(f"{len(result.failures)} cache entr{'y' if len(result.failures) == 1 else 'ies'} could "
                           f"not be removed ({'; '.join(result.failures[:5])}); everything else planned was. "
                           f"Check the permissions in {plan.inventory.root} and run 'modelreg cache prune' again.")


def render_prune(result, dry_run: bool, evictions, leftovers) -> None:
    plan = result.plan
    verb = "WOULD REMOVE" if dry_run else "REMOVED"
    for eviction in evictions:
        stdout.line(f"{verb}  {eviction.version.ref}  {human_size(eviction.frees)}  ({eviction.reason})")
    if leftovers:
        kinds = ", ".join(f"{count} {kind}" for kind, count in sorted(Counter(item.kind for item in leftovers).items()))
        stdout.line(f"{verb}  {len(leftovers)} leftover(s): {kinds}  "
                    f"{human_size(sum(item.size for item in leftovers))}")
    for ref, why in sorted(plan.protected.items(), key=str):
        stdout.line(f"KEPT  {ref}  ({why})")
    for note in plan.notes:
        stdout.line(f"Note: {note}")
    if dry_run:
        stdout.line(f"Would free {human_size(plan.frees)} ({human_size(plan.inventory.total)} -> "
                    f"{human_size(plan.total_after)}); nothing was removed (--dry-run).")
    else:
        stdout.line(f"Freed {human_size(result.freed)}: {len(result.removed)} version(s) and "
                    f"{len(result.removed_leftovers)} leftover(s) removed; the cache now holds "
                    f"{human_size(plan.inventory.total - result.freed)}.")
