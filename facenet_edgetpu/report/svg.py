"""Geometry of the report's two drawings, as numbers: the templates only place them.

The operator strip is a grid of cells, `STRIP_COLUMNS` per row, left to right, with the index
of each row's first operator in a margin on the left. The memory bar is one bar of
`BAR_WIDTH` user units split to scale into segments. The Markdown report draws both as text
with the same functions, in character cells instead of SVG units.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Sequence

# Operator strip (SVG user units).
STRIP_COLUMNS = 50
CELL_WIDTH = 16
CELL_HEIGHT = 22
CELL_GAP = 2
STRIP_LEFT = 36            # room for the row labels
ROW_LABEL_BASELINE = 15    # from the top of a row
CELL_KEY_BASELINE = 15     # from the top of a cell: the CPU status letter

# Memory bar (SVG user units).
BAR_WIDTH = 936
BAR_HEIGHT = 34
BAR_CAPTION_ROOM = 22      # below the bar, for the on-chip capacity caption
BAR_TEXT_INSET = 8
CHARACTER_WIDTH = 7.2      # of the 12.5-unit label font, to decide whether a label fits
LABEL_PADDING = 12         # the inset on the left and some air on the right


@dataclass(frozen=True)
class Rect:
    x: float
    y: float
    width: float
    height: float


@dataclass(frozen=True)
class Point:
    x: float
    y: float


@dataclass(frozen=True)
class RowLabel:
    first_position: int    # the position of the row's first cell
    x: float               # right edge of the label (the text is right-aligned)
    y: float               # baseline


def strip_rows(count: int, columns: int = STRIP_COLUMNS) -> int:
    """Rows needed for `count` cells."""
    return (count + columns - 1) // columns


def strip_cell(position: int, columns: int = STRIP_COLUMNS) -> Rect:
    """The rectangle of the cell at `position` (0-based, row by row)."""
    row, column = divmod(position, columns)
    return Rect(x=STRIP_LEFT + column * (CELL_WIDTH + CELL_GAP),
                y=row * (CELL_HEIGHT + CELL_GAP), width=CELL_WIDTH, height=CELL_HEIGHT)


def cell_key_position(cell: Rect) -> Point:
    """Where a cell's status letter goes (centred; the text is anchored in the middle)."""
    return Point(cell.x + cell.width / 2.0, cell.y + CELL_KEY_BASELINE)


def strip_size(count: int, columns: int = STRIP_COLUMNS) -> Rect:
    """The strip's whole drawing (x = y = 0)."""
    return Rect(x=0, y=0, width=STRIP_LEFT + columns * (CELL_WIDTH + CELL_GAP),
                height=strip_rows(count, columns) * (CELL_HEIGHT + CELL_GAP))


def strip_row_labels(count: int, columns: int = STRIP_COLUMNS) -> List[RowLabel]:
    return [RowLabel(first_position=row * columns, x=STRIP_LEFT - 6,
                     y=row * (CELL_HEIGHT + CELL_GAP) + ROW_LABEL_BASELINE)
            for row in range(strip_rows(count, columns))]


def bar_segments(values: Sequence[int], width: float = BAR_WIDTH) -> List[Rect]:
    """Segments of a bar `width` long, one per value, to scale, left to right."""
    total = float(sum(values))
    segments, x = [], 0.0
    for value in values:
        length = width * value / total if total else 0.0
        segments.append(Rect(x=x, y=0, width=length, height=BAR_HEIGHT))
        x += length
    return segments


def segment_label_position(segment: Rect) -> Point:
    """Where a segment's label starts (left-aligned, vertically centred)."""
    return Point(segment.x + BAR_TEXT_INSET, segment.y + segment.height / 2.0 + 4.5)


def label_fits(text: str, segment_width: float) -> bool:
    """Whether `text` fits inside a segment, with its padding."""
    return segment_width >= CHARACTER_WIDTH * len(text) + LABEL_PADDING


@dataclass(frozen=True)
class Marker:
    """A vertical line across the bar at x, with a caption below it."""

    x: float
    line_bottom: float
    caption: Point
    anchor: str            # text-anchor of the caption: it grows away from the nearer end


def capacity_marker(on_chip: int, total: int, width: float = BAR_WIDTH) -> Optional[Marker]:
    """Where the on-chip capacity ends on the bar; None when there is nothing to scale."""
    if not total:
        return None
    x = width * on_chip / float(total)
    return Marker(x=x, line_bottom=BAR_HEIGHT + 6, caption=Point(x, BAR_HEIGHT + 18),
                  anchor="end" if x > width / 2.0 else "start")


def character_runs(values: Sequence[int], columns: int) -> List[int]:
    """Split `columns` characters among `values` to scale, summing exactly to `columns`
    (largest remainders first); a non-zero value too small for one character still gets one,
    taken from the longest run, so that nothing reported disappears from the bar."""
    total = sum(values)
    if not total:
        return [0 for _ in values]
    exact = [columns * value / float(total) for value in values]
    runs = [int(share) for share in exact]
    by_remainder = sorted(range(len(values)), key=lambda i: exact[i] - runs[i], reverse=True)
    for index in by_remainder[:columns - sum(runs)]:
        runs[index] += 1
    for index, value in enumerate(values):
        if value and not runs[index] and max(runs) > 1:
            runs[runs.index(max(runs))] -= 1
            runs[index] = 1
    return runs
