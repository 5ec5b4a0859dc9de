"""Open a Keras `.h5` file as data: safety checks, the `model_config` JSON, weight arrays.

What the caller can rely on: `check_hdf5_safety` refuses anything that could make
reading the file touch other files (external links, external or virtual
datasets, soft links) and anything that is not a regular HDF5 file, naming the
offending path. `read_model_config` returns the stored graph as a plain JSON
object, refusing deep nesting and weights-only files. Nothing here imports Keras,
unpickles or evaluates anything.
"""

from __future__ import annotations

import json
import stat
from pathlib import Path

import h5py
import numpy as np

from ...errors import NotFound
from .errors import UnsupportedGraph

MAX_JSON_DEPTH = 64
"""Deepest nesting accepted in `model_config` (real Keras configs stay below 20)."""


def _refuse(reason: str, file: str) -> UnsupportedGraph:
    return UnsupportedGraph(reason, file=file, hint="Re-save the model with model.save(...) "
                            "to a plain .h5 file and hand in that file.")


def _open_checked_path(path: Path, name: str) -> h5py.File:
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        raise NotFound(f"Model file {name} does not exist. Check the path.") from None
    if stat.S_ISLNK(mode):
        raise _refuse("the path is a symbolic link; only a regular file is read", name)
    if not stat.S_ISREG(mode):
        raise _refuse("the path is not a regular file", name)
    if not h5py.is_hdf5(path):
        raise _refuse("the file is not HDF5 (no HDF5 signature)", name)
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise _refuse(f"the HDF5 file cannot be opened ({exc})", name) from None


def _check_tree(root: h5py.File, name: str) -> None:
    pending = [root]
    while pending:
        group = pending.pop()
        for key in group:
            link = group.get(key, getlink=True)
            where = f"{group.name.rstrip('/')}/{key}"
            if isinstance(link, h5py.ExternalLink):
                raise _refuse(f"HDF5 path {where} is an external link to {link.filename}:{link.path}",
                              name)
            if isinstance(link, h5py.SoftLink):
                raise _refuse(f"HDF5 path {where} is a soft link to {link.path}; Keras never "
                              "writes links, so a linked weight is refused", name)
            item = group[key]
            if isinstance(item, h5py.Group):
                pending.append(item)
            elif isinstance(item, h5py.Dataset):
                if item.is_virtual:
                    raise _refuse(f"HDF5 dataset {where} is a virtual dataset (its data lives in "
                                  "other files)", name)
                if item.external:
                    raise _refuse(f"HDF5 dataset {where} stores its data in external files "
                                  f"{[entry[0] for entry in item.external]}", name)
            else:
                raise _refuse(f"HDF5 path {where} is neither a group nor a dataset", name)


def check_hdf5_safety(path: Path, source_name: str | None = None) -> None:
    """Raise `UnsupportedGraph` (or `NotFound`) unless `path` is a self-contained regular HDF5 file."""
    path = Path(path)
    name = source_name or str(path)
    with _open_checked_path(path, name) as file:
        _check_tree(file, name)


def _json_depth_ok(text: str) -> bool:
    depth = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > MAX_JSON_DEPTH:
                return False
        elif char in "]}":
            depth -= 1
    return True


def parse_json_attr(raw: object, what: str, name: str) -> object:
    """Decode an HDF5 attribute holding JSON text; refuse non-text, bad JSON and deep nesting."""
    if isinstance(raw, np.ndarray) and raw.shape == ():
        raw = raw[()]
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise _refuse(f"the {what} attribute is not UTF-8 text", name) from None
    if not isinstance(raw, str):
        raise _refuse(f"the {what} attribute is not JSON text (got {type(raw).__name__})", name)
    if not _json_depth_ok(raw):
        raise _refuse(f"the {what} JSON is nested deeper than {MAX_JSON_DEPTH} levels", name)
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise _refuse(f"the {what} attribute is not valid JSON ({exc})", name) from None


def read_model_config(path: Path, source_name: str | None = None) -> tuple[dict, str]:
    """Return (`model_config` as a JSON object, writer `keras_version` string) of a full-model file."""
    path = Path(path)
    name = source_name or str(path)
    with _open_checked_path(path, name) as file:
        _check_tree(file, name)
        if "model_config" not in file.attrs:
            if "layer_names" in file.attrs or "model_weights" in file:
                raise _refuse("this .h5 has weights but no stored graph; re-save with "
                              "model.save(...)", name)
            raise _refuse("the file has no model_config attribute, so it is not a Keras "
                          "full-model .h5", name)
        if "model_weights" not in file:
            raise _refuse("the file has a model_config but no model_weights group", name)
        config = parse_json_attr(file.attrs["model_config"], "model_config", name)
        version = file.attrs.get("keras_version", file["model_weights"].attrs.get("keras_version"))
    if isinstance(version, bytes):
        version = version.decode("utf-8", "replace")
    if not isinstance(config, dict):
        raise _refuse(f"model_config must be a JSON object, got {type(config).__name__}", name)
    if not isinstance(version, str):
        raise _refuse("the file does not record which Keras version wrote it (keras_version)", name)
    return config, version


def read_string_list_attr(group: h5py.Group, attr: str) -> list[str]:
    """A list-of-strings attribute as Keras writes it (possibly chunked as attr0, attr1, ...)."""
    if attr in group.attrs:
        chunks = [group.attrs[attr]]
    else:
        chunks = []
        while f"{attr}{len(chunks)}" in group.attrs:
            chunks.append(group.attrs[f"{attr}{len(chunks)}"])
    names = []
    for chunk in chunks:
        for item in np.atleast_1d(np.asarray(chunk)):
            if isinstance(item, bytes):
                item = item.decode("utf-8", "replace")
            if not isinstance(item, str):
                raise UnsupportedGraph(f"attribute {attr} of {group.name} is not a list of names")
            names.append(item)
    return names
