"""Small GitHub-flavoured markdown helpers: tables, formatted numbers, image links."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence

MISSING = "n/a"
_NUMERIC = re.compile(r"[-+]?[\d.,]+(e[-+]?\d+)?( ?%| pp)?|n/a|")


def number(value: float | int | None, digits: int = 4) -> str:
    """A number with `digits` decimals (integers as they are); `n/a` for None or NaN."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return MISSING
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:,.{digits}f}"


def probability(value: float | None) -> str:
    """Four decimals, or two significant digits below 0.001 so tiny values don't read as 0."""
    if value is not None and 0 < value < 1e-3:
        return f"{value:.1e}"
    return number(value, 4)


def percent(value: float | None, digits: int = 2) -> str:
    if value is None or math.isnan(value):
        return MISSING
    return f"{100 * value:.{digits}f}%"


def p_value(value: float | None) -> str:
    """Six decimals, or scientific notation below 0.0001."""
    if value is not None and 0 < value < 1e-4:
        return f"{value:.2e}"
    return number(value, 6)


def percentage_points(value: float | None, digits: int = 2) -> str:
    """A signed difference of two fractions, in percentage points."""
    if value is None or math.isnan(value):
        return MISSING
    return f"{100 * value:+.{digits}f} pp"


def signed(value: float | None, digits: int = 4) -> str:
    if value is None or math.isnan(value):
        return MISSING
    return f"{value:+.{digits}f}"


def cell(value: object) -> str:
    """Text safe inside a table cell."""
    return str(value).replace("|", "\\|").replace("\n", " ")


def _is_numeric(value: object) -> bool:
    return isinstance(value, int | float) or bool(_NUMERIC.fullmatch(str(value)))


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A markdown table: numeric columns right-aligned, text columns and the first one left."""
    align = [":--"] + [
        "--:" if all(_is_numeric(row[i]) for row in rows) else ":--" for i in range(1, len(headers))
    ]
    lines = [headers, align, *rows]
    return "\n".join("| " + " | ".join(cell(v) for v in line) + " |" for line in lines)


def key_values(pairs: Mapping[str, object]) -> str:
    """A two-column table of names and values."""
    return table(["", "value"], [[f"**{k}**", v] for k, v in pairs.items()])


def image(alt: str, filename: str) -> str:
    """An image linked by relative path, so it renders beside the markdown on GitHub."""
    return f"![{alt}]({filename})"
