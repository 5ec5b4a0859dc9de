"""Turn variable-length utterances into the model's inputs: split, normalize, pad, mask.

Guarantees the v9 recipe depends on:
- the split is stratified, seeded (42) and gives every class a validation
  sample: `validation_count` = max(ceil(0.2 * n), n_classes), so 96 samples of
  13 classes split 76 / 20 exactly as the original v9 training did;
- normalization statistics come from training frames only: never validation
  utterances, never padding; the standard deviation is floored at `STD_FLOOR`
  so a constant feature cannot divide by zero;
- the mask comes from each utterance's true length (a real frame whose values
  are all zero after normalization still counts);
- nothing is printed: truncation is reported through an `on_warning(message)`
  callback the caller may pass.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence

import numpy as np

from modelreg.errors import InvalidArtifact

VALIDATION_FRACTION = 0.2
SPLIT_SEED = 42
STD_FLOOR = 1e-6
"""Smallest standard deviation used to divide by (features whose spread is below it are ~constant)."""

Warn = Callable[[str], None]


def validation_count(n_samples: int, n_classes: int) -> int:
    """How many samples go to validation: 20 %, rounded up, and at least one per class."""
    return max(math.ceil(round(VALIDATION_FRACTION * n_samples, 9)), n_classes)


def stratified_split(labels: Sequence[str], *, random_state: int = SPLIT_SEED
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, validation) of a seeded stratified split with every class on both sides.

    Raises `InvalidArtifact` naming the classes that cannot be split that way.
    """
    from sklearn.model_selection import train_test_split

    label_array = np.asarray(labels)
    counts: Counter[str] = Counter(label_array.tolist())
    n_val = validation_count(len(label_array), len(counts))
    try:
        train, val = train_test_split(np.arange(len(label_array)), test_size=n_val,
                                      random_state=random_state, stratify=label_array)
    except ValueError as exc:
        raise InvalidArtifact(f"Cannot split {len(label_array)} samples of {len(counts)} classes "
                              f"({dict(sorted(counts.items()))}) into training and validation: {exc}. "
                              f"Add samples to the small classes.") from exc
    missing = sorted(set(counts) - set(label_array[val].tolist()))
    if missing:
        raise InvalidArtifact(f"The stratified split left classes {missing} without a validation "
                              f"sample (class sizes {dict(sorted(counts.items()))}); add samples to "
                              f"them or remove them.")
    return train, val


def padding_length(train_features: Sequence[np.ndarray], max_len: int | None = None) -> int:
    """The longest training sequence, capped at `max_len` when given."""
    longest = max(int(f.shape[0]) for f in train_features)
    return min(longest, int(max_len)) if max_len else longest


def normalization_stats(train_features: Sequence[np.ndarray], length: int | None = None
                        ) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and std (float32, shape [F]) over the training frames the model sees.

    Only the first `length` frames of each sequence count (the rest are
    truncated away); padding is never included because it is added later.
    """
    frames = [np.asarray(f[:length] if length else f, dtype=np.float64) for f in train_features]
    count = sum(f.shape[0] for f in frames)
    mean = sum(f.sum(axis=0) for f in frames) / count
    variance = sum(((f - mean) ** 2).sum(axis=0) for f in frames) / count
    std = np.maximum(np.sqrt(variance), STD_FLOOR)
    return mean.astype(np.float32), std.astype(np.float32)


def normalize(features: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """(features - mean) / std as float32; std is floored at `STD_FLOOR` here too."""
    mean = np.asarray(mean, dtype=np.float32).reshape(-1)
    std = np.maximum(np.asarray(std, dtype=np.float32).reshape(-1), STD_FLOOR)
    return ((np.asarray(features, dtype=np.float32) - mean) / std).astype(np.float32)


def pad_and_mask(features_list: Sequence[np.ndarray], length: int, *,
                 names: Sequence[str] | None = None, on_warning: Warn | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Zero-pad or truncate to `length` frames; return (batch [N, T, F] float32, mask [N, T] bool).

    `mask[i, t]` is True exactly for the frames of utterance i that exist
    (t < its true length): the mask never depends on the frame values.
    Truncated sequences are reported through `on_warning`, naming them.
    """
    width = int(features_list[0].shape[1])
    batch = np.zeros((len(features_list), length, width), dtype=np.float32)
    mask = np.zeros((len(features_list), length), dtype=bool)
    truncated = []
    for index, features in enumerate(features_list):
        frames = int(features.shape[0])
        kept = min(frames, length)
        batch[index, :kept] = features[:kept]
        mask[index, :kept] = True
        if frames > length:
            truncated.append((names[index] if names else f"#{index}", frames))
    if truncated and on_warning:
        shown = ", ".join(f"{name} ({frames} frames)" for name, frames in truncated[:5])
        more = f" and {len(truncated) - 5} more" if len(truncated) > 5 else ""
        on_warning(f"{len(truncated)} sequence(s) longer than {length} frames were truncated: "
                   f"{shown}{more}.")
    return batch, mask
