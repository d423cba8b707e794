"""Lay out an OplogDiff (edgetpu_analyzer/diff.py) for a terminal (`render_text`), a CI comment
(`render_markdown`) and scripts (`render_json`). Pure functions, no I/O."""
from __future__ import annotations

import json
from typing import List, Optional, Tuple

from edgetpu_analyzer.diff import (
    VERDICT_IMPROVEMENT, VERDICT_MIXED, VERDICT_REGRESSION, OplogDiff, RowChange, SideSummary,
    StatusMove, ValueChange, fatal_summary, sides_lacking, signed, signed_size)
from edgetpu_analyzer.result import format_size


def _cell(value: Optional[int], unit: str) -> str:
    if value is None:
        return "n/a"
    return format_size(value) if unit == "bytes" else str(value)


def _change_cell(value: ValueChange) -> str:
    if value.change is None:
        return "n/a"
    return signed_size(value.change) if value.unit == "bytes" else signed(value.change)


def _output_kind(side: SideSummary) -> str:
    kind = "predicted" if side.predicted else "real"
    outcome = "compiled" if side.succeeded else "refused"
    return "{}, {}".format(kind, outcome)


def _headline(difference: OplogDiff) -> str:
    findings = difference.regressions + difference.improvements
    details = "; ".join(finding.message for finding in findings)
    return difference.verdict + (" - " + details if details else "")


def _aligned(rows: List[List[str]], right: Tuple[int, ...] = (), indent: str = "  ") -> List[str]:
    """Columns padded to their widest cell; the columns listed in `right` right-aligned."""
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = [cell.rjust(widths[column]) if column in right else cell.ljust(widths[column])
                 for column, cell in enumerate(row)]
        lines.append((indent + "  ".join(cells)).rstrip())
    return lines


def _changed_rows(difference: OplogDiff, all_rows: bool) -> List[RowChange]:
    return [row for row in difference.rows if all_rows or row.change]


def _describe_move(move: StatusMove) -> str:
    return '{}: {} moved from "{}" to "{}"'.format(
        move.operator, move.count, move.from_status, move.to_status)


def render_text(difference: OplogDiff, description_a: str = "A", description_b: str = "B",
                all_rows: bool = False) -> str:
    """Plain text with aligned columns for a terminal."""
    lines = ["A: " + description_a, "B: " + description_b,
             "Verdict: " + _headline(difference), ""]

    lines.append("Compiler")
    lines += _aligned([["", "A", "B"],
                       ["version", difference.a.compiler_version, difference.b.compiler_version],
                       ["output", _output_kind(difference.a), _output_kind(difference.b)]])
    for side, summary in (("A", difference.a), ("B", difference.b)):
        if summary.fatal_error:
            lines.append("  {} refused: {}".format(side, fatal_summary(summary.fatal_error)))
    lines.append("")

    for title, values in (("Operations", difference.operations), ("Memory", difference.memory),
                          ("Model sizes", difference.sizes)):
        if not values:
            continue
        table = [[title, "A", "B", "change"]]
        table += [[value.label, _cell(value.a, value.unit), _cell(value.b, value.unit),
                   _change_cell(value)] for value in values]
        lines += _aligned(table, right=(1, 2, 3), indent="")
        lines.append("")

    rows = _changed_rows(difference, all_rows)
    unchanged = len(difference.rows) - len([row for row in difference.rows if row.change])
    title = "Operator table ({} rows{})".format(
        "all" if all_rows else "changed",
        "" if all_rows or not unchanged else "; {} unchanged not shown".format(unchanged))
    lines.append(title)
    if rows:
        table = [["Operator", "A", "B", "change", "Status"]]
        table += [[row.operator, str(row.a), str(row.b), signed(row.change), row.status]
                  for row in rows]
        lines += _aligned(table, right=(1, 2, 3))
    else:
        lines.append("  (no differences)")
    lines.append("")

    lines.append("Status changes")
    if difference.status_moves:
        lines += ["  " + _describe_move(move) for move in difference.status_moves]
    else:
        lines.append("  (none)")
    lines.append("")

    lines.append("Toolchain")
    if not difference.toolchain_compared:
        lines.append("  (not compared: {})".format(_toolchain_absence(difference)))
    elif difference.toolchain_changes:
        table = [["key", "A", "B"]]
        table += [[key, _absent(before), _absent(after)]
                  for key, before, after in difference.toolchain_changes]
        lines += _aligned(table)
    else:
        lines.append("  (unchanged)")

    if difference.notes:
        lines.append("")
        lines.append("Notes")
        lines += ["  - " + note for note in difference.notes]
    return "\n".join(lines) + "\n"


