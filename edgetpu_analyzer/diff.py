"""Compare two Edge TPU compile results (real or predicted).

Pure functions, no I/O: `diff_results` turns two `CompileResult`s (and, when known, the
toolchains that produced them) into an `OplogDiff`; diff_render.py lays it out for a terminal,
a CI comment and scripts.

The operator table is compared row by row, keyed by (operator, status): the compiler prints
one row per pair, the same operator can appear under several statuses, and the row order is
not stable between runs (anchors.md, "Facts about the compiler log that matter for op-log
diffs"). Rows are therefore sorted by operator, then status.

Regression rule (`OplogDiff.regressions`), B compared with A:
  * B is refused by the compiler (fatal error) while A compiled;
  * both compiled and fewer operations run on the Edge TPU in B than in A
    ("Number of operations that will run on Edge TPU", or the "Mapped to Edge TPU" rows of
    the table when the summary line is absent), an absolute count, not a fraction;
  * both compiled and B's "Off-chip memory used for streaming uncached model parameters"
    is larger than A's (compared at the compiler's printed precision; skipped, with a note,
    when either side has no memory lines, as in a `.log` file).
The mirror images (A refused and B compiled, more operations mapped, less off-chip memory)
are improvements. Nothing else (compiler version, CPU count, on-chip use) is judged.

Example:
    difference = diff_results(result_a, result_b, toolchain_a, toolchain_b)
    print(diff_render.render_text(difference, "A", "B"))
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

from edgetpu_analyzer.result import STATUS_MAPPED, CompileResult, format_size

DIFF_FORMAT = "edgetpu-oplog-diff/1"

VERDICT_REGRESSION = "regression"
VERDICT_IMPROVEMENT = "improvement"
VERDICT_MIXED = "mixed"            # regressions and improvements at once
VERDICT_UNCHANGED = "unchanged"    # nothing differs
VERDICT_CHANGED = "changed"        # something differs, but nothing the rule judges

# (CompileResult attribute, label as the compiler words it, kind of value).
FieldSpec = Tuple[str, str, str]
OPERATION_FIELDS: Tuple[FieldSpec, ...] = (
    ("total_operations", "total operations", "count"),
    ("operations_on_edgetpu", "operations on Edge TPU", "count"),
    ("operations_on_cpu", "operations on CPU", "count"),
    ("edgetpu_subgraphs", "Edge TPU subgraphs", "count"),
)
MEMORY_FIELDS: Tuple[FieldSpec, ...] = (
    ("on_chip_memory_used_bytes", "on-chip memory used", "bytes"),
    ("on_chip_memory_remaining_bytes", "on-chip memory remaining", "bytes"),
    # Only compiler 2.0 prints "available" (instead of "remaining"); shown only when present.
    ("on_chip_memory_available_bytes", "on-chip memory available", "bytes"),
    ("off_chip_memory_bytes", "off-chip memory used", "bytes"),
)
SIZE_FIELDS: Tuple[FieldSpec, ...] = (
    ("input_size_bytes", "input model size", "bytes"),
    ("output_size_bytes", "output model size", "bytes"),
)


@dataclass
class ValueChange:
    """One summary figure on both sides; None where a side does not have it."""

    name: str
    label: str
    unit: str                      # "count" or "bytes"
    a: Optional[int]
    b: Optional[int]

    @property
    def change(self) -> Optional[int]:
        if self.a is None or self.b is None:
            return None
        return self.b - self.a

    @property
    def changed(self) -> bool:
        # A figure one side does not print (an operation log has no memory lines) is not a
        # change; `change` is None for it.
        return self.change is not None and self.change != 0

    def to_dict(self) -> Dict[str, Any]:
        return {"label": self.label, "unit": self.unit, "a": self.a, "b": self.b,
                "change": self.change, "changed": self.changed}


@dataclass
class RowChange:
    """One (operator, status) row of the operator table; 0 where a side has no such row."""

    operator: str
    status: str
    a: int
    b: int

    @property
    def change(self) -> int:
        return self.b - self.a

    def to_dict(self) -> Dict[str, Any]:
        return {"operator": self.operator, "status": self.status, "a": self.a, "b": self.b,
                "change": self.change, "changed": self.change != 0}


@dataclass
class StatusMove:
    """`count` operations of `operator` that left `from_status` for `to_status`."""

    operator: str
    count: int
    from_status: str
    to_status: str


@dataclass
class Finding:
    """One regression or improvement: which part of the rule, and what happened."""

    rule: str          # "refused", "fewer_mapped", "off_chip_grew" (or their improvements)
    message: str


@dataclass
class SideSummary:
    """What identifies one side: compiler, real or predicted, compiled or refused."""

    compiler_version: str
    predicted: bool
    succeeded: bool
    fatal_error: Optional[str]
    toolchain: Optional[Dict[str, str]]


@dataclass
class OplogDiff:
    """Everything `oplog-diff` reports about B compared with A."""

    a: SideSummary
    b: SideSummary
    operations: List[ValueChange]
    memory: List[ValueChange]
    sizes: List[ValueChange]
    rows: List[RowChange]
    status_moves: List[StatusMove]
    toolchain_changes: List[Tuple[str, Optional[str], Optional[str]]]
    toolchain_compared: bool
    regressions: List[Finding] = field(default_factory=list)
    improvements: List[Finding] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)

    @property
    def compiler_changed(self) -> bool:
        return (self.a.compiler_version != self.b.compiler_version
                or self.a.predicted != self.b.predicted)

    @property
    def verdict(self) -> str:
        if self.regressions:
            return VERDICT_MIXED if self.improvements else VERDICT_REGRESSION
        if self.improvements:
            return VERDICT_IMPROVEMENT
        differs = (self.compiler_changed or self.a.succeeded != self.b.succeeded
                   or self.toolchain_changes
                   or any(value.changed for value in self.operations + self.memory + self.sizes)
                   or any(row.change for row in self.rows))
        return VERDICT_CHANGED if differs else VERDICT_UNCHANGED

    def to_dict(self) -> Dict[str, Any]:
        """A JSON-ready structure; dump it with sort_keys for a stable layout."""
        return {
            "format": DIFF_FORMAT,
            "verdict": self.verdict,
            "regression": bool(self.regressions),
            "a": asdict(self.a),
            "b": asdict(self.b),
            "compiler": {
                "version": {"a": self.a.compiler_version, "b": self.b.compiler_version,
                            "changed": self.a.compiler_version != self.b.compiler_version},
                "predicted": {"a": self.a.predicted, "b": self.b.predicted,
                              "changed": self.a.predicted != self.b.predicted},
                "succeeded": {"a": self.a.succeeded, "b": self.b.succeeded,
                              "changed": self.a.succeeded != self.b.succeeded},
            },
            "operations": {value.name: value.to_dict() for value in self.operations},
            "memory": {value.name: value.to_dict() for value in self.memory},
            "sizes": {value.name: value.to_dict() for value in self.sizes},
            "rows": [row.to_dict() for row in self.rows],
            "status_moves": [asdict(move) for move in self.status_moves],
            "toolchain": {
                "compared": self.toolchain_compared,
                "changes": [{"key": key, "a": before, "b": after}
                            for key, before, after in self.toolchain_changes],
            },
            "regressions": [asdict(finding) for finding in self.regressions],
            "improvements": [asdict(finding) for finding in self.improvements],
            "notes": list(self.notes),
        }


# --- computing the diff ---------------------------------------------------------------------

def row_counts(result: CompileResult) -> Dict[Tuple[str, str], int]:
    """Operations per (operator, status); rows repeated in a table are added up."""
    counts: Dict[Tuple[str, str], int] = {}
    for row in result.operators:
        key = (row.operator, row.status)
        counts[key] = counts.get(key, 0) + row.count
    return counts


def diff_rows(a: CompileResult, b: CompileResult) -> List[RowChange]:
    """Every (operator, status) row of either side, sorted by operator then status."""
    counts_a, counts_b = row_counts(a), row_counts(b)
    return [RowChange(operator, status, counts_a.get((operator, status), 0),
                      counts_b.get((operator, status), 0))
            for operator, status in sorted(set(counts_a) | set(counts_b))]


def status_moves(rows: List[RowChange]) -> List[StatusMove]:
    """Operations of one operator that left one status and turned up under another.

    The table only has counts, so a move is inferred: when an operator has fewer operations
    under some statuses and more under others, min(lost, gained) of them are taken to have
    moved; the rest were removed or added. With several losing and gaining statuses the log
    cannot tell which went where, so they are paired in sorted status order.
    """
    by_operator: Dict[str, List[RowChange]] = {}
    for row in rows:
        by_operator.setdefault(row.operator, []).append(row)
    moves: List[StatusMove] = []
    for operator in sorted(by_operator):
        losing = [row for row in by_operator[operator] if row.change < 0]
        gaining = [row for row in by_operator[operator] if row.change > 0]
        # Operations of each losing / gaining row not yet paired with a move.
        unpaired_lost = [-row.change for row in losing]
        unpaired_gained = [row.change for row in gaining]
        loss_index = gain_index = 0
        while loss_index < len(losing) and gain_index < len(gaining):
            moved = min(unpaired_lost[loss_index], unpaired_gained[gain_index])
            moves.append(StatusMove(operator, moved, losing[loss_index].status,
                                    gaining[gain_index].status))
            unpaired_lost[loss_index] -= moved
            unpaired_gained[gain_index] -= moved
            if unpaired_lost[loss_index] == 0:
                loss_index += 1
            if unpaired_gained[gain_index] == 0:
                gain_index += 1
    return moves


def mapped_operations(result: CompileResult) -> Optional[int]:
    """Operations on the Edge TPU: the summary line, else the table's mapped rows."""
    if result.operations_on_edgetpu is not None:
        return result.operations_on_edgetpu
    if result.operators:
        return sum(row.count for row in result.operators if row.status == STATUS_MAPPED)
    return None


