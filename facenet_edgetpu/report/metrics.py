"""The report's machine-readable outputs: reports/metrics.json and the `dvc plots` data."""
from __future__ import annotations

from typing import Any, Dict, Mapping, Optional

from edgetpu_analyzer.result import CompileResult
from facenet_edgetpu.lib import records
from facenet_edgetpu.lib.seed import SEED_SIZES

MIB = 1048576.0


def collect_metrics(sizes: Mapping[str, Optional[int]], result: CompileResult,
                    quantization: records.Quantization,
                    crops: records.CropMetrics) -> Dict[str, Any]:
    """The numbers `dvc metrics diff` compares between runs (flat, no nulls)."""
    operators: Dict[str, Dict[str, int]] = {}
    # One number per (operator, status) row, so `dvc metrics diff` shows operators that
    # changed status between runs, like `oplog-diff` does.
    for row in result.operators:
        operators.setdefault(row.operator, {})[row.status] = row.count
    return {
        "size_bytes": {name: value for name, value in sorted(sizes.items()) if value is not None},
        "compile": {
            "predicted": result.predicted,
            "succeeded": result.succeeded,
            "total_operations": result.total_operations or 0,
            "operations_on_edgetpu": result.operations_on_edgetpu or 0,
            "operations_on_cpu": result.operations_on_cpu or 0,
            "mapped_fraction": round(result.mapped_fraction(), 6),
            "edgetpu_subgraphs": result.edgetpu_subgraphs or 0,
            "on_chip_memory_used_bytes": result.on_chip_memory_used_bytes or 0,
            "off_chip_memory_bytes": result.off_chip_memory_bytes or 0,
        },
        "operators": operators,
        "tflite_operators": sum(quantization.operators.values()),
        "calibration_samples": quantization.calibration_samples,
        "crops": {split: counts.cropped for split, counts in sorted(crops.splits.items())},
    }


def operators_csv(result: CompileResult) -> str:
    """DVC plot data: one bar per (operator, status) row, sorted."""
    lines = ["operator,count"]
    for row in sorted(result.operators, key=lambda row: (row.operator, row.status)):
        lines.append('"{} ({})",{}'.format(row.operator, row.status, row.count))
    return "\n".join(lines) + "\n"


def sizes_csv(sizes: Mapping[str, Optional[int]]) -> str:
    """DVC plot data: this run's sizes next to the seed's, in MiB."""
    lines = ["artifact,mib"]
    for name in sorted(SEED_SIZES):
        this_run = sizes.get(name)
        if this_run is not None:
            lines.append("{} (this run),{:.3f}".format(name, this_run / MIB))
        lines.append("{} (seed),{:.3f}".format(name, SEED_SIZES[name] / MIB))
    return "\n".join(lines) + "\n"
