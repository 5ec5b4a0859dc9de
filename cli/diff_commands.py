"""`modelreg diff A B`: two refs, or a ref and a directory, side by side."""

from __future__ import annotations

import json
from typing import Optional

import typer

from modelreg.cli.context import AcceptHostKey, JsonOption, RemoteOption, resolve
from modelreg.cli.output import human_size, print_columns, print_json, stdout

DIFFERENT = 1
"""Exit code when the bundles differ, as diff(1) and `git diff --exit-code` (0: identical)."""


def diff(a: str = typer.Argument(..., help="[NAME:]VERSION, a tag, or a directory"),
         b: str = typer.Argument(..., help="[NAME:]VERSION, a tag, or a directory"),
         remote: Optional[str] = RemoteOption, accept_new_host_key: bool = AcceptHostKey,
         json_output: bool = JsonOption) -> None:
    """Show what differs from A to B: files, labels, model, hyper-parameters, metrics, provenance.

    Exit code 0 when identical, 1 when they differ (like diff(1)); errors keep their own
    codes and print no diff. Cached versions are compared offline.
    """
    from modelreg.diff_sources import diff_targets

    settings, spec = resolve(remote, accept_new_host_key)
    result = diff_targets(settings, a, b, spec)
    if json_output:
        print_json(result.to_dict())
    else:
        render(result)
    if not result.identical:
        raise typer.Exit(DIFFERENT)


def short(value: object, width: int = 40) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return text if len(text) <= width else text[:width - 3] + "..."


def render(result) -> None:
    for mark, side in (("A", result.a), ("B", result.b)):
        digest = f"  manifest {side.digest[:12]}" if side.digest else "  (no manifest.json)"
        created = f"  created {side.manifest.created}" if side.manifest else ""
        stdout.line(f"{mark}: {side.label}{digest}{created}")
        for note in side.notes:
            stdout.line(f"   note: {note}")
    counts = {status: sum(1 for c in result.files if c.status == status) for status in ("changed", "added", "removed")}
    stdout.line(f"files: {counts['changed']} changed, {counts['added']} added, {counts['removed']} removed, "
                f"{result.unchanged_files} unchanged")
    marks = {"changed": "~", "added": "+", "removed": "-"}
    for change in result.files:
        def side(value):
            return "-" if value is None else f"{value[0][:12]} {human_size(value[1])}"
        stdout.line(f"  {marks[change.status]} {change.path}  {side(change.a)} -> {side(change.b)}")
    if result.labels is not None and result.labels.changed:
        labels = result.labels
        parts = [f"added {', '.join(labels.added)}" if labels.added else "",
                 f"removed {', '.join(labels.removed)}" if labels.removed else "",
                 "reordered" if labels.reordered else ""]
        stdout.line(f"labels: {'; '.join(p for p in parts if p)}")
        stdout.line(f"  A: {', '.join(labels.a)}\n  B: {', '.join(labels.b)}")
    elif result.labels is not None:
        stdout.line(f"labels: same ({len(result.labels.a)})")
    for name, rows in result.sections.items():
        every_key = name in ("hyperparameters", "metrics")  # side by side; elsewhere only changes
        shown = [row for row in rows if every_key or row.changed]
        changed = sum(row.changed for row in rows)
        title = f"{name}: {changed} of {len(rows)} differ"
        if not shown:
            stdout.line(f"{name}: same ({len(rows)} key(s))")
            continue
        header = ["", "key", "A", "B"] + (["B - A"] if name == "metrics" else [])
        print_columns(title, header, [["*" if row.changed else "", row.key,
                                       short(row.a) if row.in_a else "(absent)",
                                       short(row.b) if row.in_b else "(absent)"]
                                      + ([f"{row.delta:+.4g}" if row.delta else ""] if name == "metrics" else [])
                                      for row in shown])
    if result.not_comparable:
        stdout.line(f"not comparable: {', '.join(result.not_comparable)} (a directory without "
                    f"manifest.json has only its files)")
    if result.identical:
        what = ("the same files" if result.not_comparable else
                "the same files, labels, model, hyper-parameters, metrics and provenance")
        stdout.line(f"identical: {result.a.label} and {result.b.label} have {what}")
