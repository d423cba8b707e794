"""One data structure for an Edge TPU compile result, real (parsed) or predicted.

`CompileResult` holds what `edgetpu_compiler` prints (version, model sizes, the three memory
lines, subgraph and operation counts, the "Operator / Count / Status" table) plus what only a
prediction knows (the operators in execution order with their status, notes on how approximate
the figures are) and, when the compiler refuses the model, its fatal error text.

Sizes are stored in bytes. Values parsed from compiler output come from two-decimal figures
such as "7.04MiB", so they are exact only to the printed precision.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Dict, Iterable, List, Optional, Tuple

# The per-operator statuses exactly as the compiler prints them
# (shared/reference/edgetpu-status-strings.txt beside the repository; facts sheet section 5).
STATUS_MAPPED = "Mapped to Edge TPU"
STATUS_MORE_THAN_ONE_SUBGRAPH = "More than one subgraph is not supported"
STATUS_OTHERWISE_SUPPORTED = (
    "Operation is otherwise supported, but not mapped due to some unspecified limitation")
STATUS_UNSUPPORTED_DATA_TYPE = "Operation is working on an unsupported data type"
STATUS_OPERATION_NOT_SUPPORTED = "Operation not supported"
STATUS_VERSION_NOT_SUPPORTED = "Operation version not supported"
STATUS_UNSUPPORTED_RANK = "Tensor has unsupported rank (up to 3 innermost dimensions mapped)"
STATUS_PARAM_NOT_CONSTANT = "Filter, bias, or other param is not constant at compile-time"
STATUS_TWO_D_OUTPUT = "For example, a fully-connected or softmax layer with 2D output"
STATUS_IMAGE_INTERPOLATION = "Image-interpolation layer won't run precisely enough on Edge TPU"

KNOWN_STATUSES = (
    STATUS_MAPPED,
    STATUS_MORE_THAN_ONE_SUBGRAPH,
    STATUS_OTHERWISE_SUPPORTED,
    STATUS_UNSUPPORTED_DATA_TYPE,
    STATUS_OPERATION_NOT_SUPPORTED,
    STATUS_VERSION_NOT_SUPPORTED,
    STATUS_UNSUPPORTED_RANK,
    STATUS_PARAM_NOT_CONSTANT,
    STATUS_TWO_D_OUTPUT,
    STATUS_IMAGE_INTERPOLATION,
)

# First line of every predicted artifact, so nobody mistakes a prediction for compiler output.
PREDICTION_MARKER = (
    "# PREDICTION by edgetpu_analyzer (facenet-edgetpu-pipeline), NOT edgetpu_compiler output: "
    "statuses follow the compiler's published rules; memory and output-size lines are estimates.")

RESULT_FORMAT = "edgetpu-compile-result/1"


@dataclass
class OperatorRow:
    """One row of the compiler's operator table; one operator may have several rows."""

    operator: str
    count: int
    status: str


@dataclass
class ExecutedOperator:
    """One operator of the main subgraph, in execution order (known for predictions)."""

    index: int
    operator: str
    version: Optional[int] = None
    status: Optional[str] = None
    reason: Optional[str] = None          # why it got its status, in words; None when mapped
    parameter_bytes: int = 0              # constant (weight/bias) bytes it reads


@dataclass
class CompileResult:
    """What one `edgetpu_compiler` run printed, or what this project predicts it would print."""

    compiler_version: str
    predicted: bool
    # What the caller asked a prediction to imitate ("16", "17", a full version); the release
    # actually imitated is compiler_version. None for real compiler output.
    requested_compiler_version: Optional[str] = None
    input_model: str = ""
    output_model: str = ""
    operation_log: str = ""
    input_size_bytes: Optional[int] = None
    output_size_bytes: Optional[int] = None
    compile_time_ms: Optional[int] = None
    min_runtime_version: Optional[int] = None
    on_chip_memory_used_bytes: Optional[int] = None
    on_chip_memory_remaining_bytes: Optional[int] = None
    # Only compiler 2.0 prints "On-chip memory available..." (instead of "remaining").
    on_chip_memory_available_bytes: Optional[int] = None
    off_chip_memory_bytes: Optional[int] = None
    edgetpu_subgraphs: Optional[int] = None
    total_operations: Optional[int] = None
    operations_on_edgetpu: Optional[int] = None
    operations_on_cpu: Optional[int] = None
    operators: List[OperatorRow] = field(default_factory=list)
    execution_order: List[ExecutedOperator] = field(default_factory=list)
    fatal_error: Optional[str] = None
    notes: List[str] = field(default_factory=list)

    @property
    def succeeded(self) -> bool:
        """False when the compiler refused (or would refuse) the model."""
        return self.fatal_error is None

    def mapped_fraction(self) -> float:
        """Share of operations mapped to the Edge TPU (0.0 for a refused or empty model)."""
        if not self.total_operations or self.operations_on_edgetpu is None:
            return 0.0
        return self.operations_on_edgetpu / float(self.total_operations)

    def cpu_rows(self) -> List[OperatorRow]:
        """Table rows whose operators run on the CPU."""
        return [row for row in self.operators if row.status != STATUS_MAPPED]

    def to_dict(self) -> Dict[str, Any]:
        data = asdict(self)
        data["format"] = RESULT_FORMAT
        data["mapped_fraction"] = round(self.mapped_fraction(), 6)
        return data

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> "CompileResult":
        """Rebuild a result from `to_dict()` output (unknown keys are ignored)."""
        if not isinstance(data, dict) or "compiler_version" not in data:
            raise ValueError("not a compile result: expected a mapping with 'compiler_version'")
        known = set(cls.__dataclass_fields__)
        values = {key: value for key, value in data.items() if key in known}
        values["operators"] = [OperatorRow(**row) for row in data.get("operators", [])]
        values["execution_order"] = [
            ExecutedOperator(**item) for item in data.get("execution_order", [])]
        values["notes"] = list(data.get("notes", []))
        return cls(**values)


def group_rows(operators_and_statuses: Iterable[Tuple[str, str]]) -> List[OperatorRow]:
    """Count (operator, status) pairs into table rows, in order of first appearance."""
    counts: Dict[Tuple[str, str], int] = {}
    for operator, status in operators_and_statuses:
        counts[(operator, status)] = counts.get((operator, status), 0) + 1
    return [OperatorRow(operator, count, status) for (operator, status), count in counts.items()]


_UNITS = (("MiB", 1024 * 1024), ("KiB", 1024), ("B", 1))


def format_size(num_bytes: int) -> str:
    """Bytes in the compiler's style: two decimals, binary units, "0.00B" for zero."""
    for unit, scale in _UNITS:
        if num_bytes >= scale or unit == "B":
            return "{:.2f}{}".format(num_bytes / float(scale), unit)
    raise AssertionError("unreachable")


def size_from_text(number: str, unit: str) -> int:
    """Bytes from a compiler figure such as ("7.04", "MiB")."""
    scales = dict(_UNITS)
    scales["GiB"] = 1024 ** 3
    return int(round(float(number) * scales[unit]))
