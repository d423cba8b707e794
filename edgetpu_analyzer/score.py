"""Score the predictor against real compiler output: `edgetpu-predict --score DIR`.

DIR is a corpus of (input model, real compiler output) pairs laid out like this:

    DIR/manifest.json   a list of pairs (or {"pairs": [...]}), each with
                          "id", "model_file", "log_file" (paths relative to DIR),
                          optional "compiler_version" (else the log's version line),
                          optional "compiler_flags" (e.g. ["-a", "-m", "12"]) and
                          optional "compiled_model_check": {"edgetpu_custom_ops": N}
    DIR/models/...      the input .tflite files
    DIR/logs/...        the compiler's operation log (`*_edgetpu.log`) or its stdout

For every pair the model is predicted with the pair's compiler version and flags, and the
prediction's `(operator, status) -> count` table is compared with the real one; where the real
output has the memory lines (compiler stdout), on-chip used and off-chip memory are compared
too. The summary gives `exact N/M` and the memory error distribution.

Flags are part of the input, but corpora rarely record them. `-a` (several Edge TPU subgraphs
allowed) is taken, first match wins, from the pair's "compiler_flags"; from the compiled model
holding more than one `edgetpu-custom-op`; or from the real table itself when it proves two
Edge TPU regions: an operator type that is mapped everywhere consumes, through an operator type
that runs on the CPU everywhere, the output of a mapped one, which one Edge TPU custom op
cannot do (the inference never looks at the prediction). Otherwise the default (no `-a`).
"""
from __future__ import annotations

import json
import os
import statistics
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Set, Tuple

from edgetpu_analyzer.diff import row_counts
from edgetpu_analyzer.predict import predict
from edgetpu_analyzer.result import STATUS_MAPPED, STATUS_MORE_THAN_ONE_SUBGRAPH, CompileResult
from edgetpu_analyzer.result_sources import InputError, parse_result_text
from edgetpu_analyzer.tflite_reader import ModelInfo, ModelReadError, read_model

MANIFEST = "manifest.json"
MEMORY_TOLERANCE = 0.05         # the goal: memory lines within 5 % of the real figures
MEMORY_FIELDS = (("on-chip used", "on_chip_memory_used_bytes"),
                 ("off-chip", "off_chip_memory_bytes"))

FLAGS_FROM_MANIFEST = "compiler_flags in the manifest"
FLAGS_FROM_COMPILED_MODEL = "the compiled model holds {} edgetpu-custom-ops"
FLAGS_FROM_LOG = "the real table needs several Edge TPU regions"
FLAGS_DEFAULT = "default flags"

Table = Dict[Tuple[str, str], int]


class CorpusError(ValueError):
    """The corpus directory or its manifest cannot be used; the message is one line."""


@dataclass(frozen=True)
class CompileFlags:
    """The compiler flags that change the operator table."""

    multiple_subgraphs: bool = False          # -a / --enable_multiple_subgraphs
    min_runtime_version: Optional[int] = None  # -m / --min_runtime_version


@dataclass
class CorpusPair:
    pair_id: str
    model_path: str
    log_path: str
    compiler_version: Optional[str]
    flags: Optional[CompileFlags]             # None: not recorded, decided when scoring
    compiled_custom_ops: Optional[int]


@dataclass
class MemoryComparison:
    line: str
    predicted: int
    real: int

    @property
    def relative_error(self) -> Optional[float]:
        """(predicted - real) / real; None when the real figure is 0 (then exact or not)."""
        if self.real == 0:
            return None
        return (self.predicted - self.real) / float(self.real)

    @property
    def within_tolerance(self) -> bool:
        error = self.relative_error
        return self.predicted == 0 if error is None else abs(error) <= MEMORY_TOLERANCE


