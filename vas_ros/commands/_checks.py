"""Checks of numeric command-line values that argparse's `type=` cannot express; each
failure is a VasError, so the user gets one line and exit code 2."""

from __future__ import annotations

import math

from vas_ros.errors import VasError


def finite_positive(value: float | None, flag: str) -> float | None:
    """None passes (not given); anything else must be a finite number > 0."""
    if value is not None and not (math.isfinite(value) and value > 0):
        raise VasError(f'{flag} must be a finite number > 0, got {value}')
    return value


def at_least(value: int | None, low: int, flag: str) -> int | None:
    if value is not None and value < low:
        raise VasError(f'{flag} must be >= {low}, got {value}')
    return value
