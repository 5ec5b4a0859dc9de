"""Set a rebuilt model's weights from the file's `model_weights` group, by layer and weight name.

What the caller can rely on: every weight variable of the model is set from the
dataset of the same layer and weight name (Keras 2 `:0` suffixes and the layer
prefix are ignored when comparing; a name that is a `/`-aligned suffix of the
other matches only if unique), with the exact shape; every dataset under
`model_weights` is used. Anything else raises `WeightMismatch` naming the
layer and weight. Values are read as numeric arrays only.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from .errors import WeightMismatch
from .hdf5 import check_hdf5_safety, read_string_list_attr

_SUFFIX = re.compile(r":\d+$")


def _relative(name: str, layer: str) -> str:
    name = _SUFFIX.sub("", name)
    return name[len(layer) + 1:] if name.startswith(layer + "/") else name


def _datasets(group: h5py.Group) -> set[str]:
    found: set[str] = set()
    group.visititems(lambda name, item: found.add(f"{group.name}/{name}")
                     if isinstance(item, h5py.Dataset) else None)
    return found


def _match(layer: str, variables: list, stored: dict[str, str]) -> list[tuple[Any, str]]:
    """Pair each variable with one stored weight name; raise naming the first that has none."""
    unused = dict(stored)
    pairs = []
    for variable in variables:
        wanted = _relative(variable.path, layer)
        if wanted in unused:
            pairs.append((variable, unused.pop(wanted)))
            continue
        candidates = [rel for rel in unused
                      if rel.endswith("/" + wanted) or wanted.endswith("/" + rel)]
        if len(candidates) != 1:
            raise WeightMismatch(f"weight {wanted!r} of the model has no "
                                 f"{'unique ' if candidates else ''}match among the stored "
                                 f"weights {sorted(unused)}", layer=layer)
        pairs.append((variable, unused.pop(candidates[0])))
    if unused:
        raise WeightMismatch(f"stored weight(s) {sorted(unused.values())} are not used by the "
                             "rebuilt model", layer=layer)
    return pairs


def _value(dataset: Any, where: str, layer: str) -> np.ndarray:
    if not isinstance(dataset, h5py.Dataset) or dataset.dtype.kind not in "fiub":
        raise WeightMismatch(f"{where} is not a numeric dataset", layer=layer)
    return np.asarray(dataset[()])


def load_weights(model: Any, graph: Any, path: Path, source_name: str | None = None) -> None:
    """Set every weight of `model` (built from `graph`) from `path`; see the module docstring."""
    name = source_name or str(path)
    check_hdf5_safety(path, name)
    try:
        with h5py.File(path, "r") as file:
            root = file["model_weights"]
            remaining = _datasets(root)
            for layer in model.layers:
                variables = list(layer.trainable_weights) + list(layer.non_trainable_weights)
                group = root.get(layer.name)
                names = read_string_list_attr(group, "weight_names") if group is not None else []
                stored = {_relative(weight, layer.name): weight for weight in names}
                if len(stored) != len(names):
                    raise WeightMismatch("two stored weights have the same name", layer=layer.name)
                for variable, weight in _match(layer.name, variables, stored):
                    where = f"{group.name}/{weight}"
                    value = _value(group.get(weight), where, layer.name)
                    if value.shape != tuple(variable.shape):
                        raise WeightMismatch(f"weight {where} has shape {value.shape}, the model "
                                             f"expects {tuple(variable.shape)}", layer=layer.name)
                    variable.assign(value.astype(variable.dtype))
                    remaining.discard(where)
            if remaining:
                raise WeightMismatch(f"dataset(s) {sorted(remaining)} are not weights of any "
                                     "layer of the stored graph")
    except WeightMismatch as exc:
        raise exc.located(name) from None
