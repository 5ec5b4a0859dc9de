"""How push and pull results are rendered: the one-line summaries, where each file came from, JSON."""

from __future__ import annotations

from collections import defaultdict

from modelreg.cli.output import human_size


def push_line(result, signing: bool) -> str:
    """The one-line summary of a push to one place."""
    signed = " Signed: model.sig stored." if result.signed else (
        " It already carries a signature (kept)." if signing else "")
    if result.already_published:
        return (f"{result.manifest.ref} is already on {result.remote} with the same manifest "
                f"({result.manifest.digest[:12]}): nothing to do.{signed} If pulls of it fail, "
                f"repair it with 'modelreg push {result.manifest.ref} --repair'.")
    sent = sum(e.size for e in result.uploaded)
    return (f"Pushed {result.manifest.ref} to {result.remote}: {len(result.uploaded)} blob(s) "
            f"uploaded ({human_size(sent)}), {len(result.skipped)} already there; manifest "
            f"{result.manifest.digest[:12]}.{signed}")


def push_json(result) -> dict:
    data = {"ref": result.manifest.ref, "remote": result.remote, "manifest_sha256": result.manifest.digest,
            "uploaded": [e.path for e in result.uploaded], "skipped": [e.path for e in result.skipped],
            "already_published": result.already_published, "signed": result.signed}
    if result.repair is not None:
        data["repaired"] = [check.entry.path for check in result.repair.repaired]
        data["metadata"] = dict(result.repair.metadata)
    return data


def push_all_json(outcomes) -> dict:
    """`push --all --json`: one entry per place, in order, each with its result or its error."""
    return {"ok": all(o.error is None for o in outcomes), "places": [
        {"place": o.label, "ok": o.error is None, "error": None if o.error is None else str(o.error),
         **(push_json(o.result) if o.result is not None else {})} for o in outcomes]}


def pull_lines(result, spec) -> list[str]:
    """The summary of a pull: one line, then where the files came from (remotes with fallbacks,
    named as a whole: its first URL may not have served anything) and what a partial pull left out."""
    has_fallbacks = bool(spec.fallbacks)
    remote = f"remote {spec.name} ({len(spec.places)} places)" if has_fallbacks else result.remote
    got = sum(e.size for e in result.downloaded)
    where = f" and wrote it to {result.dest}" if result.dest else ""
    signature = result.signature.describe() if result.signature else "unsigned"
    part = (f" ({len(result.selected)} of {len(result.manifest.files)} files: {', '.join(result.selected)})"
            if result.selected is not None else "")
    if result.from_cache:
        lines = [f"Pulled {result.manifest.ref}{part} from the local cache without contacting "
                 f"{remote}: 0 blob(s) downloaded, {result.cache_summary()}, manifest checked "
                 f"against pin and trust policy{where}; {signature}."]
    else:
        lines = [f"Pulled {result.manifest.ref}{part} from {remote}: {len(result.downloaded)} "
                 f"blob(s) downloaded ({human_size(got)}), {result.cache_summary()}, all verified"
                 f"{where}; {signature}."]
    if has_fallbacks and not result.from_cache:
        by_place = defaultdict(list)
        for path, label in result.served_by.items():
            by_place[label].append(path)
        served = "; ".join(f"{label}: {', '.join(paths)}" for label, paths in by_place.items())
        lines.append(f"Manifest from {result.manifest_from}; files downloaded from "
                     f"{served or 'nowhere (all cached)'}.")
    if not result.complete:
        lines.append(f"Partial pull: the rest of {result.manifest.ref} is not cached, so the cache does "
                     f"not count it as pulled ('modelreg load' or a full pull fetches the rest).")
    return lines


def pull_json(result) -> dict:
    return {"ref": result.manifest.ref, "remote": result.remote, "manifest_sha256": result.manifest.digest,
            "from_cache": result.from_cache, "manifest_from": result.manifest_from,
            "downloaded": [e.path for e in result.downloaded], "cached": [e.path for e in result.cached],
            "reverified": [e.path for e in result.reverified], "repaired": [e.path for e in result.repaired],
            "served_by": dict(result.served_by), "selected": result.selected, "complete": result.complete,
            "dest": str(result.dest) if result.dest else None,
            "signature": result.signature.describe() if result.signature else "unsigned",
            "notes": list(result.notes)}