def _absent(value: Optional[str]) -> str:
    return "(absent)" if value is None else value


def _toolchain_absence(difference: OplogDiff) -> str:
    missing = sides_lacking(difference.a.toolchain, difference.b.toolchain)
    return "no toolchain recorded for " + missing


def _markdown_table(header: List[str], rows: List[List[str]]) -> List[str]:
    def escape(cell: str) -> str:
        return cell.replace("|", "\\|")
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(escape(cell) for cell in row) + " |" for row in rows]
    return lines


def render_markdown(difference: OplogDiff, description_a: str = "A", description_b: str = "B",
                    all_rows: bool = False) -> str:
    """GitHub-flavoured Markdown tables, for a CI comment."""
    icon = {VERDICT_REGRESSION: ":x:", VERDICT_MIXED: ":warning:",
            VERDICT_IMPROVEMENT: ":white_check_mark:"}.get(difference.verdict, "")
    lines = ["### Edge TPU operator-log diff", "",
             "- **A:** " + description_a, "- **B:** " + description_b,
             "- **Verdict:** {}{}".format(icon + " " if icon else "", difference.verdict)]
    lines += ["  - regression: " + finding.message for finding in difference.regressions]
    lines += ["  - improvement: " + finding.message for finding in difference.improvements]
    lines.append("")

    compiler_rows = [["version", difference.a.compiler_version, difference.b.compiler_version],
                     ["output", _output_kind(difference.a), _output_kind(difference.b)]]
    if difference.a.fatal_error or difference.b.fatal_error:
        compiler_rows.append(["refusal"] + [
            "`{}`".format(fatal_summary(side.fatal_error)) if side.fatal_error else ""
            for side in (difference.a, difference.b)])
    lines += _markdown_table(["compiler", "A", "B"], compiler_rows)
    lines.append("")

    summary_rows = []
    for values in (difference.operations, difference.memory, difference.sizes):
        summary_rows += [[value.label, _cell(value.a, value.unit), _cell(value.b, value.unit),
                          _change_cell(value)] for value in values]
    lines += _markdown_table(["figure", "A", "B", "change"], summary_rows)
    lines.append("")

    rows = _changed_rows(difference, all_rows)
    lines.append("#### Operator table ({} rows)".format("all" if all_rows else "changed"))
    lines.append("")
    if rows:
        lines += _markdown_table(
            ["operator", "status", "A", "B", "change"],
            [["`{}`".format(row.operator), row.status, str(row.a), str(row.b),
              signed(row.change)] for row in rows])
    else:
        lines.append("No differences.")
    lines.append("")

    if difference.status_moves:
        lines.append("#### Status changes")
        lines.append("")
        lines += _markdown_table(
            ["operator", "count", "from", "to"],
            [["`{}`".format(move.operator), str(move.count), move.from_status, move.to_status]
             for move in difference.status_moves])
        lines.append("")

    lines.append("#### Toolchain")
    lines.append("")
    if not difference.toolchain_compared:
        lines.append("Not compared: {}.".format(_toolchain_absence(difference)))
    elif difference.toolchain_changes:
        lines += _markdown_table(["key", "A", "B"], [
            [key, _absent(before), _absent(after)]
            for key, before, after in difference.toolchain_changes])
    else:
        lines.append("Unchanged.")

    if difference.notes:
        lines += ["", "#### Notes", ""]
        lines += ["- " + note for note in difference.notes]
    return "\n".join(lines) + "\n"


def render_json(difference: OplogDiff, description_a: str = "A", description_b: str = "B") -> str:
    """The `to_dict()` structure (every row) with the inputs' descriptions, sorted keys."""
    data = difference.to_dict()
    data["a"]["source"] = description_a
    data["b"]["source"] = description_b
    return json.dumps(data, indent=2, sort_keys=True) + "\n"
