"""How the report writes numbers, shared by the model and both templates (as Jinja filters)."""
from __future__ import annotations

import math
from typing import Optional, Sequence

from edgetpu_analyzer.result import format_size

DASH = "\u2013"  # shown where there is no value


def thousands(value: Optional[int]) -> str:
    """An integer with thousands separators: 92,397,640."""
    return DASH if value is None else "{:,}".format(value)


def size(value: Optional[int]) -> str:
    """Bytes the way edgetpu_compiler prints them: 6.91MiB."""
    return DASH if value is None else format_size(value)


def metric(value: Optional[float]) -> str:
    """A measured fraction or figure: up to six decimals (what the stages round to), at least
    four so that columns line up; very large or small values in scientific notation."""
    if value is None:
        return DASH
    if math.isnan(value):
        return "NaN"
    if value == 0 or 1e-3 <= abs(value) < 1e5:
        text = "{:.6f}".format(value).rstrip("0")
        return text + "0" * max(0, 4 - len(text.split(".")[1]))
    return "{:.3e}".format(value)


def signed_percent(value: Optional[float]) -> str:
    """A relative change: +0.14 %."""
    return DASH if value is None else "{:+.2f} %".format(value)


def percent(value: Optional[float], decimals: int = 1) -> str:
    return DASH if value is None else "{:.{}f} %".format(value, decimals)


def shape(dimensions: Sequence[int]) -> str:
    """A tensor shape: 1×160×160×3."""
    return "\u00d7".join(str(dimension) for dimension in dimensions) or DASH
