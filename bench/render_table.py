"""Render bench results as the README's benchmark tables: bench_cli's (`bench/out/cli-ssh.json`,
`cli-s3.json`) and, when there is one, bench_list's (`bench/out/list-s3.json`).

    .venv/bin/python -m bench.render_table [--json FILE ...] [--list-json FILE] [--readme README.md]

Prints the markdown; with --readme, replaces the text between the
`<!-- bench-table:start -->` and `<!-- bench-table:end -->` markers in that file. The list
table follows a `<!-- bench-list-table -->` line inside that block; when no bench_cli file
exists (only bench_list was run), the block's push/pull part is kept as it was.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

START, END = "<!-- bench-table:start -->", "<!-- bench-table:end -->"
LIST_MARK = "<!-- bench-list-table -->"
GOALS = {
    ("ssh", "pull", "bundle"): ">= 0.8x", ("ssh", "push", "bundle"): ">= 0.8x",
    ("ssh", "pull", "big"): ">= 1.0x", ("ssh", "push", "big"): ">= 1.0x",
    ("s3", "pull", "bundle"): ">= 1.2x", ("s3", "push", "bundle"): ">= 1.2x",
    ("s3", "pull", "big"): ">= 1.0x", ("s3", "push", "big"): ">= 1.0x",
    ("ssh", "cached pull", "bundle"): "< 0.35 s", ("s3", "cached pull", "bundle"): "< 0.35 s",
    ("ssh", "re-push", "bundle"): "< 0.35 s", ("s3", "re-push", "bundle"): "< 0.35 s",
    ("ssh", "offline pull", "bundle"): "< 0.2 s", ("s3", "offline pull", "bundle"): "< 0.2 s",
    ("-", "--help", ""): "< 0.15 s",
    ("ssh", "push, memory", "huge"): "RSS as for 504 MB", ("ssh", "pull, memory", "huge"): "RSS as for 504 MB",
    ("s3", "push, memory", "huge"): "RSS as for 504 MB", ("s3", "pull, memory", "huge"): "RSS as for 504 MB",
}
BACKEND = {"ssh": "SSH", "s3": "S3", "-": ""}


def seconds(summary: dict) -> str:
    return f"{summary['median_s']:.2f} s ({summary['min_s']:.2f}–{summary['max_s']:.2f})"


def size(row: dict) -> str:
    return f"{row['bytes'] / 1e6:.0f} MB" if row["bytes"] else ""


def describe_run(report: dict, backends: str) -> str:
    before, after = report["machine_before"], report["machine_after"]
    installed = {"wheel": ", modelreg installed from its wheel",
                 "editable checkout": ", modelreg run from the editable checkout"}.get(before.get("modelreg", ""), "")
    return (f"{backends}: run of {before['date_utc'][:16]}Z at commit {before['commit']}{installed}, "
            f"{before['cpus']} cores, load average {before['loadavg'][0]} before and "
            f"{after['loadavg'][0]} after")


def render(reports: list[dict]) -> str:
    """One table from one or more runs (a later run's rows replace an earlier one's for its backends)."""
    rows: dict[tuple, dict] = {}
    runs = []
    for report in reports:
        backends = sorted({row["backend"] for row in report["results"]} - {"-"})
        runs.append(describe_run(report, ", ".join(BACKEND[b] for b in backends) + " and --help"
                                 if len(reports) == 1 else ", ".join(BACKEND[b] for b in backends)))
        for row in report["results"]:
            if row["backend"] == "-" and rows and len(reports) > 1 and report is not reports[0]:
                continue  # --help from the first run only
            rows[(row["backend"], row["case"], row["bundle"])] = row
    report = {"rounds": reports[0]["rounds"], "warmup": reports[0].get("warmup", 0),
              "settle": reports[0].get("settle", 0), "results": list(rows.values())}
    warmup = (f", after {report['warmup']} untimed run{'s' if report['warmup'] > 1 else ''} of each command"
              if report["warmup"] else "")
    if report["settle"]:
        warmup += (f", each timed run followed by {report['settle']} untimed run{'s' if report['settle'] > 1 else ''}"
                   f" of the same command (`Bench.alternate` says why)")
    lines = [
        f"Whole commands as a user runs them (new processes), measured by `make bench` "
        f"(`python -m bench.bench_cli`); {'; '.join(runs)} (the machine was shared with other "
        f"jobs: absolute times include that load; compare the two tools of a row). "
        f"Median of {report['rounds']} runs "
        f"(min–max){warmup}, modelreg and the reference taking turns on the same files and loopback server; "
        f"fresh cache and empty `--dest` for every pull, empty remote root for every push. "
        f"Speed ratio = reference time / modelreg time (>1: modelreg faster).",
        "",
        "| case | bundle | modelreg | reference | ref. time | speed ratio | goal | modelreg peak RSS |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in report["results"]:
        key = (row["backend"], row["case"], row["bundle"])
        case = f"{BACKEND[row['backend']]} {row['case']}".strip()
        if row["case"] == "python -c pass":
            case = "`python -c pass` (interpreter start-up, for scale)"
        elif row["case"] == "--help":
            case = "`modelreg --help`"
        reference = row.get("reference")
        lines.append("| " + " | ".join([
            case, size(row), seconds(row["modelreg"]),
            f"`{row['reference_tool']}`" if row.get("reference_tool") else "",
            seconds(reference) if reference else "",
            f"{row['speed_ratio']:.2f}x" if reference else "",
            GOALS.get(key, ""), f"{row['modelreg_max_rss_mb']:.0f} MB"]) + " |")
    return "\n".join(lines) + "\n"


def render_list(report: dict) -> str:
    """The `modelreg list` table of a bench_list run (first and repeated lists per version count)."""
    rows = report["results"]
    lines = [
        f"`modelreg list` of an S3 registry holding many versions (new processes, table sent to "
        f"/dev/null), measured by `make bench` (`python -m bench.bench_list`); "
        f"{describe_run(report, 'S3')}. Median of {report['rounds']} rounds (min–max); each round "
        f"is a first list (empty cache: every manifest and tag read) followed by a repeated one "
        f"(the cache that list left: unchanged objects reused). Client CPU is the command's user + "
        f"system time, server CPU the loopback SeaweedFS process's, both on the same cores. "
        f"`Manifest.from_bytes`, which every list repeats per version, took "
        f"{rows[0]['from_bytes_us_per_manifest']:.0f} µs per {rows[0]['manifest_bytes']}-byte manifest.",
        "",
        "| case | versions | modelreg | goal | client CPU | server CPU | modelreg peak RSS |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append("| " + " | ".join([
            f"S3 list, {row['case']}", f"{row['versions']:,}", seconds(row["modelreg"]), row.get("goal") or "",
            f"{row['client_cpu_s']['median_s']:.2f} s", f"{row['server_cpu_s']['median_s']:.2f} s",
            f"{row['modelreg_max_rss_mb']:.0f} MB"]) + " |")
    return "\n".join(lines) + "\n"


def current_section(path: Path) -> str:
    """The text between the markers in `path`."""
    text = path.read_text()
    if START not in text or END not in text:
        raise SystemExit(f"{path} has no {START} ... {END} markers.")
    return text.split(START, 1)[1].split(END, 1)[0].strip("\n") + "\n"


def replace_section(path: Path, table: str) -> None:
    current_section(path)  # the markers are there
    text = path.read_text()
    head, rest = text.split(START, 1)
    _old, tail = rest.split(END, 1)
    path.write_text(f"{head}{START}\n{table}{END}{tail}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="append", help="a bench_cli result file (repeatable; later "
                        "files replace earlier rows of the same backend); default bench/out/cli-ssh.json "
                        "and cli-s3.json")
    parser.add_argument("--list-json", help="a bench_list result file; default bench/out/list-s3.json "
                        "when it exists")
    parser.add_argument("--readme", help="replace the tables between the markers in this file")
    args = parser.parse_args(argv)
    out = Path(__file__).resolve().parent / "out"
    files = [Path(name) for name in args.json or [out / "cli-ssh.json", out / "cli-s3.json"]]
    if all(file.exists() for file in files):
        table = render([json.loads(file.read_text()) for file in files])
    elif args.readme and not args.json:
        table = current_section(Path(args.readme)).split(LIST_MARK, 1)[0].rstrip("\n") + "\n"
    else:
        raise SystemExit(f"No bench_cli results: {', '.join(str(file) for file in files if not file.exists())}")
    list_file = Path(args.list_json) if args.list_json else out / "list-s3.json"
    if args.list_json or list_file.exists():
        table += f"\n{LIST_MARK}\n" + render_list(json.loads(list_file.read_text()))
    if args.readme:
        replace_section(Path(args.readme), table)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