@dataclass
class PairScore:
    pair_id: str
    compiler_version: str = ""        # the version the pair was compiled with
    imitated_version: str = ""        # the release the prediction imitated
    flags: CompileFlags = field(default_factory=CompileFlags)
    flags_source: str = FLAGS_DEFAULT
    exact: bool = False
    differences: List[Tuple[str, str, int, int]] = field(default_factory=list)
    memory: List[MemoryComparison] = field(default_factory=list)
    error: Optional[str] = None       # why no comparison could be made

    def to_dict(self) -> Dict[str, Any]:
        return {
            "id": self.pair_id, "compiler_version": self.compiler_version,
            "imitated_version": self.imitated_version, "exact": self.exact,
            "multiple_subgraphs": self.flags.multiple_subgraphs,
            "min_runtime_version": self.flags.min_runtime_version,
            "flags_source": self.flags_source, "error": self.error,
            "differences": [{"operator": op, "status": status, "real": real,
                             "predicted": predicted}
                            for op, status, real, predicted in self.differences],
            "memory": [{"line": item.line, "real": item.real, "predicted": item.predicted,
                        "relative_error": item.relative_error} for item in self.memory],
        }


@dataclass
class CorpusScore:
    directory: str
    pairs: List[PairScore]

    @property
    def exact(self) -> int:
        return sum(1 for pair in self.pairs if pair.exact)

    @property
    def fraction(self) -> float:
        return self.exact / float(len(self.pairs)) if self.pairs else 0.0

    def memory_comparisons(self) -> List[MemoryComparison]:
        return [item for pair in self.pairs for item in pair.memory]

    def memory_summary(self) -> Dict[str, Any]:
        """Per memory line: how many pairs have it, how many are within 5 %, and the median
        and largest relative error."""
        summary: Dict[str, Any] = {}
        for line, _ in MEMORY_FIELDS:
            items = [item for item in self.memory_comparisons() if item.line == line]
            errors = [abs(item.relative_error) for item in items
                      if item.relative_error is not None]
            summary[line] = {
                "pairs": len(items),
                "within_5_percent": sum(1 for item in items if item.within_tolerance),
                "median_abs_relative_error": statistics.median(errors) if errors else None,
                "max_abs_relative_error": max(errors) if errors else None,
            }
        return summary

    def to_dict(self) -> Dict[str, Any]:
        return {"directory": self.directory, "exact": self.exact, "pairs": len(self.pairs),
                "exact_fraction": round(self.fraction, 6), "memory": self.memory_summary(),
                "results": [pair.to_dict() for pair in self.pairs]}


# --- reading the corpus ---------------------------------------------------------------------

def _flags_from_list(flags: Sequence[str], where: str) -> CompileFlags:
    """CompileFlags from command-line words such as ["-a", "-m", "12"]."""
    multiple, runtime = False, None
    words = list(flags)
    for index, word in enumerate(words):
        if word in ("-a", "--enable_multiple_subgraphs"):
            multiple = True
        elif word in ("-m", "--min_runtime_version") or word.startswith("--min_runtime_version="):
            value = word.split("=", 1)[1] if "=" in word else (
                words[index + 1] if index + 1 < len(words) else "")
            if not value.isdigit():
                raise CorpusError("{}: {} needs a runtime number, got {!r}".format(
                    where, word, value))
            runtime = int(value)
    return CompileFlags(multiple, runtime)


def _pair_from_entry(directory: str, entry: Any, number: int) -> CorpusPair:
    where = "{} entry {}".format(os.path.join(directory, MANIFEST), number)
    if not isinstance(entry, dict):
        raise CorpusError("{} is not an object".format(where))
    for key in ("model_file", "log_file"):
        if not isinstance(entry.get(key), str):
            raise CorpusError("{} has no {!r} path".format(where, key))
    flags = entry.get("compiler_flags")
    if flags is not None and not (isinstance(flags, list)
                                  and all(isinstance(word, str) for word in flags)):
        raise CorpusError("{}: compiler_flags must be a list of strings".format(where))
    check = entry.get("compiled_model_check")
    custom_ops = check.get("edgetpu_custom_ops") if isinstance(check, dict) else None
    version = entry.get("compiler_version")
    return CorpusPair(
        pair_id=str(entry.get("id", number)),
        model_path=os.path.join(directory, entry["model_file"]),
        log_path=os.path.join(directory, entry["log_file"]),
        compiler_version=str(version) if version else None,
        flags=None if flags is None else _flags_from_list(flags, where),
        compiled_custom_ops=custom_ops if isinstance(custom_ops, int) else None)


