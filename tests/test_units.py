"""Durations and sizes as typed on the command line (`--grace 24h`)."""

from __future__ import annotations

import pytest

from modelreg.errors import UsageError
from modelreg.units import format_duration, parse_duration, parse_size


@pytest.mark.parametrize(("text", "seconds"), [("0", 0), ("0s", 0), ("90s", 90), ("30m", 1800), ("24h", 86400),
                                               ("7d", 604800), ("1w", 604800), ("1.5h", 5400), (" 2 H ", 7200)])
def test_parse_duration_accepts_a_number_with_a_unit(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "-1h", "5y", "1h30m", "h", "90"])
def test_parse_duration_refuses_anything_else_naming_what(text):
    with pytest.raises(UsageError, match="Invalid --grace"):
        parse_duration(text, "--grace")


@pytest.mark.parametrize(("text", "size"), [("0", 0), ("512", 512), ("10B", 10), ("1.5 GB", 1_500_000_000),
                                            ("2KiB", 2048), ("3mib", 3 * 1024 * 1024), ("1TB", 10**12)])
def test_parse_size_accepts_decimal_and_binary_units(text, size):
    assert parse_size(text) == size


def test_parse_size_refuses_an_unknown_unit():
    with pytest.raises(UsageError, match="Invalid size '5 parsecs'"):
        parse_size("5 parsecs")


@pytest.mark.parametrize(("seconds", "text"), [(86400, "1d"), (5400, "90m"), (1.5, "1.5s"), (0, "0s"),
                                               (604800, "1w")])
def test_format_duration_uses_the_largest_whole_unit(seconds, text):
    assert format_duration(seconds) == text
