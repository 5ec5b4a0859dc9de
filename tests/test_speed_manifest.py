"""The fast schema check never accepts what jsonschema rejects, and accepts the manifests modelreg writes."""

from __future__ import annotations

import copy

import pytest

from modelreg.manifest import _validator, conforms_to_schema
from tests.test_manifest import sample_manifest

MISSING = object()


def mutations():
    """(label, path, value): set the value at path (MISSING deletes it)."""
    yield from [
        ("format 2", ["format_version"], 2), ("format true", ["format_version"], True),
        ("format 1.0", ["format_version"], 1.0), ("format str", ["format_version"], "1"),
        ("no name", ["name"], MISSING), ("bad name", ["name"], "-x"), ("name newline", ["name"], "x\n"),
        ("long name", ["name"], "a" * 129), ("name int", ["name"], 9),
        ("bad created", ["created"], "2026-11-25 10:00:00"), ("created frac", ["created"],
                                                              "2026-11-25T10:00:00.123Z"),
        ("extra key", ["extra"], 1), ("files empty", ["files"], []), ("files dict", ["files"], {}),
        ("file extra", ["files", 0, "x"], 1), ("file no size", ["files", 0, "size"], MISSING),
        ("size negative", ["files", 0, "size"], -1), ("size float", ["files", 0, "size"], 10.0),
        ("size bool", ["files", 0, "size"], True), ("size big", ["files", 0, "size"], 2**70),
        ("role bad", ["files", 0, "role"], "script"), ("role list", ["files", 0, "role"], ["weights"]),
        ("sha upper", ["files", 0, "sha256"], "AB" * 32), ("sha short", ["files", 0, "sha256"], "ab"),
        ("path empty", ["files", 0, "path"], ""), ("path long", ["files", 0, "path"], "p" * 256),
        ("path 255", ["files", 0, "path"], "p" * 255), ("path int", ["files", 0, "path"], 5),
        ("model list", ["model"], []), ("model no family", ["model", "family"], MISSING),
        ("model extra", ["model", "other"], {"a": 1}), ("shape null item", ["model", "input_shape"], [None, 3]),
        ("shape float", ["model", "input_shape"], [1.5]), ("shape bool", ["model", "input_shape"], [True]),
        ("labels int", ["model", "labels"], [1]), ("hp list", ["model", "hyperparameters"], []),
        ("metrics list", ["metrics"], []), ("prov no version", ["provenance", "modelreg_version"], MISSING),
        ("prov numpy null", ["provenance", "numpy_version"], None),
        ("prov numpy int", ["provenance", "numpy_version"], 1),
        ("prov python null", ["provenance", "python_version"], None),
        ("prov source", ["provenance", "source"], "ingest"), ("prov extra", ["provenance", "x"], 1),
    ]


def apply(raw: dict, path: list, value) -> dict:
    raw = copy.deepcopy(raw)
    target = raw
    for step in path[:-1]:
        target = target[step]
    if value is MISSING:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return raw


def test_fast_check_accepts_what_modelreg_writes():
    raw = sample_manifest().to_dict()
    assert conforms_to_schema(raw)
    assert not list(_validator().iter_errors(raw))


@pytest.mark.parametrize(("label", "path", "value"), list(mutations()), ids=[m[0] for m in mutations()])
def test_fast_check_never_accepts_what_jsonschema_rejects(label, path, value):
    raw = apply(sample_manifest().to_dict(), path, value)
    schema_ok = not list(_validator().iter_errors(raw))
    if conforms_to_schema(raw):
        assert schema_ok, f"{label}: fast check accepted a manifest jsonschema rejects"
