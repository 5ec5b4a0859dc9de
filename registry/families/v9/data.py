"""Load a directory of WAV2VEC feature files (`.npz`, one utterance each) for the v9 family.

Guarantees: only the `.npz` files directly in the directory are read, in name
order; nothing is ever unpickled (`allow_pickle=False`); every file is read once,
hashed while in memory, and checked; all unusable files are reported together in
one `InvalidArtifact` that names them. The data directory comes from the caller
(`resolve_data_dir`): there are no built-in paths and no searching of home.

A file holds a 2-D float array `[frames, feature_dim]` under `features` (or
`wav2vec`, `embeddings`, or the file's only array) and its class under `label`
(or `emotion`), unless the caller passes a filename pattern whose one group is
the label (e.g. `r"_(\\w+)\\.npz$"` for `0001_happy.npz`), which then wins.
"""

from __future__ import annotations

import hashlib
import io
import re
import zipfile
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from modelreg.errors import InvalidArtifact, NotFound, UsageError
from modelreg.hashing import hash_bytes, hash_file

FEATURE_KEYS = ("features", "wav2vec", "embeddings")
LABEL_KEYS = ("label", "emotion")
MIN_SAMPLES_PER_CLASS = 2
_MAX_LISTED = 8


@dataclass(frozen=True)
class Utterance:
    """One loaded file: features `[frames, feature_dim]` (float32), its label and digest."""

    path: Path
    features: np.ndarray
    label: str | None
    sha256: str


@dataclass(frozen=True)
class Dataset:
    """A checked data directory: parallel lists of features and labels, plus its fingerprint."""

    directory: Path
    features: list
    labels: list
    files: list
    fingerprint: str

    @property
    def classes(self) -> list[str]:
        """Class names in index order (sorted), as written to `label_classes_<version>.npy`."""
        return sorted(set(self.labels))

    @property
    def feature_dim(self) -> int:
        return int(self.features[0].shape[1])


def resolve_data_dir(explicit: Path | None, env_value: str | None, config_dirs: Iterable) -> Path:
    """The directory to train from: `--data DIR`, else MODELREG_DATA_DIR, else config `data_dirs`.

    An explicit directory or environment value must exist (a typo is an error, not
    a reason to look elsewhere). From `data_dirs` the first directory holding
    `.npz` files wins. Raises `NotFound` listing every place looked at.
    """
    if explicit is not None:
        return _existing_dir(Path(explicit).expanduser(), "the --data option")
    if env_value:
        return _existing_dir(Path(env_value).expanduser(), "MODELREG_DATA_DIR")
    looked = []
    for entry in config_dirs or ():
        candidate = Path(entry).expanduser()
        if not candidate.is_dir():
            looked.append(f"{candidate} (config data_dirs: does not exist)")
        elif not any(candidate.glob("*.npz")):
            looked.append(f"{candidate} (config data_dirs: no .npz files)")
        else:
            return candidate
    places = "; ".join(["--data (not given)", "MODELREG_DATA_DIR (not set)", *looked])
    if not looked:
        places += "; config data_dirs (empty)"
    raise NotFound(
        f"No WAV2VEC feature directory found. Looked at: {places}. Pass --data DIR, set "
        f"MODELREG_DATA_DIR, or add data_dirs = [\"DIR\"] to the config file; DIR must hold "
        f".npz files with a 'features' array and a 'label'."
    )


def _existing_dir(path: Path, source: str) -> Path:
    if not path.is_dir():
        what = "is not a directory" if path.exists() else "does not exist"
        raise NotFound(f"The data directory {path} given by {source} {what}. "
                       f"Fix the path, or create it and put the .npz feature files in it.")
    return path


def compile_label_pattern(pattern: str | None) -> re.Pattern | None:
    """Compile a filename-to-label regex; it must have exactly one group (`UsageError` if not)."""
    if pattern is None:
        return None
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        raise UsageError(f"The label pattern {pattern!r} is not a valid regular expression ({exc}).") from exc
    if compiled.groups != 1:
        raise UsageError(f"The label pattern {pattern!r} must have exactly one group, the label "
                         f"(e.g. r'_(\\w+)\\.npz$'); it has {compiled.groups}.")
    return compiled