def load_corpus(directory: str) -> List[CorpusPair]:
    """The pairs listed in DIR/manifest.json (CorpusError when it is missing or malformed)."""
    path = os.path.join(directory, MANIFEST)
    if not os.path.isdir(directory):
        raise CorpusError("{}: no such corpus directory".format(directory))
    try:
        with open(path, "r", encoding="utf-8") as handle:
            manifest = json.load(handle)
    except OSError as error:
        raise CorpusError("{}: cannot read the manifest: {}".format(
            path, error.strerror or error)) from error
    except ValueError as error:
        raise CorpusError("{}: not valid JSON ({})".format(
            path, str(error).splitlines()[0])) from error
    entries = manifest.get("pairs") if isinstance(manifest, dict) else manifest
    if not isinstance(entries, list) or not entries:
        raise CorpusError("{}: expected a non-empty list of pairs (or {{\"pairs\": [...]}})"
                          .format(path))
    return [_pair_from_entry(directory, entry, number)
            for number, entry in enumerate(entries, 1)]


def read_real_output(path: str) -> CompileResult:
    """The real compile result in a compiler stdout or operation log file."""
    try:
        with open(path, "r", encoding="utf-8") as handle:
            text = handle.read()
        return parse_result_text(text, path)[0]
    except (OSError, UnicodeDecodeError) as error:
        raise CorpusError("{}: cannot read the compiler output: {}".format(path, error)) from error
    except InputError as error:
        raise CorpusError(str(error)) from error


# --- which flags the real compilation used ----------------------------------------------------

def _types_with_one_status(model: ModelInfo, table: Table) -> Dict[str, str]:
    """Operator type -> status, for types the table gives a single status for all instances."""
    present: Dict[str, int] = {}
    for op in model.operators:
        present[op.name] = present.get(op.name, 0) + 1
    statuses: Dict[str, Set[str]] = {}
    listed: Dict[str, int] = {}
    for (operator, status), count in table.items():
        statuses.setdefault(operator, set()).add(status)
        listed[operator] = listed.get(operator, 0) + count
    return {name: next(iter(found)) for name, found in statuses.items()
            if len(found) == 1 and listed[name] == present.get(name)}


def table_needs_several_regions(model: ModelInfo, table: Table) -> bool:
    """True when a mapped operator depends, through a CPU operator, on another mapped one.

    Only operator types whose instances all share one status in the table are used, so the
    verdict follows from the real table and the graph alone.
    """
    known = _types_with_one_status(model, table)
    mapped = {op.index for op in model.operators if known.get(op.name) == STATUS_MAPPED}
    on_cpu = {op.index for op in model.operators
              if op.name in known and known[op.name] != STATUS_MAPPED}
    after_mapped: Set[int] = set()  # tensors downstream of a mapped operator
    after_cut: Set[int] = set()  # ... and of a CPU operator after that
    for op in model.operators:     # TFLite stores operators in execution order
        inputs = set(op.inputs)
        if op.index in mapped and inputs & after_cut:
            return True
        if op.index in mapped or inputs & after_mapped:
            after_mapped.update(op.outputs)
        if (op.index in on_cpu and inputs & after_mapped) or inputs & after_cut:
            after_cut.update(op.outputs)
    return False


def decide_flags(pair: CorpusPair, model: ModelInfo, real: Table) -> Tuple[CompileFlags, str]:
    """The flags to predict the pair with, and where they come from (module docstring)."""
    if pair.flags is not None:
        return pair.flags, FLAGS_FROM_MANIFEST
    if pair.compiled_custom_ops is not None and pair.compiled_custom_ops > 1:
        return CompileFlags(multiple_subgraphs=True), FLAGS_FROM_COMPILED_MODEL.format(
            pair.compiled_custom_ops)
    no_second_region_status = not any(
        status == STATUS_MORE_THAN_ONE_SUBGRAPH for _, status in real)
    if no_second_region_status and table_needs_several_regions(model, real):
        return CompileFlags(multiple_subgraphs=True), FLAGS_FROM_LOG
    return CompileFlags(), FLAGS_DEFAULT


# --- scoring --------------------------------------------------------------------------------

def compare_tables(real: Table, predicted: Table) -> List[Tuple[str, str, int, int]]:
    """(operator, status, real count, predicted count) for every row that differs."""
    return [(operator, status, real.get((operator, status), 0),
             predicted.get((operator, status), 0))
            for operator, status in sorted(set(real) | set(predicted))
            if real.get((operator, status), 0) != predicted.get((operator, status), 0)]