def _values(fields: Sequence[FieldSpec], a: CompileResult, b: CompileResult,
            always: bool = True) -> List[ValueChange]:
    values = []
    for name, label, unit in fields:
        value_a, value_b = getattr(a, name), getattr(b, name)
        if always or value_a is not None or value_b is not None:
            values.append(ValueChange(name, label, unit, value_a, value_b))
    return values


def _operation_values(a: CompileResult, b: CompileResult) -> List[ValueChange]:
    values = _values(OPERATION_FIELDS, a, b)
    for value in values:
        # The summary omits the Edge TPU count when everything maps; the table still has it.
        if value.name == "operations_on_edgetpu":
            value.a, value.b = mapped_operations(a), mapped_operations(b)
    return values


def _memory_values(a: CompileResult, b: CompileResult) -> List[ValueChange]:
    values = []
    for name, label, unit in MEMORY_FIELDS:
        optional = name == "on_chip_memory_available_bytes"
        value_a, value_b = getattr(a, name), getattr(b, name)
        if optional and value_a is None and value_b is None:
            continue
        if (name == "on_chip_memory_remaining_bytes" and value_a is None and value_b is None
                and (a.on_chip_memory_available_bytes is not None
                     or b.on_chip_memory_available_bytes is not None)):
            continue  # both sides are compiler 2.0, which prints "available" instead
        values.append(ValueChange(name, label, unit, value_a, value_b))
    return values