def load_utterance(path: Path, *, label_pattern: str | re.Pattern | None = None,
                   require_label: bool = True) -> Utterance:
    """Read and check one `.npz` feature file; raise `InvalidArtifact` naming it when unusable."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise NotFound(f"Feature file {path} does not exist.") from exc
    pattern = compile_label_pattern(label_pattern) if isinstance(label_pattern, str) else label_pattern
    return _parse(path, data, pattern, require_label)


def _parse(path: Path, data: bytes, pattern: re.Pattern | None, require_label: bool) -> Utterance:
    if not data:
        raise InvalidArtifact(f"{path} is empty (0 bytes).")
    if not data.startswith(b"PK"):
        raise InvalidArtifact(f"{path} is not an .npz archive (a zip written by np.savez); "
                              f"re-save it with np.savez(path, features=..., label=...).")
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
    except ValueError as exc:
        if "allow_pickle" in str(exc) or "Object arrays" in str(exc):
            raise InvalidArtifact(
                f"{path} contains a pickled Python object array. modelreg never unpickles data "
                f"files (that can run arbitrary code); re-save it with numeric arrays, e.g. "
                f"np.savez(path, features=x.astype('float32'), label='happy')."
            ) from exc
        raise InvalidArtifact(f"{path} is not a readable .npz file ({exc}).") from exc
    except (OSError, zipfile.BadZipFile, EOFError) as exc:
        raise InvalidArtifact(f"{path} is not a readable .npz file ({exc}).") from exc
    if not arrays:
        raise InvalidArtifact(f"{path} is an empty .npz archive (it holds no arrays).")
    label = _label(path, arrays, pattern, require_label)
    features = _features(path, arrays)
    return Utterance(path=path, features=features, label=label, sha256=hash_bytes(data))


def _label(path: Path, arrays: dict, pattern: re.Pattern | None, require_label: bool) -> str | None:
    if pattern is not None:
        match = pattern.search(path.name)
        if match is None or not match.group(1):
            raise InvalidArtifact(f"The label pattern {pattern.pattern!r} does not match the file "
                                  f"name {path.name} (in {path.parent}).")
        return match.group(1)
    key = next((k for k in LABEL_KEYS if k in arrays), None)
    if key is None:
        if require_label:
            raise InvalidArtifact(
                f"{path} has no label: found keys {sorted(arrays)}, expected one of "
                f"{list(LABEL_KEYS)}. Add a 'label' array or pass a filename label pattern."
            )
        return None
    value = arrays[key]
    if value.size != 1 or value.dtype.kind not in "USiu":
        raise InvalidArtifact(f"The {key!r} entry of {path} must be one string or integer, "
                              f"got an array of shape {value.shape} and dtype {value.dtype}.")
    item = value.reshape(()).item()
    label = item.decode("utf-8", "replace") if isinstance(item, bytes) else str(item)
    if not label.strip():
        raise InvalidArtifact(f"The {key!r} entry of {path} is an empty string.")
    return label.strip()


def _features(path: Path, arrays: dict) -> np.ndarray:
    key = next((k for k in FEATURE_KEYS if k in arrays), None)
    if key is None:
        others = [k for k in arrays if k not in LABEL_KEYS]
        if len(others) != 1:
            raise InvalidArtifact(
                f"{path} has unknown keys: found {sorted(arrays)}, expected the features under one "
                f"of {list(FEATURE_KEYS)} (or a single array) and the label under one of "
                f"{list(LABEL_KEYS)}. Rename the arrays when saving the file."
            )
        key = others[0]
    array = arrays[key]
    if array.ndim == 3 and array.shape[0] == 1:
        array = array[0]
    if array.size == 0:
        raise InvalidArtifact(f"The {key!r} array of {path} is empty (shape {array.shape}).")
    if array.ndim != 2:
        raise InvalidArtifact(f"The {key!r} array of {path} has shape {array.shape}; expected "
                              f"2-D [frames, feature_dim] WAV2VEC features.")
    if array.dtype.kind not in "fiu":
        raise InvalidArtifact(f"The {key!r} array of {path} has dtype {array.dtype}; expected numbers.")
    features = array.astype(np.float32)
    bad = ~np.isfinite(features).all(axis=1)
    if bad.any():
        raise InvalidArtifact(f"{path} has {int(bad.sum())} frame(s) with NaN or inf values "
                              f"(first at frame {int(np.argmax(bad))}); fix or drop the file.")
    return features


def load_dataset(directory: Path, *, label_pattern: str | None = None) -> Dataset:
    """Load and check every `.npz` file directly in `directory`.

    Raises `NotFound` when the directory has no `.npz` files, and one
    `InvalidArtifact` naming every unusable file, ragged feature widths (which
    files have which width), or classes with fewer than 2 samples (named).
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise NotFound(f"The data directory {directory} does not exist or is not a directory.")
    paths = sorted(p for p in directory.glob("*.npz") if p.is_file())
    if not paths:
        raise NotFound(f"No .npz feature files in {directory} (subdirectories are not searched). "
                       f"Point --data at the directory that holds them.")
    pattern = compile_label_pattern(label_pattern)
    utterances, problems = [], []
    for path in paths:
        try:
            utterances.append(_parse(path, path.read_bytes(), pattern, require_label=True))
        except InvalidArtifact as exc:
            problems.append(str(exc))
    if problems:
        listed = " ".join(problems[:_MAX_LISTED])
        more = f" (and {len(problems) - _MAX_LISTED} more)" if len(problems) > _MAX_LISTED else ""
        raise InvalidArtifact(f"{len(problems)} of {len(paths)} files in {directory} are unusable: "
                              f"{listed}{more}")
    _check_widths(directory, utterances)
    labels = [u.label for u in utterances if u.label is not None]
    _check_class_counts(directory, labels)
    return Dataset(
        directory=directory,
        features=[u.features for u in utterances],
        labels=labels,
        files=[u.path for u in utterances],
        fingerprint=fingerprint_from_digests((u.path.name, u.sha256) for u in utterances),
    )


