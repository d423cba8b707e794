"""The report's two drawings as model sections: the operator strip and the memory bar.

The strip has one cell per operator (in execution order when the compile result knows it, else
drawn from the operator table's counts), coloured by where it runs, with a letter per CPU
status; the memory bar splits the parameter memory lines to scale. Geometry comes from `svg`;
the Markdown report draws both as text rows from the same cells and runs.
"""
from __future__ import annotations

from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from edgetpu_analyzer.result import STATUS_MAPPED, CompileResult
from facenet_edgetpu.report import svg
from facenet_edgetpu.report.formats import DASH, percent, size
from facenet_edgetpu.report.model import (
    Cell, LegendEntry, Memory, MemorySegment, Strip, StripCell, Table, table)

CPU_LIST_OPEN_LIMIT = 25      # more CPU operators than this are listed folded (HTML)
TEXT_BAR_COLUMNS = 60         # characters of the memory bar in the Markdown report
# (kind, label, label inside the bar, character in the text bar)
MEMORY_LINES = (("on-chip-used", "On-chip used", "On-chip used", "#"),
                ("on-chip-remaining", "On-chip remaining", "On-chip remaining", "."),
                ("off-chip", "Off-chip (streamed)", "Off-chip", "="))
RUNS_ON_TEXT = {"edgetpu": "Edge TPU", "cpu": "CPU", "unknown": "status unknown"}
STRIP_CHARACTER_EDGETPU = "#"


def runs_on(status: Optional[str]) -> str:
    """Where an operator with this status runs; "unknown" when the status is not known."""
    if not status:
        return "unknown"
    return "edgetpu" if status == STATUS_MAPPED else "cpu"


# --------------------------------------------------------------------------------------------
# Operator strip
# --------------------------------------------------------------------------------------------

def strip_entries(result: CompileResult) -> Tuple[List[Tuple[int, str, str, str]], str]:
    """(operator index, operator, status, reason) per cell, and the order: "execution" when the
    result knows it, else "table" (cells drawn from the operator table's counts)."""
    if result.execution_order:
        return [(op.index, op.operator, op.status or "", op.reason or "")
                for op in result.execution_order], "execution"
    entries: List[Tuple[int, str, str, str]] = []
    for row in result.operators:
        entries.extend((len(entries), row.operator, row.status, "") for _ in range(row.count))
    return entries, "table"


def status_keys(statuses: Sequence[str]) -> Dict[str, str]:
    """A letter per CPU status, in order of first appearance (A, B, ..., then 27, 28, ...)."""
    keys: Dict[str, str] = {}
    for status in statuses:
        if runs_on(status) == "cpu" and status not in keys:
            keys[status] = chr(ord("A") + len(keys)) if len(keys) < 26 else str(len(keys) + 1)
    return keys


def _legend(cells: Sequence[StripCell], keys: Mapping[str, str]) -> List[LegendEntry]:
    def count(where: str, status: Optional[str] = None) -> int:
        return sum(1 for cell in cells if cell.runs_on == where
                   and (status is None or cell.status == status))
    legend = [LegendEntry("edgetpu", "", "Edge TPU", STATUS_MAPPED, count("edgetpu"))]
    legend += [LegendEntry("cpu", key, "CPU: " + status, status, count("cpu", status))
               for status, key in keys.items()]
    if count("unknown"):
        legend.append(LegendEntry("unknown", "?", "status unknown", "", count("unknown")))
    return legend


