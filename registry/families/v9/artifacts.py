"""Checks that the four v9 artifacts are what they claim and fit together.

Used by `ingest` before accepting files and by `modelreg.load` after verifying
digests, so both apply the same rules: labels are a 1-D array of strings, mean
and std are 1-D float arrays of the model's feature width, std has no zero, NaN
or inf, and the number of labels equals the model's output units. `.npy` files
are always read with `allow_pickle=False`: a pickled object array is refused.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from modelreg.errors import InvalidArtifact


def read_npy(source: Path | bytes, what: str) -> np.ndarray:
    """Parse a `.npy` file (path or exact bytes) without ever unpickling."""
    name = str(source) if isinstance(source, Path) else what
    try:
        handle = io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else open(source, "rb")
        with handle:
            array = np.load(handle, allow_pickle=False)
            if not isinstance(array, np.ndarray):
                close = getattr(array, "close", None)
                if close is not None:
                    close()
                raise InvalidArtifact(
                    f"The {what} file {name} is a .npz archive (several arrays), not a .npy array. "
                    f"Save the single array with np.save(path, array).")
            return array
    except InvalidArtifact:
        raise
    except FileNotFoundError as exc:
        raise InvalidArtifact(f"The {what} file {name} does not exist; check the path.") from exc
    except ValueError as exc:
        if "allow_pickle" in str(exc) or "Object arrays" in str(exc):
            raise InvalidArtifact(
                f"The {what} file {name} holds pickled Python objects, which modelreg never loads "
                f"(unpickling runs arbitrary code). Save it as a plain array, e.g. "
                f"np.save(path, np.asarray(values, dtype=str)).") from exc
        raise InvalidArtifact(f"The {what} file {name} is not a valid .npy array ({exc}).") from exc
    except OSError as exc:
        raise InvalidArtifact(f"The {what} file {name} cannot be read as .npy ({exc}).") from exc


def check_labels(labels: np.ndarray, where: str) -> list[str]:
    """A 1-D array of unique, non-empty strings, returned as a list in index order."""
    if not isinstance(labels, np.ndarray):
        raise InvalidArtifact(f"The labels in {where} must be a 1-D array of strings saved with np.save; "
                              f"found a {type(labels).__name__}.")
    if labels.ndim != 1 or labels.dtype.kind not in "US" or labels.size == 0:
        raise InvalidArtifact(
            f"The labels in {where} must be a non-empty 1-D array of strings; found shape "
            f"{labels.shape} of dtype {labels.dtype}.")
    values = [item.decode() if isinstance(item, bytes) else str(item) for item in labels.tolist()]
    duplicates = sorted({v for v in values if values.count(v) > 1})
    if duplicates or any(not v for v in values):
        raise InvalidArtifact(f"The labels in {where} must be unique and non-empty; problems: "
                              f"{duplicates or 'an empty label'}.")
    return values


def check_normalization(mean: np.ndarray, std: np.ndarray, feature_dim: int, where: str) -> None:
    """mean and std: 1-D floats of width `feature_dim`; std finite and non-zero; mean finite."""
    for what, array in (("mean", mean), ("std", std)):
        if array.ndim != 1 or array.dtype.kind != "f":
            raise InvalidArtifact(f"The {what} array in {where} must be a 1-D float array; found "
                                  f"shape {array.shape} of dtype {array.dtype}.")
        if array.shape[0] != feature_dim:
            raise InvalidArtifact(f"The {what} array in {where} has {array.shape[0]} values but the "
                                  f"model expects {feature_dim} features per frame.")
        if not np.all(np.isfinite(array)):
            raise InvalidArtifact(f"The {what} array in {where} contains NaN or inf values.")
    if np.any(std == 0):
        raise InvalidArtifact(f"The std array in {where} contains zeros, which would divide by zero "
                              f"when normalizing; recompute it with a floor (e.g. max(std, 1e-6)).")


def check_label_count(labels: list[str], output_units: int, where: str) -> None:
    if len(labels) != output_units:
        raise InvalidArtifact(f"The model in {where} has {output_units} output units but there are "
                              f"{len(labels)} labels; they do not belong together.")