def _check_widths(directory: Path, utterances: list[Utterance]) -> None:
    by_width: dict[int, list[str]] = {}
    for utterance in utterances:
        by_width.setdefault(int(utterance.features.shape[1]), []).append(utterance.path.name)
    if len(by_width) > 1:
        parts = []
        for width, names in sorted(by_width.items(), key=lambda item: -len(item[1])):
            shown = ", ".join(names[:_MAX_LISTED])
            extra = f" and {len(names) - _MAX_LISTED} more" if len(names) > _MAX_LISTED else ""
            parts.append(f"width {width} in {shown}{extra}")
        raise InvalidArtifact(f"The feature files in {directory} have ragged feature widths: "
                              f"{'; '.join(parts)}. All files must come from the same WAV2VEC "
                              f"model and layer; remove or re-extract the odd ones.")


def _check_class_counts(directory: Path, labels: list[str]) -> None:
    counts = Counter(labels)
    if len(counts) < 2:
        raise InvalidArtifact(f"All files in {directory} have the label {labels[0]!r}; a classifier "
                              f"needs at least two classes.")
    scarce = {name: n for name, n in sorted(counts.items()) if n < MIN_SAMPLES_PER_CLASS}
    if scarce:
        listed = ", ".join(f"{name!r} ({n})" for name, n in scarce.items())
        raise InvalidArtifact(
            f"Classes with fewer than {MIN_SAMPLES_PER_CLASS} samples in {directory}: {listed}. "
            f"A stratified split needs one training and one validation sample per class; add "
            f"samples or remove those classes."
        )


def fingerprint_from_digests(pairs: Iterable[tuple[str, str]]) -> str:
    """sha256 over sorted `name NUL digest LF` lines: the dataset's identity, independent of order."""
    digest = hashlib.sha256()
    for name, file_digest in sorted(pairs):
        digest.update(f"{name}\0{file_digest}\n".encode())
    return digest.hexdigest()


def dataset_fingerprint(files: Iterable[Path]) -> str:
    """The fingerprint of these files: sha256 over the sorted (file name, file sha256) pairs."""
    return fingerprint_from_digests((Path(f).name, hash_file(Path(f))[0]) for f in files)
