"""Small JSON records read from outside (tags, yanks, tag moves), validated by schema at the boundary.

Every record format has a JSON schema in `registry/schemas/`; `parse_record` is the
one place such bytes become a dict, so a malformed file is always an InvalidArtifact
naming the file and saying how to re-create it, never a KeyError later.
"""

from __future__ import annotations

import getpass
import json
import socket
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
    problems = sorted(_validator(schema).iter_errors(raw), key=lambda e: list(e.absolute_path))
    if problems:
        details = "; ".join(f"{'/'.join(str(p) for p in error.absolute_path) or '(top level)'}: "
                            f"{error.message[:200]}" for error in problems[:3])
        raise InvalidArtifact(f"{where} does not match the {what} schema (format 1): {details}. "
                              f"{fix[:1].upper()}{fix[1:]}")
    return raw


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
    return f"{user}@{socket.gethostname() or 'unknown-host'}"


def utc_now_precise() -> str:
    """UTC ISO-8601 with microseconds, so records made in one second still sort by time."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_utc(text: str) -> datetime:
    """A UTC timestamp as written by modelreg (with or without microseconds)."""
    fmt = "%Y-%m-%dT%H:%M:%S.%fZ" if "." in text else "%Y-%m-%dT%H:%M:%SZ"
    return datetime.strptime(text, fmt).replace(tzinfo=UTC)
