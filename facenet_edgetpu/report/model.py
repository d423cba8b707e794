"""The report's content as one dataclass tree, built once (`build.build_report`) and laid out by
both templates: every label, heading and figure either rendering shows comes from here, so
report.md and report.html cannot disagree.

Texts are final (formatted with `formats`); numbers that the templates place (SVG geometry)
come from `svg`. `predicted` on a section means its figures are a prediction, not compiler
output: both renderings then mark it PREDICTED.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional, Sequence

from facenet_edgetpu.report.svg import Marker, Point, Rect, RowLabel


@dataclass
class Column:
    label: str
    numeric: bool = False     # right-aligned


@dataclass
class Cell:
    text: str
    detail: str = ""          # secondary text, shown in parentheses
    style: str = ""           # how HTML shows it: "", "muted", "delta-up", "delta-down",
                              # "pill-edgetpu", "pill-cpu"
    key: str = ""             # a CPU status letter shown before the text
    predicted: bool = False   # marked PREDICTED


@dataclass
class Table:
    columns: List[Column]
    rows: List[List[Cell]]
    element_id: str = ""
    row_styles: List[str] = field(default_factory=list)   # per row: "", "cpu" or "total"


def table(labels: Sequence[str], rows: List[List[Cell]], numeric: Sequence[int] = (),
          element_id: str = "", row_styles: Sequence[str] = ()) -> Table:
    """A table whose columns listed in `numeric` (by index) are right-aligned."""
    return Table([Column(label, index in numeric) for index, label in enumerate(labels)],
                 rows, element_id, list(row_styles))


def texts(*values: object) -> List[Cell]:
    """A row of plain cells."""
    return [Cell(str(value)) for value in values]


@dataclass
class Fact:
    label: str
    value: str


@dataclass
class Card:
    label: str
    value: str
    detail: str


@dataclass
class Summary:
    title: str
    predicted: bool
    model_name: str
    compiler_version: str
    how: str                          # "compiled" or "predicted by edgetpu-predict"
    min_runtime_version: Optional[int]
    cards: List[Card]
    prediction_banner: str            # what a prediction is, "" for a real result
    prediction_notes: List[str]       # the predictor's own caveats
    fatal_error: Optional[str]
    fatal_verb: str                   # "did" or "would" (refuse the model)


@dataclass
class Sizes:
    title: str
    table: Table
    note: str


@dataclass
class Operators:
    title: str
    predicted: bool
    counts_line: str                  # "" when the compiler printed no counts
    table: Optional[Table]
    empty_note: str


@dataclass
class StripCell:
    position: int
    index: int                        # the operator's index in the model
    operator: str
    status: str
    runs_on: str                      # "edgetpu", "cpu" or "unknown"
    key: str                          # the status letter of a CPU cell, "?" when unknown
    tooltip: str
    rect: Rect
    key_at: Point


@dataclass
class LegendEntry:
    runs_on: str
    key: str
    label: str
    status: str
    count: int


@dataclass
class Strip:
    title: str
    predicted: bool
    order: str                        # "execution" or "table"
    columns: int
    size: Rect
    cells: List[StripCell]
    row_labels: List[RowLabel]
    legend: List[LegendEntry]
    caption: str
    order_warning: str                # set when the cells are not in execution order
    text_rows: List[str]              # the strip as text (Markdown)
    cpu_heading: str
    cpu_table: Optional[Table]
    cpu_open: bool                    # few enough CPU operators to list them unfolded
    empty_note: str


@dataclass
class MemorySegment:
    kind: str                         # "on-chip-used", "on-chip-remaining", "off-chip"
    label: str
    size_text: str
    bytes: Optional[int]
    share_text: str
    character: str                    # its character in the text bar
    rect: Optional[Rect]
    inside_text: str                  # the label drawn inside the segment, "" if it does not fit
    inside_at: Optional[Point]


@dataclass
class Memory:
    title: str
    predicted: bool
    segments: List[MemorySegment]     # every line, drawn or not
    size: Rect                        # the drawing, caption room included
    bar_height: float
    capacity: Optional[Marker]        # where the on-chip capacity ends
    capacity_caption: str
    text_bar: str                     # the bar as characters (Markdown), "" with no lines
    note: str
    empty_note: str


@dataclass
class Embeddings:
    data_uri: str                     # the PNG inline (HTML)
    link: str                         # the PNG relative to the Markdown file
    caption: str


@dataclass
class Fidelity:
    title: str
    note: str
    variants: Table
    agreement: Table
    counts: Table
    input_quantization: Table
    embeddings: Embeddings


@dataclass
class Quantization:
    title: str
    tensors: Table
    facts: List[Fact]
    operators: Table
    lambda_layers: Optional[Table]


@dataclass
class Section:
    title: str
    table: Table


@dataclass
class ReportModel:
    summary: Summary
    sizes: Sizes
    operators: Operators
    strip: Strip
    memory: Memory
    fidelity: Fidelity
    quantization: Quantization
    crops: Section
    toolchain: Section
