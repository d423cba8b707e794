"""The report stage on real stage outputs: reports/report.md, metrics.json and the plot data.

Every report here is rendered by the stage's main() from the committed outputs of the other
stages and a real compile result (tests/report_helpers.py says how each is made); expected
figures are read from those same inputs, never restated by hand.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from edgetpu_analyzer.result import STATUS_MAPPED, format_size
from facenet_edgetpu.core import artifacts
from facenet_edgetpu.core.errors import PipelineError
from facenet_edgetpu.lib import records
from facenet_edgetpu.lib.seed import SEED_OPERATORS, SEED_SIZES
from facenet_edgetpu.report import svg
from facenet_edgetpu.report.render import markdown_text
from facenet_edgetpu.stages import report
from tests import report_helpers as helpers
from tests.report_helpers import (
    AWKWARD_NAME, CROPS, FIDELITY, QUANTIZATION, markdown_sections, markdown_tables)

# The report's labels for the record keys: the test's own reading of each column.
VARIANT_COLUMNS = {"identity accuracy": "identity_accuracy", "equal error rate": "eer",
                   "EER threshold (cosine)": "eer_threshold", "ROC AUC": "auc",
                   "mean embedding norm": "embedding_norm_mean"}
VARIANT_NAMES = {"float (Keras)": "float", "int8, the model's input quantization": "int8",
                 "int8, the seed's input quantization": "int8_seed_input"}
CROP_COLUMNS = {"photos": "photos", "read": "read", "cropped": "cropped",
                "unreadable": "unreadable", "no face found": "no_face",
                "margin outside the image": "margin_outside_image",
                "not tried (enough crops)": "not_tried"}
SECTIONS = ["Summary", "Sizes", "Operators", "Operator strip", "Parameter memory",
            "Fidelity: float vs int8", "Quantization", "Calibration faces", "Toolchain"]
PREDICTED_SECTIONS = {"Summary", "Operators", "Operator strip", "Parameter memory"}


@pytest.fixture(scope="module")
def predicted(tmp_path_factory):
    inputs = helpers.shared("predicted", helpers.predicted_inputs, tmp_path_factory)
    return inputs, helpers.run_report(inputs, str(tmp_path_factory.mktemp("predicted_report")))


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    inputs = helpers.shared("compiled", helpers.compiled_inputs, tmp_path_factory)
    return inputs, helpers.run_report(inputs, str(tmp_path_factory.mktemp("compiled_report")))


def table_after(markdown: str, section: str, index: int = 0):
    """The index-th table of a section, header first."""
    return markdown_tables(markdown_sections(markdown)[section])[index]


def as_dicts(table):
    return [dict(zip(table[0], row)) for row in table[1:]]


def number(text: str) -> float:
    return float(text.replace(",", ""))


# --------------------------------------------------------------------------------------------
# Sections and the PREDICTED marks
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("case", ["predicted", "compiled"])
def test_markdown_has_every_section_in_order(case, request):
    _, outputs = request.getfixturevalue(case)
    assert list(markdown_sections(outputs.markdown)) == SECTIONS


def test_prediction_is_marked_in_every_predicted_section(predicted):
    inputs, outputs = predicted
    first = outputs.markdown.splitlines()[0]
    assert first.startswith("# ") and first.endswith("**PREDICTED**")
    headings = [line for line in outputs.markdown.splitlines() if line.startswith("## ")]
    marked = {line[3:].replace("**PREDICTED**", "").strip() for line in headings
              if line.endswith("**PREDICTED**")}
    assert marked == PREDICTED_SECTIONS
    assert "**Predicted, not compiled.**" in outputs.markdown
    for note in inputs.result.notes:
        assert "> - " + markdown_text(note) in outputs.markdown
    edgetpu = as_dicts(table_after(outputs.markdown, "Sizes"))[2]
    assert edgetpu["bytes (this run)"] == "\u2248 {} PREDICTED".format(
        format_size(inputs.result.output_size_bytes))


def test_a_real_result_has_no_prediction_mark(compiled):
    inputs, outputs = compiled
    assert "PREDICTED" not in outputs.markdown and "Predicted" not in outputs.markdown
    assert "Edge TPU compiler {} \u00b7 compiled".format(
        inputs.result.compiler_version) in outputs.markdown


# --------------------------------------------------------------------------------------------
# Figures, read back from the Markdown against the inputs
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("case", ["predicted", "compiled"])
def test_sizes_against_the_seed(case, request):
    inputs, outputs = request.getfixturevalue(case)
    rows = as_dicts(table_after(outputs.markdown, "Sizes"))
    assert [row["artifact"] for row in rows] == [
        "Keras model (.h5)", "Full-integer TFLite", "Edge TPU TFLite"]
    files = [inputs.model, inputs.tflite, None if inputs.result.predicted else os.path.join(
        inputs.compile_dir, inputs.result.output_model)]
    for row, name, path in zip(rows, ("keras_h5", "tflite", "edgetpu_tflite"), files):
        assert row["bytes (seed)"] == "{:,}".format(SEED_SIZES[name])
        if path is None:
            assert row["vs seed"] == "\u2013"
            continue
        size = os.path.getsize(path)
        assert row["bytes (this run)"] == "{:,} ({})".format(size, format_size(size))
        change = float(row["vs seed"].rstrip(" %"))
        assert change == pytest.approx(100.0 * (size - SEED_SIZES[name]) / SEED_SIZES[name],
                                       abs=0.005)


@pytest.mark.parametrize("case", ["predicted", "compiled"])
def test_operator_table_is_the_compile_result(case, request):
    inputs, outputs = request.getfixturevalue(case)
    result = inputs.result
    rows = as_dicts(table_after(outputs.markdown, "Operators"))
    assert [(row["operator"], int(row["count"]), row["status"]) for row in rows] == sorted(
        (row.operator, row.count, row.status) for row in result.operators)
    for row in rows:
        assert row["runs on"] == ("Edge TPU" if row["status"] == STATUS_MAPPED else "CPU")
    assert "{} operations: {} on the Edge TPU, {} on the CPU, in {} Edge TPU subgraph(s).".format(
        result.total_operations, result.operations_on_edgetpu, result.operations_on_cpu,
        result.edgetpu_subgraphs) in markdown_sections(outputs.markdown)["Operators"]


def strip_text(markdown: str):
    body = markdown_sections(markdown)["Operator strip"]
    return body.split("```text\n", 1)[1].split("```", 1)[0].splitlines()


def test_strip_text_follows_the_execution_order(predicted):
    inputs, outputs = predicted
    order = inputs.result.execution_order
    letters = {}
    for op in order:
        if op.status != STATUS_MAPPED:
            letters.setdefault(op.status, "ABCDEFGHIJ"[len(letters)])
    expected = "".join("#" if op.status == STATUS_MAPPED else letters[op.status] for op in order)
    assert set(expected) >= {"#", "A", "B"}  # both sides of the cut are in the strip
    assert strip_text(outputs.markdown) == ["0 " + expected]
    legend = markdown_sections(outputs.markdown)["Operator strip"]
    for status, letter in letters.items():
        count = sum(1 for op in order if op.status == status)
        assert "- `{}` CPU: {} ({})".format(letter, status, count) in legend
    cpu = as_dicts(table_after(outputs.markdown, "Operator strip"))
    assert [(int(row["#"]), row["operator"], row["why"]) for row in cpu] == [
        (op.index, op.operator, op.reason) for op in order if op.status != STATUS_MAPPED]
    assert [row["status"] for row in cpu] == [
        "{} {}".format(letters[op.status], op.status) for op in order if op.status != STATUS_MAPPED]


def test_strip_text_without_execution_order_wraps_rows_and_says_so(compiled):
    inputs, outputs = compiled
    rows = strip_text(outputs.markdown)
    total = inputs.result.total_operations
    assert len(rows) == -(-total // svg.STRIP_COLUMNS)
    labels = [int(row.split()[0]) for row in rows]
    assert labels == list(range(0, total, svg.STRIP_COLUMNS))
    cells = "".join(row.split()[1] for row in rows)
    assert cells == "#" * total  # every operator of the seed's FaceNet maps
    assert all(len(row.split()[1]) == svg.STRIP_COLUMNS for row in rows[:-1])
    assert "Execution order unknown" in markdown_sections(outputs.markdown)["Operator strip"]


@pytest.mark.parametrize("case", ["predicted", "compiled"])
def test_memory_lines_and_text_bar_are_to_scale(case, request):
    inputs, outputs = request.getfixturevalue(case)
    result = inputs.result
    values = [result.on_chip_memory_used_bytes, result.on_chip_memory_remaining_bytes,
              result.off_chip_memory_bytes]
    rows = as_dicts(table_after(outputs.markdown, "Parameter memory"))
    assert [row["memory line"] for row in rows] == [
        "On-chip used", "On-chip remaining", "Off-chip (streamed)"]
    assert [row["size"] for row in rows] == [format_size(value) for value in values]
    for row, value in zip(rows, values):
        assert float(row["share"].rstrip(" %")) == pytest.approx(
            100.0 * value / sum(values), abs=0.05)
    body = markdown_sections(outputs.markdown)["Parameter memory"]
    bar = body.split("```text\n[", 1)[1].split("]", 1)[0]
    assert len(bar) == 60
    for row, value in zip(rows, values):
        assert abs(bar.count(row["in the bar"]) - 60.0 * value / sum(values)) < 1.0
    assert "These figures are estimates." in body if result.predicted else \
        "estimates" not in body


def test_compiler_2_memory_lines_derive_the_remaining_space(tmp_path):
    inputs = helpers.compiled_inputs(
        str(tmp_path / "in"), "seed001_mobilenet_v2_full_integer_quant_v2.0_stdout.txt")
    outputs = helpers.run_report(inputs, str(tmp_path / "out"))
    result = inputs.result
    assert result.on_chip_memory_remaining_bytes is None  # compiler 2.0 prints "available"
    rows = as_dicts(table_after(outputs.markdown, "Parameter memory"))
    assert rows[1]["memory line"] == "On-chip remaining (available \u2212 used)"
    assert rows[1]["size"] == format_size(
        result.on_chip_memory_available_bytes - result.on_chip_memory_used_bytes)


def test_fidelity_has_readable_labels_and_the_measured_figures(predicted):
    _, outputs = predicted
    fidelity = records.Fidelity.load(FIDELITY)
    section = markdown_sections(outputs.markdown)["Fidelity: float vs int8"]
    for raw in ("identity_accuracy", "eer_threshold", "cosine_mean", "vs_float", "val_faces",
                "int8_seed_input", "clipped_fraction"):
        assert raw not in section
    variants, agreement, counts, quantization = markdown_tables(section)
    assert variants[0] == ["variant"] + list(VARIANT_COLUMNS)
    for row in as_dicts(variants):
        figures = fidelity.variants[VARIANT_NAMES[row["variant"]]]
        for label, key in VARIANT_COLUMNS.items():
            assert number(row[label]) == pytest.approx(getattr(figures, key), abs=5e-7), label
    assert agreement[0] == ["variant", "cosine to float (mean / min)", "L2 to float (mean / max)"]
    for row in as_dicts(agreement):
        figures = fidelity.vs_float[VARIANT_NAMES[row["variant"]]]
        assert [number(v) for v in row["cosine to float (mean / min)"].split(" / ")] == [
            figures.cosine_mean, figures.cosine_min]
        assert [number(v) for v in row["L2 to float (mean / max)"].split(" / ")] == [
            figures.l2_mean, figures.l2_max]
    assert {row[0]: int(row[1]) for row in counts[1:]} == {
        "val faces (probes)": fidelity.counts.val_faces,
        "train faces (gallery)": fidelity.counts.gallery_faces,
        "people": fidelity.counts.people, "val face pairs": fidelity.counts.pairs,
        "same-person pairs": fidelity.counts.genuine_pairs}
    assert dict(quantization[1:])["input zero point"] == str(
        fidelity.input_quantization.zero_point)
    assert "](" in section and section.split("](", 1)[1].startswith("../")


@pytest.mark.parametrize("case", ["predicted", "compiled"])
def test_quantization_tables_are_the_quantize_output(case, request):
    _, outputs = request.getfixturevalue(case)
    quantization = records.Quantization.load(QUANTIZATION)
    tensors, operators, lambdas = markdown_tables(
        markdown_sections(outputs.markdown)["Quantization"])
    for row, tensor in zip(as_dicts(tensors), (quantization.input, quantization.output)):
        assert (row["name"], row["dtype"], float(row["scale"]), int(row["zero point"])) == (
            tensor.name, tensor.dtype, tensor.scale, tensor.zero_point)
        assert [int(d) for d in row["shape"].split("\u00d7")] == tensor.shape
    rows = as_dicts(operators)
    assert rows[-1]["operator"] == "total"
    for row in rows[:-1]:
        ours = quantization.operators.get(row["operator"], 0)
        seed = SEED_OPERATORS.get(row["operator"], 0)
        assert (int(row["this run"]), int(row["seed (TF 1.15)"])) == (ours, seed)
        assert row["difference"] == ("{:+d}".format(ours - seed) if ours != seed else "\u2013")
    assert int(rows[-1]["this run"]) == quantization.operator_count
    assert int(rows[-1]["seed (TF 1.15)"]) == sum(SEED_OPERATORS.values())
    assert sum(int(row["layers"]) for row in as_dicts(lambdas)) == len(
        quantization.lambda_layers)
    facts = markdown_sections(outputs.markdown)["Quantization"]
    assert "- calibration faces: `{}`".format(quantization.calibration_samples) in facts
    assert "- TFLite sha256: `{}`".format(quantization.tflite_sha256) in facts


def test_crop_counts_under_readable_labels(predicted):
    _, outputs = predicted
    crops = records.CropMetrics.load(CROPS)
    table = table_after(outputs.markdown, "Calibration faces")
    assert table[0] == ["split"] + list(CROP_COLUMNS)
    for row in as_dicts(table):
        counts = crops.splits[row["split"]]
        for label, key in CROP_COLUMNS.items():
            assert int(row[label]) == getattr(counts, key), (row["split"], label)
    assert [row["split"] for row in as_dicts(table)] == sorted(crops.splits)


def test_toolchain_is_the_recorded_file(predicted):
    import yaml

    inputs, outputs = predicted
    with open(inputs.toolchain, encoding="utf-8") as handle:
        recorded = yaml.safe_load(handle)
    rows = table_after(outputs.markdown, "Toolchain")[1:]
    # Every (stage, component, version) of the file is in exactly one row, and nothing else.
    shown = sorted((stage, key, version) for key, version, stages in rows
                   for stage in stages.split(", "))
    assert shown == sorted((stage, key, version) for stage, section in recorded.items()
                           for key, version in section.items())
    assert len(rows) == len({(key, version) for key, version, _ in rows})


def test_markdown_escapes_what_the_inputs_say(predicted):
    inputs, outputs = predicted
    assert os.path.basename(inputs.tflite) == AWKWARD_NAME
    assert "tiny &lt;b&gt;\\|&.tflite" in outputs.markdown.splitlines()[2]
    assert "<b>" not in outputs.markdown
    assert markdown_text("a|b<c>") == "a\\|b&lt;c&gt;"
    assert markdown_text(markdown_text("a|b")) == "a\\|b"  # escaping twice changes nothing


# --------------------------------------------------------------------------------------------
# metrics.json, plot data, the command line
# --------------------------------------------------------------------------------------------

def test_metrics_keep_the_committed_layout(predicted):
    inputs, outputs = predicted
    with open(os.path.join(helpers.REPO, "reports", "metrics.json"), encoding="utf-8") as handle:
        committed = json.load(handle)
    metrics, result = outputs.metrics, inputs.result
    assert set(metrics) == set(committed)
    assert set(metrics["compile"]) == set(committed["compile"])
    # Inputs shared with the committed run give the committed figures.
    for key in ("crops", "tflite_operators", "calibration_samples"):
        assert metrics[key] == committed[key], key
    assert metrics["size_bytes"] == {"keras_h5": os.path.getsize(inputs.model),
                                     "tflite": os.path.getsize(inputs.tflite)}
    expected = {}
    for row in result.operators:
        expected.setdefault(row.operator, {})[row.status] = row.count
    assert metrics["operators"] == expected
    assert metrics["compile"]["predicted"] is True
    assert metrics["compile"]["operations_on_cpu"] == result.operations_on_cpu > 0
    assert metrics["compile"]["mapped_fraction"] == round(
        result.operations_on_edgetpu / result.total_operations, 6)


def test_plot_data_is_sorted_and_compares_with_the_seed(compiled):
    inputs, outputs = compiled
    lines = outputs.operators_csv.splitlines()
    assert lines[0] == "operator,count"
    assert lines[1:] == sorted('"{} ({})",{}'.format(row.operator, row.status, row.count)
                               for row in inputs.result.operators)
    sizes = outputs.sizes_csv.splitlines()
    assert sizes[0] == "artifact,mib"
    for name, path in (("keras_h5", inputs.model), ("tflite", inputs.tflite)):
        assert "{} (this run),{:.3f}".format(name, os.path.getsize(path) / 1048576.0) in sizes
        assert "{} (seed),{:.3f}".format(name, SEED_SIZES[name] / 1048576.0) in sizes
    assert len(sizes) == 1 + 2 * len(SEED_SIZES)


def test_same_inputs_give_the_same_bytes_in_separate_processes(compiled, tmp_path):
    inputs, _ = compiled
    written = []
    for run, seed in (("one", "1"), ("two", "2")):
        out = str(tmp_path / run)
        env = dict(os.environ, PYTHONHASHSEED=seed)
        subprocess.run([sys.executable, "-m", "facenet_edgetpu.stages.report"] + inputs.argv(out),
                       cwd=helpers.REPO, env=env, check=True, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT)
        files = {}
        for folder, _, names in os.walk(out):
            for name in names:
                with open(os.path.join(folder, name), "rb") as handle:
                    files[os.path.relpath(os.path.join(folder, name), out)] = handle.read()
        written.append(files)
    assert sorted(written[0]) == ["metrics.json", "plots/operators.csv", "plots/sizes.csv",
                                  "report.html", "report.md"]
    assert written[0] == written[1]


def test_compile_result_is_read_from_the_compile_folder(compiled, tmp_path):
    inputs, _ = compiled
    assert report.read_compile_result(inputs.compile_dir) == inputs.result
    folder = helpers.write_compile_result(str(tmp_path / "edgetpu"), inputs.result)
    artifacts.write_json(os.path.join(folder, records.COMPILE_RESULT_FILE), {"operators": []})
    with pytest.raises(records.RecordError, match=r"compile_result\.json: not a compile result"):
        report.read_compile_result(folder)
    with pytest.raises(PipelineError, match="not found: .*dvc repro compile"):
        report.read_compile_result(str(tmp_path / "nothing"))


def test_bad_inputs_give_one_clear_error(compiled, tmp_path):
    inputs, _ = compiled
    argv = inputs.argv(str(tmp_path / "out"))
    swapped = list(argv)
    swapped[swapped.index("--fidelity") + 1] = QUANTIZATION
    with pytest.raises(PipelineError, match=r"quantization\.json: unknown key.*dvc repro fidelity"):
        report.main(swapped)
    missing = list(argv)
    missing[missing.index("--model") + 1] = str(tmp_path / "absent.h5")
    with pytest.raises(PipelineError, match=r"absent\.h5 not found"):
        report.main(missing)
    toolchain = tmp_path / "toolchain.yaml"
    toolchain.write_text("- just\n- a list\n", encoding="utf-8")
    wrong = list(argv)
    wrong[wrong.index("--toolchain") + 1] = str(toolchain)
    with pytest.raises(PipelineError, match="toolchain.yaml must map each stage to its comp"):
        report.main(wrong)
    assert not os.path.exists(str(tmp_path / "out"))  # nothing written on a bad input
    with pytest.raises(SystemExit):
        report.main(argv[:-2])  # --plots left out: argparse refuses


# --------------------------------------------------------------------------------------------
# The drawings' geometry (pure functions)
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("count, rows", [(0, 0), (1, 1), (49, 1), (50, 1), (51, 2), (214, 5)])
def test_strip_rows_hold_every_cell_and_no_empty_row(count, rows):
    assert svg.strip_rows(count, 50) == rows
    assert svg.strip_size(count, 50).height == rows * (svg.CELL_HEIGHT + svg.CELL_GAP)
    assert [label.first_position for label in svg.strip_row_labels(count, 50)] == list(
        range(0, count, 50))


def test_strip_cells_fill_rows_left_to_right():
    first, last, next_row = (svg.strip_cell(p, 50) for p in (0, 49, 50))
    assert (first.x, first.y) == (svg.STRIP_LEFT, 0)
    assert last.y == first.y and last.x == first.x + 49 * (svg.CELL_WIDTH + svg.CELL_GAP)
    assert next_row.x == first.x and next_row.y == svg.CELL_HEIGHT + svg.CELL_GAP
    assert last.x + last.width <= svg.strip_size(50, 50).width
    key = svg.cell_key_position(last)
    assert key.x == last.x + last.width / 2.0 and last.y < key.y < last.y + last.height


def test_bar_segments_are_contiguous_and_to_scale():
    segments = svg.bar_segments([1, 3, 0, 4], 800)
    assert [(s.x, s.width) for s in segments] == [(0, 100), (100, 300), (400, 0), (400, 400)]
    assert [s.width for s in svg.bar_segments([0, 0], 800)] == [0, 0]
    marker = svg.capacity_marker(3, 4, 800)
    assert marker.x == 600 and marker.anchor == "end" and marker.caption.x == 600
    assert svg.capacity_marker(1, 4, 800).anchor == "start"
    assert svg.capacity_marker(1, 0, 800) is None


@pytest.mark.parametrize("values", [[7, 0, 15], [256, 7245404, 0], [1, 10 ** 6, 1], [3, 3, 3]])
def test_character_runs_sum_to_the_width_and_keep_small_values_visible(values):
    runs = svg.character_runs(values, 60)
    assert sum(runs) == 60
    exact = [60.0 * value / sum(values) for value in values]
    lifted = sum(1 for share in exact if 0 < share < 1)  # each takes one from the longest run
    for run, share in zip(runs, exact):
        assert (run > 0) == (share > 0)
        assert abs(run - share) < 1.0 + lifted
    assert svg.character_runs([0, 0], 60) == [0, 0]


def test_a_label_fits_only_with_its_padding():
    text = "Off-chip 15.37MiB"
    needed = svg.CHARACTER_WIDTH * len(text) + svg.LABEL_PADDING
    assert svg.label_fits(text, needed) and not svg.label_fits(text, needed - 1)