def toolchain_changes(toolchain_a: Optional[Dict[str, Any]], toolchain_b: Optional[Dict[str, Any]]
                      ) -> List[Tuple[str, Optional[str], Optional[str]]]:
    """(key, A's value, B's value) for every key that differs; None where a side lacks it."""
    if toolchain_a is None or toolchain_b is None:
        return []
    changes = []
    for key in sorted(set(toolchain_a) | set(toolchain_b)):
        before, after = toolchain_a.get(key), toolchain_b.get(key)
        if before != after:
            changes.append((key, None if before is None else str(before),
                            None if after is None else str(after)))
    return changes


def _judge(difference: OplogDiff, a: CompileResult, b: CompileResult) -> None:
    """Fill regressions, improvements and notes by the rule in the module docstring."""
    if a.succeeded and not b.succeeded:
        difference.regressions.append(Finding(
            "refused", "B was refused by the compiler while A compiled: {}".format(
                fatal_summary(b.fatal_error))))
        return
    if b.succeeded and not a.succeeded:
        difference.improvements.append(Finding(
            "compiled", "B compiled while A was refused by the compiler: {}".format(
                fatal_summary(a.fatal_error))))
        return
    if not a.succeeded and not b.succeeded:
        difference.notes.append("both sides were refused by the compiler; nothing to compare")
        return

    mapped_a, mapped_b = mapped_operations(a), mapped_operations(b)
    if mapped_a is None or mapped_b is None:
        difference.notes.append("operations on the Edge TPU not compared: unknown for {}".format(
            sides_lacking(mapped_a, mapped_b)))
    elif mapped_b < mapped_a:
        difference.regressions.append(Finding(
            "fewer_mapped", "fewer operations mapped to the Edge TPU: {} -> {} ({})".format(
                mapped_a, mapped_b, signed(mapped_b - mapped_a))))
    elif mapped_b > mapped_a:
        difference.improvements.append(Finding(
            "more_mapped", "more operations mapped to the Edge TPU: {} -> {} ({})".format(
                mapped_a, mapped_b, signed(mapped_b - mapped_a))))

    off_a, off_b = a.off_chip_memory_bytes, b.off_chip_memory_bytes
    if off_a is None or off_b is None:
        difference.notes.append(
            "off-chip memory not compared: unknown for {} (an operation log has no memory "
            "lines)".format(sides_lacking(off_a, off_b)))
    elif off_b > off_a:
        difference.regressions.append(Finding(
            "off_chip_grew", "off-chip memory grew: {} -> {} ({})".format(
                format_size(off_a), format_size(off_b), signed_size(off_b - off_a))))
    elif off_b < off_a:
        difference.improvements.append(Finding(
            "off_chip_shrank", "off-chip memory shrank: {} -> {} ({})".format(
                format_size(off_a), format_size(off_b), signed_size(off_b - off_a))))


