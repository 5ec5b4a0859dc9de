"""The fast tag and tag-move checks never accept what jsonschema rejects, and accept what modelreg writes."""

from __future__ import annotations

import copy
import json

import pytest

from modelreg.remote.records import FAST_CHECKS, _validator, parse_record

SHA = "ab" * 32
TAG = {"name": "emotion", "tag": "production", "version": "v9", "manifest_sha256": SHA}
MOVE = {"format_version": 1, "name": "emotion", "tag": "production", "action": "tag",
        "previous": {"version": "v8", "manifest_sha256": "cd" * 32}, "new": {"version": "v9", "manifest_sha256": SHA},
        "who": "ana@build-3", "when": "2026-12-02T10:00:00.123456Z"}
MISSING = object()

TAG_MUTATIONS = [
    ("no name", "name", MISSING), ("name newline", "name", "emotion\n"), ("name int", "name", 9),
    ("bad tag", "tag", "-x"), ("long tag", "tag", "a" * 129), ("version null", "version", None),
    ("sha upper", "manifest_sha256", SHA.upper()), ("sha short", "manifest_sha256", "ab"),
    ("sha newline", "manifest_sha256", SHA + "\n"), ("extra key", "created", "2026-12-02T10:00:00Z"),
]
MOVE_MUTATIONS = [
    ("format 2", "format_version", 2), ("format true", "format_version", True),
    ("format 1.0", "format_version", 1.0), ("action bad", "action", "move"), ("no who", "who", MISSING),
    ("who empty", "who", ""), ("who long", "who", "w" * 301), ("who 300", "who", "w" * 300),
    ("when no Z", "when", "2026-12-02T10:00:00"), ("when 7 digits", "when", "2026-12-02T10:00:00.1234567Z"),
    ("when newline", "when", "2026-12-02T10:00:00Z\n"), ("previous null", "previous", None),
    ("previous empty", "previous", {}), ("new extra", "new", {"version": "v9", "manifest_sha256": SHA, "x": 1}),
    ("new bad version", "new", {"version": "", "manifest_sha256": SHA}), ("extra key", "signature", "x"),
]


def mutated(record: dict, key: str, value) -> dict:
    changed = copy.deepcopy(record)
    if value is MISSING:
        del changed[key]
    else:
        changed[key] = value
    return changed


def jsonschema_accepts(schema: str, raw) -> bool:
    return not list(_validator(schema).iter_errors(raw))


def test_fast_checks_accept_the_records_modelreg_writes():
    assert FAST_CHECKS["tag-v1.schema.json"](TAG) and jsonschema_accepts("tag-v1.schema.json", TAG)
    assert FAST_CHECKS["tag-move-v1.schema.json"](MOVE) and jsonschema_accepts("tag-move-v1.schema.json", MOVE)
    first_move = {**MOVE, "previous": None, "when": "2026-12-02T10:00:00Z"}
    assert FAST_CHECKS["tag-move-v1.schema.json"](first_move)


@pytest.mark.parametrize("schema,record,label,key,value",
                         [("tag-v1.schema.json", TAG, *m) for m in TAG_MUTATIONS]
                         + [("tag-move-v1.schema.json", MOVE, *m) for m in MOVE_MUTATIONS])
def test_fast_checks_never_accept_what_jsonschema_rejects(schema, record, label, key, value):
    raw = mutated(record, key, value)
    if FAST_CHECKS[schema](raw):
        assert jsonschema_accepts(schema, raw), label


def test_a_malformed_tag_still_gets_jsonschemas_message():
    from modelreg.errors import InvalidArtifact

    data = json.dumps({**TAG, "version": "-bad"}).encode()
    with pytest.raises(InvalidArtifact, match="version"):
        parse_record(data, "tag-v1.schema.json", "Tag file t.json", "modelreg tag", "re-create it.")
