"""Specification of v9 preprocessing: the split, train-only statistics, padding and masks."""

from __future__ import annotations

import numpy as np
import pytest

from modelreg.families.v9.demo_data import EMOTIONS, class_counts
from modelreg.families.v9.preprocessing import (
    STD_FLOOR,
    normalization_stats,
    normalize,
    pad_and_mask,
    padding_length,
    stratified_split,
    validation_count,
)


def seed_labels() -> list[str]:
    """The original v9 situation: 96 samples over 13 emotion classes."""
    return [name for name, count in class_counts(96, EMOTIONS).items() for _ in range(count)]


def test_96_samples_of_13_classes_split_76_train_20_validation():
    labels = seed_labels()

    train, val = stratified_split(labels)

    assert (len(train), len(val)) == (76, 20)
    assert set(np.asarray(labels)[val]) == set(EMOTIONS)
    assert set(np.asarray(labels)[train]) == set(EMOTIONS)
    assert sorted([*train, *val]) == list(range(96))


def test_split_is_seeded():
    labels = seed_labels()

    first, second = stratified_split(labels), stratified_split(labels)

    assert np.array_equal(first[0], second[0]) and np.array_equal(first[1], second[1])


def test_validation_gets_at_least_one_sample_per_class():
    assert validation_count(96, 13) == 20
    assert validation_count(26, 13) == 13
    assert validation_count(95, 2) == 19


def test_normalization_statistics_ignore_validation_samples_and_padding():
    train = [np.array([[1.0], [3.0]]), np.array([[5.0], [7.0], [9.0]])]
    validation = np.array([[1000.0], [1000.0]])
    everything = [*train, validation]
    batch, _ = pad_and_mask([np.asarray(f, np.float32) for f in train], length=6)

    mean, std = normalization_stats(train)

    assert mean[0] == pytest.approx(5.0)
    assert std[0] == pytest.approx(np.std([1, 3, 5, 7, 9]))
    assert mean[0] != pytest.approx(np.concatenate(everything).mean())
    assert mean[0] != pytest.approx(batch.reshape(-1).mean())


def test_normalization_statistics_use_only_frames_kept_after_truncation():
    train = [np.array([[1.0], [3.0], [500.0]])]

    mean, _ = normalization_stats(train, length=2)

    assert mean[0] == pytest.approx(2.0)


def test_constant_feature_std_is_floored():
    train = [np.array([[2.0, 1.0], [2.0, 3.0]])]

    mean, std = normalization_stats(train)

    assert std[0] == pytest.approx(STD_FLOOR)
    assert np.isfinite(normalize(np.array([[2.5, 1.0]]), mean, np.zeros(2))).all()


def test_mask_comes_from_true_lengths_even_for_all_zero_frames():
    short = np.zeros((3, 2), np.float32)
    longer = np.ones((5, 2), np.float32)

    batch, mask = pad_and_mask([short, longer], length=4)

    assert batch.shape == (2, 4, 2)
    assert mask.tolist() == [[True, True, True, False], [True, True, True, True]]


def test_longer_sequences_are_truncated_and_reported_through_the_callback():
    warnings = []

    batch, mask = pad_and_mask([np.ones((6, 2)), np.ones((2, 2))], length=4, names=["long.npz", "s.npz"],
                               on_warning=warnings.append)

    assert batch.shape == (2, 4, 2) and mask[0].all()
    assert len(warnings) == 1 and "long.npz (6 frames)" in warnings[0]


def test_padding_length_is_the_longest_training_sequence_capped_by_max_len():
    train = [np.ones((7, 2)), np.ones((12, 2))]

    assert padding_length(train) == 12
    assert padding_length(train, max_len=10) == 10
