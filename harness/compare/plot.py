"""Pictures of where values moved: histograms drawn as inline SVG.

An HTML report must open anywhere, offline, years later: plain SVG written here needs no
plotting library, no script and no network. Each chart is a horizontal bar per bin, so
the bin labels stay readable; bars are coloured by the policy (green inside it, red
outside it, amber for a bin that straddles the limit) so a reader sees at a glance
whether the differences are rounding noise or something else.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence

from harness.compare.model import Bin

INSIDE, STRADDLES, OUTSIDE, NEUTRAL = "#2da44e", "#d4a72c", "#cf222e", "#57606a"
_ROW = 18
_LABEL = 150
_BAR = 220
_COUNT = 90
WIDTH = _LABEL + _BAR + _COUNT


def ulp_label(found: Bin) -> str:
    low, high = int(found.low), int(found.high)
    if low == high:
        return f"{low:,}"
    return f"{low:,} to {high:,}"


def abs_label(found: Bin) -> str:
    if found.low == 0:
        return "0"
    if math.isinf(found.low):
        return "inf"
    return f"{found.low:.2g} to {found.high:.2g}"


def colour(found: Bin, limit: float | None) -> str:
    """Green when the bin's values pass, red when they fail; from the verdict of each
    value where it was counted, else from ``limit``."""
    if found.passed is not None:
        return INSIDE if found.passed else OUTSIDE
    if limit is None:
        return NEUTRAL
    if found.high <= limit:
        return INSIDE
    if found.low > limit:
        return OUTSIDE
    return STRADDLES


def histogram_svg(
    title: str, bins: Sequence[Bin], labels: Sequence[str], colours: Sequence[str]
) -> str:
    """A horizontal bar chart, one row per bin, bar length proportional to the count."""
    top = 22
    height = top + _ROW * len(bins) + 6
    largest = max((found.count for found in bins), default=1) or 1
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="histogram" width="{WIDTH}" '
        f'height="{height}" viewBox="0 0 {WIDTH} {height}" role="img" '
        f'aria-label="{html.escape(title, quote=True)}">',
        f'<text x="0" y="14" font-weight="bold" font-size="13">{html.escape(title)}</text>',
    ]
    for row, (found, label, fill) in enumerate(zip(bins, labels, colours, strict=True)):
        y = top + row * _ROW
        width = max(1.0, _BAR * found.count / largest)
        parts.append(
            f'<text x="{_LABEL - 6}" y="{y + 13}" font-size="12" text-anchor="end">'
            f"{html.escape(label)}</text>"
            f'<rect class="bar" x="{_LABEL}" y="{y + 2}" width="{width:.1f}" height="{_ROW - 4}" '
            f'fill="{fill}"><title>{html.escape(label)}: {found.count:,}</title></rect>'
            f'<text x="{_LABEL + width + 4:.1f}" y="{y + 13}" font-size="12">{found.count:,}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)