def _text_rows(cells: Sequence[StripCell], columns: int) -> List[str]:
    characters = [STRIP_CHARACTER_EDGETPU if cell.runs_on == "edgetpu" else cell.key
                  for cell in cells]
    width = len(str(max(0, len(cells) - 1) // columns * columns))
    return ["{:>{}} {}".format(start, width, "".join(characters[start:start + columns]))
            for start in range(0, len(cells), columns)]


def _cputable(result: CompileResult, cells: Sequence[StripCell], order: str,
               keys: Mapping[str, str]) -> Table:
    if order == "execution":
        reasons = {op.index: op.reason or DASH for op in result.execution_order}
        return table(["#", "operator", "status", "why"], [
            [Cell(str(cell.index)), Cell(cell.operator), Cell(cell.status, key=cell.key),
             Cell(reasons[cell.index])] for cell in cells if cell.runs_on == "cpu"],
            numeric=(0,), element_id="cpu-operators")
    return table(["operator", "count", "status"], [
        [Cell(row.operator), Cell(str(row.count)), Cell(row.status, key=keys[row.status])]
        for row in result.operators if runs_on(row.status) == "cpu"],
        numeric=(1,), element_id="cpu-operators")


def strip_section(result: CompileResult, columns: int = svg.STRIP_COLUMNS) -> Strip:
    entries, order = strip_entries(result)
    keys = status_keys([status for _, _, status, _ in entries])
    cells = [StripCell(
        position=position, index=index, operator=operator, status=status,
        runs_on=runs_on(status), key=keys.get(status, "?" if runs_on(status) == "unknown" else ""),
        tooltip="#{} {}: {}{}".format(index, operator, status or "status unknown",
                                       " \u2014 " + reason if reason else ""),
        rect=svg.strip_cell(position, columns),
        key_at=svg.cell_key_position(svg.strip_cell(position, columns)))
        for position, (index, operator, status, reason) in enumerate(entries)]
    on_cpu = sum(1 for cell in cells if cell.runs_on == "cpu")
    caption = ("One cell per operator of the main subgraph, in execution order, left to right, "
               "{} per row; the row labels count operators.".format(columns))
    warning = ""
    if order == "table":
        caption = "One cell per operator, {} per row, grouped by table row.".format(columns)
        warning = ("Execution order unknown: the compiler prints only the operator table, so "
                   "the cells are drawn from its counts, grouped by table row, not in execution "
                   "order.")
    return Strip(
        title="Operator strip", predicted=result.predicted, order=order, columns=columns,
        size=svg.strip_size(len(cells), columns), cells=cells,
        row_labels=svg.strip_row_labels(len(cells), columns), legend=_legend(cells, keys),
        caption=caption, order_warning=warning, text_rows=_text_rows(cells, columns),
        cpu_heading="Operators on the CPU ({})".format(on_cpu),
        cpu_table=_cputable(result, cells, order, keys) if on_cpu else None,
        cpu_open=on_cpu <= CPU_LIST_OPEN_LIMIT,
        empty_note="No operators to show{}.".format(
            ": the compiler refused the model" if result.fatal_error else ""))


# --------------------------------------------------------------------------------------------
# Memory bar
# --------------------------------------------------------------------------------------------

def memory_lines(result: CompileResult) -> Tuple[List[Optional[int]], bool]:
    """Bytes of the three memory lines (None: not printed), and whether "remaining" was derived
    as available - used (compiler 2.0 prints "available" instead of "remaining")."""
    used = result.on_chip_memory_used_bytes
    remaining = result.on_chip_memory_remaining_bytes
    available = result.on_chip_memory_available_bytes
    derived = False
    if remaining is None and available is not None and used is not None:
        remaining, derived = max(available - used, 0), True
    return [used, remaining, result.off_chip_memory_bytes], derived


def memory_section(result: CompileResult) -> Memory:
    values, derived = memory_lines(result)
    known = [value for value in values if value is not None]
    total = sum(known)
    rects = iter(svg.bar_segments(known))
    runs = iter(svg.character_runs(known, TEXT_BAR_COLUMNS))
    segments, text_bar = [], ""
    for (kind, label, short, character), value in zip(MEMORY_LINES, values):
        if kind == "on-chip-remaining" and derived:
            label += " (available \u2212 used)"
        rect = next(rects) if value is not None else None
        text_bar += character * next(runs) if value is not None else ""
        inside = "{} {}".format(short, size(value)) if value is not None else ""
        segments.append(MemorySegment(
            kind=kind, label=label, size_text=size(value) if value is not None else "not reported",
            bytes=value, share_text=percent(100.0 * value / total) if value is not None and total
            else "", character=character, rect=rect,
            inside_text=inside if rect is not None and svg.label_fits(inside, rect.width) else "",
            inside_at=svg.segment_label_position(rect) if rect is not None else None))
    used, remaining, off_chip = values
    capacity, caption = None, ""
    if used is not None and remaining is not None and off_chip:
        # Only worth a line when part of the parameters does not fit on chip.
        capacity = svg.capacity_marker(used + remaining, total)
        caption = "on-chip capacity {}".format(size(used + remaining))
    return Memory(
        title="Parameter memory", predicted=result.predicted, segments=segments,
        size=svg.Rect(0, 0, svg.BAR_WIDTH, svg.BAR_HEIGHT + svg.BAR_CAPTION_ROOM),
        bar_height=svg.BAR_HEIGHT, capacity=capacity, capacity_caption=caption,
        text_bar=text_bar,
        note="To scale. Parameters that do not fit in the Edge TPU's on-chip memory are streamed "
             "from host memory on every inference.{} Units as the compiler prints them.".format(
                 " These figures are estimates." if result.predicted else ""),
        empty_note="The compile result has no memory lines.")