def compare_memory(real: CompileResult, predicted: CompileResult) -> List[MemoryComparison]:
    """The memory lines the real output prints, against the prediction's."""
    comparisons = []
    for line, name in MEMORY_FIELDS:
        real_value = getattr(real, name)
        if real_value is not None and real.succeeded:
            comparisons.append(MemoryComparison(line, getattr(predicted, name) or 0, real_value))
    return comparisons


def score_pair(pair: CorpusPair) -> PairScore:
    score = PairScore(pair.pair_id)
    try:
        real = read_real_output(pair.log_path)
        model = read_model(pair.model_path)
    except (CorpusError, ModelReadError) as error:
        score.error = str(error)
        return score
    score.compiler_version = pair.compiler_version or real.compiler_version
    real_table = row_counts(real)
    score.flags, score.flags_source = decide_flags(pair, model, real_table)
    try:
        predicted = predict(model, score.compiler_version, score.flags.min_runtime_version,
                            multiple_subgraphs=score.flags.multiple_subgraphs)
    except ValueError as error:
        score.error = "cannot predict: {}".format(error)
        return score
    score.imitated_version = predicted.compiler_version
    if real.succeeded != predicted.succeeded:
        score.differences = [("(compilation)", "succeeded" if real.succeeded else "failed",
                              1, 0)]
    else:
        score.differences = compare_tables(real_table, row_counts(predicted))
    score.exact = not score.differences
    score.memory = compare_memory(real, predicted)
    return score


def score_corpus(directory: str) -> CorpusScore:
    """Predict and compare every pair of the corpus in `directory`."""
    return CorpusScore(directory, [score_pair(pair) for pair in load_corpus(directory)])


# --- text output ----------------------------------------------------------------------------

def _percent(value: Optional[float]) -> str:
    return "n/a" if value is None else "{:+.1f}%".format(100.0 * value)


def _pair_lines(pair: PairScore) -> List[str]:
    if pair.error:
        return ["{}  ERROR  {}".format(pair.pair_id, pair.error)]
    imitated = "" if pair.imitated_version == pair.compiler_version else \
        " (imitating {})".format(pair.imitated_version)
    flags = []
    if pair.flags.multiple_subgraphs:
        flags.append("-a")
    if pair.flags.min_runtime_version is not None:
        flags.append("-m {}".format(pair.flags.min_runtime_version))
    head = "{}  {}  compiler {}{}  flags: {} ({})".format(
        pair.pair_id, "exact" if pair.exact else "DIFFERS", pair.compiler_version, imitated,
        " ".join(flags) or "none", pair.flags_source)
    lines = [head]
    for operator, status, real, predicted in pair.differences:
        lines.append("    {:<24} real {:>4}  predicted {:>4}  {}".format(
            operator, real, predicted, status))
    for item in pair.memory:
        lines.append("    memory {:<12} real {:>10}  predicted {:>10}  error {}".format(
            item.line, item.real, item.predicted, _percent(item.relative_error)))
    return lines


def render_score_text(score: CorpusScore) -> str:
    lines = ["# Scoring edgetpu_analyzer PREDICTIONS against real edgetpu_compiler output "
             "in {}".format(score.directory)]
    for pair in score.pairs:
        lines.extend(_pair_lines(pair))
    lines.append("exact {}/{} ({:.0%} of operator tables)".format(
        score.exact, len(score.pairs), score.fraction))
    inferred = sum(1 for pair in score.pairs if pair.flags_source == FLAGS_FROM_LOG)
    if inferred:
        lines.append("flags: -a inferred from the real table for {} pair(s)".format(inferred))
    for line, summary in score.memory_summary().items():
        if not summary["pairs"]:
            lines.append("memory {}: no pair has this line".format(line))
            continue
        lines.append("memory {}: {} pair(s), {} within 5%, median |error| {}, max |error| {}"
                     .format(line, summary["pairs"], summary["within_5_percent"],
                             _percent(summary["median_abs_relative_error"]),
                             _percent(summary["max_abs_relative_error"])))
    return "\n".join(lines) + "\n"