def diff_results(a: CompileResult, b: CompileResult,
                 toolchain_a: Optional[Dict[str, Any]] = None,
                 toolchain_b: Optional[Dict[str, Any]] = None) -> OplogDiff:
    """B compared with A: table rows, status moves, summary figures, verdict."""
    tableless = [side for side, result in (("A", a), ("B", b))
                 if result.succeeded and not result.operators and result.total_operations]
    # Stdout without --show_operations has no table; comparing it would list every row of the
    # other side as removed or added.
    rows = [] if tableless else diff_rows(a, b)
    difference = OplogDiff(
        a=_side(a, toolchain_a), b=_side(b, toolchain_b),
        operations=_operation_values(a, b), memory=_memory_values(a, b),
        sizes=_values(SIZE_FIELDS, a, b, always=False),
        rows=rows, status_moves=status_moves(rows),
        toolchain_changes=toolchain_changes(toolchain_a, toolchain_b),
        toolchain_compared=toolchain_a is not None and toolchain_b is not None)
    _judge(difference, a, b)
    if tableless:
        difference.notes.append(
            "operator rows not compared: no operator table for {} (compiler stdout without "
            "--show_operations; its .log file has the table)".format(" and ".join(tableless)))
    if a.compiler_version != b.compiler_version:
        difference.notes.append("compiler version changed: {} -> {}".format(
            a.compiler_version, b.compiler_version))
    model_a, model_b = _model_name(a.input_model), _model_name(b.input_model)
    if model_a and model_b and model_a != model_b:
        # Counts are compared as absolute numbers, which only means something for one model.
        difference.notes.append("A and B compiled different models: {} and {}".format(
            model_a, model_b))
    if a.predicted != b.predicted:
        difference.notes.append(
            "one side is a prediction and the other real compiler output: differences may come "
            "from the prediction, not from the model")
    if not difference.toolchain_compared and (toolchain_a is not None or toolchain_b is not None):
        difference.notes.append("toolchain not compared: known only for {}".format(
            "A" if toolchain_a is not None else "B"))
    # The results' own notes (e.g. how approximate a prediction is), once when both share them.
    for note in a.notes:
        difference.notes.append(("A and B: " if note in b.notes else "A: ") + note)
    difference.notes.extend("B: " + note for note in b.notes if note not in a.notes)
    return difference


def _model_name(path: str) -> str:
    # Paths differ between machines (/content/models/x.tflite vs x.tflite); names do not.
    return path.replace("\\", "/").rsplit("/", 1)[-1]


def _side(result: CompileResult, toolchain: Optional[Dict[str, Any]]) -> SideSummary:
    return SideSummary(
        compiler_version=result.compiler_version, predicted=result.predicted,
        succeeded=result.succeeded, fatal_error=result.fatal_error,
        toolchain=None if toolchain is None else {
            str(key): str(value) for key, value in sorted(toolchain.items())})


def fatal_summary(text: Optional[str]) -> str:
    """A fatal error on one line: the compiler spreads it over several lines, and the most
    telling one (e.g. "...due to large activation tensors") is often not the first."""
    lines = [line.strip() for line in (text or "").split("\n") if line.strip()]
    telling = [line for line in lines if line != "Compilation failed!"] or lines
    return " / ".join(telling)


def sides_lacking(value_a: object, value_b: object) -> str:
    return " and ".join(side for side, value in (("A", value_a), ("B", value_b))
                        if value is None)


def signed(number: int) -> str:
    return "{:+d}".format(number) if number else "0"


def signed_size(number: int) -> str:
    if not number:
        return "0"
    return ("+" if number > 0 else "-") + format_size(abs(number))
