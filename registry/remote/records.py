"""Small JSON records read from outside (tags, yanks, tag moves), validated by schema at the boundary.

Every record format has a JSON schema in `registry/schemas/`; `parse_record` is the
one place such bytes become a dict, so a malformed file is always an InvalidArtifact
naming the file and saying how to re-create it, never a KeyError later.
"""

from __future__ import annotations

import getpass
import json
import platform
import re
from datetime import UTC, datetime
from functools import lru_cache
from importlib import resources

from modelreg.errors import InvalidArtifact

MAX_RECORD_BYTES = 64 * 1024


def parse_record(data: bytes, schema: str, where: str, what: str, fix: str) -> dict:
    """`data` as a JSON object matching `registry/schemas/<schema>`; InvalidArtifact otherwise.

    `where` names the file ("Tag file tags/x/y.json on s3://..."), `what` the format
    ("modelreg tag"), `fix` how to re-create it; all three go into the message.
    """
    try:
        raw = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidArtifact(f"{where} is not valid UTF-8 JSON ({exc}); {fix}") from exc
    except RecursionError:
        raise InvalidArtifact(f"{where} is nested too deeply to be a {what}; {fix}") from None
    if schema in FAST_CHECKS and FAST_CHECKS[schema](raw):
        return raw
    problems = sorted(_validator(schema).iter_errors(raw), key=lambda e: list(e.absolute_path))
    if problems:
        details = "; ".join(f"{'/'.join(str(p) for p in error.absolute_path) or '(top level)'}: "
                            f"{error.message[:200]}" for error in problems[:3])
        raise InvalidArtifact(f"{where} does not match the {what} schema (format 1): {details}. "
                              f"{fix[:1].upper()}{fix[1:]}")
    return raw


_IDENTIFIER = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_SHA256 = re.compile(r"[0-9a-f]{64}")


def _identifier(value) -> bool:
    return type(value) is str and _IDENTIFIER.fullmatch(value) is not None


def _target(value) -> bool:
    return (type(value) is dict and value.keys() == {"version", "manifest_sha256"}
            and _identifier(value["version"]) and type(value["manifest_sha256"]) is str
            and _SHA256.fullmatch(value["manifest_sha256"]) is not None)


def _is_tag(raw) -> bool:
    return (type(raw) is dict and raw.keys() == {"name", "tag", "version", "manifest_sha256"}
            and _identifier(raw["name"]) and _identifier(raw["tag"]) and _target(
                {"version": raw["version"], "manifest_sha256": raw["manifest_sha256"]}))


def _is_tag_move(raw) -> bool:
    keys = {"format_version", "name", "tag", "action", "previous", "new", "who", "when"}
    return (type(raw) is dict and raw.keys() == keys and type(raw["format_version"]) is int
            and raw["format_version"] == 1 and _identifier(raw["name"]) and _identifier(raw["tag"])
            and raw["action"] in ("tag", "rollback") and (raw["previous"] is None or _target(raw["previous"]))
            and _target(raw["new"]) and type(raw["who"]) is str and 1 <= len(raw["who"]) <= 300
            and type(raw["when"]) is str and _UTC_STAMP.fullmatch(raw["when"]) is not None)


FAST_CHECKS = {"tag-v1.schema.json": _is_tag, "tag-move-v1.schema.json": _is_tag_move}
"""Typed checks that accept only records their schema accepts (a subset: exact types, `fullmatch`),
so a well-formed tag or tag move is read without importing jsonschema (30 ms); anything else
goes to jsonschema, which has the last word and names the violations."""


@lru_cache(maxsize=8)
def _validator(schema: str):
    import jsonschema

    text = resources.files("modelreg.schemas").joinpath(schema).read_text("utf-8")
    return jsonschema.Draft202012Validator(json.loads(text))


def who_am_i() -> str:
    """`user@host` of this process, as recorded in yanks and tag moves (informational, not proof)."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{platform.node() or 'unknown-host'}"


def utc_now_precise() -> str:
    """UTC ISO-8601 with microseconds, so records made in one second still sort by time."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


_UTC_STAMP = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?Z")


def parse_utc(text: str) -> datetime:
    """A UTC timestamp as written by modelreg (with or without microseconds); ValueError otherwise.

    The form is checked here and the value parsed by `datetime.fromisoformat`: `strptime`
    imports `_strptime`, `calendar` and `locale` on first use, 1.3 ms of a cached pull."""
    if not _UTC_STAMP.fullmatch(text):
        raise ValueError(f"not a UTC timestamp of the form 2026-01-31T12:00:00[.123456]Z: {text!r}")
    return datetime.fromisoformat(text[:-1]).replace(tzinfo=UTC)
