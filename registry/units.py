"""Sizes (`10G`, `500MB`, `1.5GiB`) and durations (`30d`, `12h`, `90m`) typed by people, parsed once.

Both parsers raise UsageError naming the option (or config key) and showing forms that
work, so a command can hand them a flag's text unchecked. Sizes follow `human_size`:
K, M, G and T (with or without a trailing B) are powers of 1000; KiB, MiB, GiB and TiB are
powers of 1024; a bare number is bytes. Durations need a unit (s, m, h, d, w): `90` alone
is refused, because minutes and seconds are both plausible readings (`0` alone is zero).

>>> parse_size("1.5GiB")
1610612736
>>> parse_size("500MB")
500000000
>>> parse_duration("90m")
5400.0
"""

from __future__ import annotations

import math
import re

from modelreg.errors import UsageError

SIZE_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "m": 1000**2, "mb": 1000**2, "g": 1000**3, "gb": 1000**3,
              "t": 1000**4, "tb": 1000**4, "kib": 1024, "mib": 1024**2, "gib": 1024**3, "tib": 1024**4}
DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_NUMBER_AND_UNIT = re.compile(r"^\s*(\d+(?:\.\d+)?|\.\d+)\s*([A-Za-z]*)\s*$")


def parse_size(text: str | int, what: str = "size") -> int:
    """Bytes in `text` (an int is taken as bytes); UsageError naming `what` when it is not a size."""
    if isinstance(text, bool):
        raise _bad(what, text, "a size")
    if isinstance(text, int):
        if text < 0:
            raise _bad(what, text, "a size")
        return text
    number, unit = _split(text, what, "a size")
    factor = SIZE_UNITS.get(unit.lower())
    if factor is None:
        raise _bad(what, text, "a size")
    return int(number * factor)


def parse_duration(text: str, what: str = "duration") -> float:
    """Seconds in `text`; UsageError naming `what` when it is not a number with a unit."""
    number, unit = _split(text, what, "a duration")
    factor = DURATION_UNITS.get(unit.lower()) if unit else (1 if number == 0 else None)
    if factor is None:
        raise _bad(what, text, "a duration")
    return number * factor


def _split(text: str, what: str, kind: str) -> tuple[float, str]:
    match = _NUMBER_AND_UNIT.match(text) if isinstance(text, str) else None
    if match is None or not math.isfinite(float(match.group(1))):
        raise _bad(what, text, kind)
    return float(match.group(1)), match.group(2)


def _bad(what: str, text: object, kind: str) -> UsageError:
    forms = ("a number of bytes with an optional unit: 500MB, 10G, 1.5GiB (K/M/G/T are powers of 1000, "
             "KiB/MiB/GiB/TiB of 1024; a bare number is bytes)" if kind == "a size" else
             "a number with a unit: 90m, 12h, 30d (s, m, h, d or w)")
    return UsageError(f"Invalid {what} {text!r}: it must be {forms}.")


def human_size(size: int) -> str:
    """`1.5 GB` for people (powers of 1000, as `parse_size` reads `G`)."""
    value = float(size)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{size} B"


def human_duration(seconds: float) -> str:
    """`3d`, `5h`, `12m` or `40s`: the largest unit that fits, rounded down."""
    for unit, factor in sorted(DURATION_UNITS.items(), key=lambda item: -item[1]):
        if unit != "w" and (seconds >= factor or unit == "s"):
            return f"{int(max(seconds, 0) // factor)}{unit}"
    return "0s"


def format_duration(seconds: float) -> str:
    """The largest whole unit that fits, for messages: 86400 -> '1d', 5400 -> '90m', 1.5 -> '1.5s'."""
    for unit, size in sorted(DURATION_UNITS.items(), key=lambda item: -item[1]):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size:g}{unit}"
    return f"{seconds:g}s"
