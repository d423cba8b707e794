"""The self-contained HTML report: its markup, and the page as headless Chromium renders it.

The results are hand-made: a predicted one whose execution order has CPU operators in the
middle (so the strip has both colours), and a real one with only the compiler's table. The
browser tests read the DOM Chromium serializes after loading the page (not the text we wrote),
check the page logged nothing to the console, and look at the screenshot's pixels.
"""
from __future__ import annotations

import io
import os
import re
import struct
import zlib
from html.parser import HTMLParser

import numpy as np
import pytest
from PIL import Image

from edgetpu_analyzer.result import (
    STATUS_MAPPED, STATUS_MORE_THAN_ONE_SUBGRAPH, STATUS_OPERATION_NOT_SUPPORTED,
    CompileResult, ExecutedOperator, OperatorRow, format_size, group_rows)
from facenet_edgetpu.stages.html_report import (
    BAR_WIDTH, CELL_WIDTH, CPU_COLOUR, EDGETPU_COLOUR, render_html)
from tests import browser

SIZES = {"keras_h5": 92397640, "tflite": 23790000, "edgetpu_tflite": None}
QUANTIZATION = {
    "calibration_samples": 100, "io_type": "uint8",
    "inputs": [{"name": "input_1", "dtype": "uint8", "shape": [1, 160, 160, 3],
                "scale": 0.0078125, "zero_point": 128}],
    "outputs": [{"name": "Bottleneck_BatchNorm/batchnorm_1/add_1", "dtype": "uint8",
                 "shape": [1, 128], "scale": 0.0234, "zero_point": 131}],
    "operators": {"CONV_2D": 132, "CONCATENATION": 23, "ADD": 21, "QUANTIZE": 1,
                  "MAX_POOL_2D": 3, "MEAN": 1, "FULLY_CONNECTED": 1, "L2_NORMALIZATION": 1},
}
CROPS = {"train": {"photos": 120, "read": 120, "cropped": 100, "no_face": 18, "unreadable": 2},
         "test": {"photos": 40, "read": 40, "cropped": 37, "no_face": 3, "unreadable": 0}}
TOOLCHAIN = {"edgetpu_compiler": "predicted", "python": "3.11.7", "tensorflow": "2.15.1"}
# The layout of reports/fidelity.json (facenet_edgetpu/stages/fidelity.py; keys sorted as written).
FIDELITY = {
    "counts": {"gallery_faces": 100, "genuine_pairs": 80, "pairs": 666, "people": 5,
               "val_faces": 37},
    "input_quantization": {"clipped_fraction": 0.0123, "scale": 0.0078125, "zero_point": 128},
    "variants": {
        "float": {"auc": 0.9934, "eer": 0.0412, "identity_accuracy": 0.9812},
        "int8": {"auc": 0.9901, "eer": 0.0483, "identity_accuracy": 0.9755},
        "int8_seed_input": {"auc": 0.9012, "eer": 0.1733, "identity_accuracy": 0.8121},
    },
    "vs_float": {
        "int8": {"cosine_mean": 0.9934, "cosine_min": 0.9511, "l2_mean": 0.1134, "l2_max": 0.3121},
        "int8_seed_input": {"cosine_mean": 0.8812, "cosine_min": 0.612, "l2_mean": 0.4711,
                            "l2_max": 0.9011},
    },
}

# Execution order: 40 operators, CPU ones at 17 (unsupported) and 18-20 (after it, more than one
# subgraph), the rest mapped.
CPU_INDICES = {17: STATUS_OPERATION_NOT_SUPPORTED, 18: STATUS_MORE_THAN_ONE_SUBGRAPH,
               19: STATUS_MORE_THAN_ONE_SUBGRAPH, 20: STATUS_MORE_THAN_ONE_SUBGRAPH}


def predicted_result() -> CompileResult:
    names = ["CONV_2D", "CONV_2D", "CONCATENATION", "ADD"] * 10
    names[17] = "L2_NORMALIZATION"
    order = []
    for index, name in enumerate(names):
        status = CPU_INDICES.get(index, STATUS_MAPPED)
        order.append(ExecutedOperator(
            index=index, operator=name, version=1, status=status,
            reason=None if status == STATUS_MAPPED else "rule for <{}> & co".format(name)))
    rows = group_rows((op.operator, op.status) for op in order)
    return CompileResult(
        compiler_version="16.0.384591198", predicted=True, input_model="facenet_keras.tflite",
        output_model="facenet_keras_edgetpu.tflite", output_size_bytes=23500000,
        on_chip_memory_used_bytes=7340032, on_chip_memory_remaining_bytes=262144,
        off_chip_memory_bytes=15728640, edgetpu_subgraphs=1, total_operations=40,
        operations_on_edgetpu=36, operations_on_cpu=4, operators=rows, execution_order=order,
        notes=["Memory lines are estimates <approximate>."])


def real_result() -> CompileResult:
    return CompileResult(
        compiler_version="15.0.340273435", predicted=False, input_model="facenet_keras.tflite",
        output_model="facenet_keras_edgetpu.tflite", on_chip_memory_used_bytes=7654321,
        on_chip_memory_remaining_bytes=4096, off_chip_memory_bytes=14000000,
        edgetpu_subgraphs=1, total_operations=12, operations_on_edgetpu=9, operations_on_cpu=3,
        operators=[OperatorRow("CONV_2D", 7, STATUS_MAPPED), OperatorRow("ADD", 2, STATUS_MAPPED),
                   OperatorRow("MEAN", 1, STATUS_OPERATION_NOT_SUPPORTED),
                   OperatorRow("FULLY_CONNECTED", 2, STATUS_MORE_THAN_ONE_SUBGRAPH)])


def tiny_png(path: str) -> str:
    """A 2x2 PNG written by hand (no plotting library needed)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    raw = b"".join(b"\x00" + bytes([200, 30, 30] * 2) for _ in range(2))
    with open(path, "wb") as handle:
        header = struct.pack(">IIBBBBB", 2, 2, 8, 2, 0, 0, 0)  # 2x2, 8-bit RGB
        handle.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
                     + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
    return path


def render(result: CompileResult, fidelity=FIDELITY, png=None) -> str:
    sizes = dict(SIZES)
    if not result.predicted:
        sizes["edgetpu_tflite"] = 23515704
    return render_html(sizes, result, QUANTIZATION, CROPS, TOOLCHAIN, fidelity=fidelity,
                       embeddings_png=png)


# --------------------------------------------------------------------------------------------
# A minimal DOM over html.parser, enough to query ids, classes and table rows
# --------------------------------------------------------------------------------------------

VOID = {"meta", "link", "br", "img", "hr", "input", "col", "source", "wbr", "area", "base"}


class Node(object):
    def __init__(self, tag, attrs, parent=None):
        self.tag, self.attrs, self.parent = tag, attrs, parent
        self.children = []  # Nodes and text strings, in document order

    def iter(self):
        yield self
        for child in self.children:
            if isinstance(child, Node):
                for node in child.iter():
                    yield node

    def find_all(self, tag=None, cls=None, **attrs):
        return [node for node in self.iter()
                if (tag is None or node.tag == tag)
                and (cls is None or cls in node.attrs.get("class", "").split())
                and all(node.attrs.get(key.replace("_", "-")) == value
                        for key, value in attrs.items())]

    def by_id(self, element_id):
        found = [node for node in self.iter() if node.attrs.get("id") == element_id]
        assert len(found) == 1, "expected one element with id {!r}, found {}".format(
            element_id, len(found))
        return found[0]

    def all_text(self):
        return "".join(child.all_text() if isinstance(child, Node) else child
                       for child in self.children)

    def rows(self):
        """Body rows of a table as lists of cell texts."""
        body = self.find_all("tbody")[0]
        return [[" ".join(cell.all_text().split()) for cell in row.find_all("td")]
                for row in body.find_all("tr")]


class DomBuilder(HTMLParser):
    def __init__(self):
        HTMLParser.__init__(self, convert_charrefs=True)
        self.root = self.current = Node("#document", {})

    def handle_starttag(self, tag, attrs):
        node = Node(tag, {key: value or "" for key, value in attrs}, self.current)
        self.current.children.append(node)
        if tag not in VOID:
            self.current = node

    def handle_startendtag(self, tag, attrs):
        self.current.children.append(Node(tag, {k: v or "" for k, v in attrs}, self.current))

    def handle_endtag(self, tag):
        node = self.current
        while node is not None and node.tag != tag:
            node = node.parent
        if node is not None and node.parent is not None:
            self.current = node.parent

    def handle_data(self, data):
        self.current.children.append(data)


def parse(markup: str) -> Node:
    builder = DomBuilder()
    builder.feed(markup)
    builder.close()
    return builder.root


# --------------------------------------------------------------------------------------------
# The markup (no browser)
# --------------------------------------------------------------------------------------------

def test_same_input_gives_the_same_bytes(tmp_path):
    png = tiny_png(str(tmp_path / "embeddings.png"))
    assert render(predicted_result(), png=png) == render(predicted_result(), png=png)
    assert render(predicted_result()) != render(real_result())


@pytest.mark.parametrize("make", [predicted_result, real_result])
def test_no_external_references(make, tmp_path):
    page = render(make(), png=tiny_png(str(tmp_path / "embeddings.png")))
    lowered = page.lower()
    for forbidden in ("http://", "https://", 'src="//', "href=\"//", "@import", "url(",
                      "<link", "<script", "<iframe"):
        assert forbidden not in lowered, forbidden
    # Every src/href is a data: URI or an in-page anchor.
    for reference in re.findall(r'(?:src|href)="([^"]*)"', page):
        assert reference.startswith(("data:", "#")), reference


def test_text_is_escaped():
    page = render(predicted_result())
    assert "rule for &lt;L2_NORMALIZATION&gt; &amp; co" in page
    assert "<L2_NORMALIZATION>" not in page and "<approximate>" not in page


def test_predicted_badges_only_for_predicted_results():
    predicted = parse(render(predicted_result()))
    for section in ("summary", "operators", "strip", "memory"):
        assert predicted.by_id(section).find_all(cls="predicted-badge"), section
    assert not predicted.by_id("fidelity").find_all(cls="predicted-badge")
    # The predicted Edge TPU size in the size table is marked too.
    assert predicted.by_id("sizes").find_all(cls="predicted-badge")
    real = parse(render(real_result()))
    assert not real.find_all(cls="predicted-badge")
    assert real.find_all("body")[0].attrs["data-predicted"] == "false"


def test_strip_follows_execution_order_when_known():
    strip = parse(render(predicted_result())).by_id("strip")
    cells = strip.find_all("g", cls="op")
    assert [int(cell.attrs["data-index"]) for cell in cells] == list(range(40))
    assert [cell.attrs["data-status"] for cell in cells] == [
        CPU_INDICES.get(index, STATUS_MAPPED) for index in range(40)]
    assert strip.find_all(cls="strip")[0].attrs["data-order"] == "execution"
    # Each CPU cell carries a visible key letter and a tooltip with its status.
    cell = cells[17]
    assert cell.attrs["data-runs-on"] == "cpu"
    assert STATUS_OPERATION_NOT_SUPPORTED in cell.find_all("title")[0].all_text()
    assert cell.find_all("text")[0].all_text() == "A"
    assert cells[18].find_all("text")[0].all_text() == "B"
    assert not cells[16].find_all("text")
    cpu_list = strip.by_id("cpu-operators").rows()
    assert [row[0] for row in cpu_list] == ["17", "18", "19", "20"]
    assert cpu_list[0][2] == "A" + STATUS_OPERATION_NOT_SUPPORTED


def test_strip_without_execution_order_is_drawn_from_the_table_and_says_so():
    strip = parse(render(real_result())).by_id("strip")
    cells = strip.find_all("g", cls="op")
    assert [cell.attrs["data-operator"] for cell in cells] == (
        ["CONV_2D"] * 7 + ["ADD"] * 2 + ["MEAN"] + ["FULLY_CONNECTED"] * 2)
    assert strip.find_all(cls="strip")[0].attrs["data-order"] == "table"
    assert "not in execution order" in strip.by_id("strip-order-note").all_text()


def test_refused_model_has_no_cells_and_says_why():
    result = CompileResult(compiler_version="16.0.384591198", predicted=False,
                           fatal_error="Model not quantized")
    page = parse(render(result))
    assert "Model not quantized" in page.by_id("fatal-error").all_text()
    assert not page.by_id("strip").find_all("g", cls="op")
    assert "refused" in page.by_id("strip").all_text()
    assert "no memory lines" in page.by_id("memory").all_text()


def test_memory_bar_is_to_scale():
    result = predicted_result()
    memory = parse(render(result)).by_id("memory")
    segments = {node.attrs["data-kind"]: node for node in memory.find_all("g", cls="segment")}
    assert set(segments) == {"on-chip-used", "on-chip-remaining", "off-chip"}
    widths = {kind: float(node.find_all("rect")[0].attrs["width"])
              for kind, node in segments.items()}
    total = 7340032 + 262144 + 15728640
    assert widths["off-chip"] == pytest.approx(BAR_WIDTH * 15728640 / total, abs=0.01)
    assert sum(widths.values()) == pytest.approx(BAR_WIDTH, abs=0.05)
    legend = memory.by_id("memory-legend").all_text()
    for value in (7340032, 262144, 15728640):
        assert format_size(value) in legend


def test_compiler_2_memory_lines_derive_the_remaining_space():
    result = real_result()
    result.on_chip_memory_remaining_bytes = None
    result.on_chip_memory_available_bytes = 8000000
    memory = parse(render(result)).by_id("memory")
    remaining = memory.find_all("g", cls="segment", data_kind="on-chip-remaining")[0]
    assert remaining.attrs["data-bytes"] == str(8000000 - 7654321)
    assert "available \u2212 used" in memory.by_id("memory-legend").all_text()


def test_fidelity_tables_and_missing_fidelity(tmp_path):
    page = parse(render(predicted_result(), png=tiny_png(str(tmp_path / "e.png"))))
    fidelity = page.by_id("fidelity")
    tables = fidelity.find_all("table")
    variants = tables[0]  # dicts of dicts (variant x metric) come first
    assert [th.all_text() for th in variants.find_all("th")] == [
        "variants", "auc", "eer", "identity_accuracy"]
    assert variants.rows() == [["float", "0.9934", "0.0412", "0.9812"],
                               ["int8", "0.9901", "0.0483", "0.9755"],
                               ["int8_seed_input", "0.9012", "0.1733", "0.8121"]]
    assert tables[1].rows()[1] == ["int8_seed_input", "0.8812", "0.6120", "0.4711", "0.9011"]
    counts = [table for table in tables if "val_faces" in table.all_text()][0]
    assert ["pairs", "666"] in counts.rows()
    assert fidelity.by_id("embeddings-plot").attrs["src"].startswith("data:image/png;base64,")
    missing = parse(render(predicted_result(), fidelity=None)).by_id("fidelity")
    assert missing.by_id("fidelity-missing")
    assert not missing.find_all("img")


def test_fidelity_of_any_nesting_is_rendered_generically():
    fidelity = {"note": "x < y", "runs": 3, "per_variant": {
        "a": {"cosine": {"mean": 0.5, "min": 0.25}, "count": 10},
        "b": {"cosine": {"mean": 0.75}, "extra": [1, 2]}}}
    section = parse(render(real_result(), fidelity=fidelity)).by_id("fidelity")
    matrix, scalars = section.find_all("table")
    assert [th.all_text() for th in matrix.find_all("th")] == [
        "per_variant", "cosine.mean", "cosine.min", "count", "extra"]
    assert matrix.rows() == [["a", "0.5000", "0.2500", "10", "\u2013"],
                             ["b", "0.7500", "\u2013", "\u2013", "1, 2"]]
    assert scalars.rows() == [["note", "x < y"], ["runs", "3"]]


# --------------------------------------------------------------------------------------------
# In headless Chromium
# --------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def chromium():
    return browser.require_chromium()


def write_page(tmp_path, result, name):
    page = tmp_path / name
    page.write_text(render(result, png=tiny_png(str(tmp_path / "embeddings.png"))),
                    encoding="utf-8")
    return str(page)


def test_console_capture_sees_a_broken_page(chromium, tmp_path):
    """The console check below can fail: a page with a script error and bad SVG is caught."""
    page = tmp_path / "broken.html"
    page.write_text('<!DOCTYPE html><html><body><svg><rect width="-1" height="x"/></svg>'
                    '<script>notDefined();</script></body></html>', encoding="utf-8")
    _, console = browser.dump_dom(chromium, str(page))
    assert any("Uncaught ReferenceError" in line for line in console), console
    assert any("<rect> attribute width" in line for line in console), console


@pytest.mark.parametrize("make", [predicted_result, real_result])
def test_chromium_renders_the_report(chromium, make, tmp_path):
    result = make()
    page = write_page(tmp_path, result, "report.html")
    dom, console = browser.dump_dom(chromium, page)
    assert console == [], "the page logged to the console:\n" + "\n".join(console)
    root = parse(dom)

    sizes = root.by_id("sizes").find_all("table")[0].rows()
    assert [row[0] for row in sizes] == ["Keras model (.h5)", "Full-integer TFLite",
                                         "Edge TPU TFLite"]
    assert sizes[0][2] == "92,397,640"
    operators = root.by_id("operator-table").rows()
    assert sum(int(row[1]) for row in operators) == result.total_operations
    assert sorted((row[0], row[3]) for row in operators) == sorted(
        (row.operator, row.status) for row in result.operators)

    cells = root.by_id("strip").find_all("g", cls="op")
    assert len(cells) == result.total_operations
    statuses = [cell.attrs["data-status"] for cell in cells]
    expected = ([op.status for op in result.execution_order] if result.execution_order else
                [row.status for row in result.operators for _ in range(row.count)])
    assert statuses == expected
    assert {cell.attrs["data-runs-on"] for cell in cells} == {"edgetpu", "cpu"}

    assert len(root.by_id("memory").find_all("g", cls="segment")) == 3
    assert [row[0] for row in root.by_id("toolchain-table").rows()] == sorted(TOOLCHAIN)
    assert root.by_id("fidelity").find_all("table")
    assert root.by_id("embeddings-plot").attrs["src"].startswith("data:image/png")
    badges = root.find_all(cls="predicted-badge")
    assert bool(badges) == result.predicted
    if result.predicted:
        assert "PREDICTED" in badges[0].all_text()


def cell_runs(pixels: np.ndarray, colour: str, width: int) -> int:
    """The most runs of `width` (+-1) pixels of `colour` found on one pixel row."""
    rgb = np.array([int(colour[i:i + 2], 16) for i in (1, 3, 5)])
    mask = np.abs(pixels.astype(int) - rgb).max(axis=2) <= 8
    best = 0
    for line in mask:
        edges = np.flatnonzero(np.diff(np.concatenate(([0], line.astype(int), [0]))))
        lengths = edges[1::2] - edges[0::2]
        best = max(best, int(np.sum(np.abs(lengths - width) <= 1)))
    return best


def test_screenshot_shows_the_report(chromium, tmp_path):
    page = write_page(tmp_path, predicted_result(), "report.html")
    png = str(tmp_path / "report.png")
    console = browser.screenshot(chromium, page, png, window=(1280, 2600))
    assert console == [], "the page logged to the console:\n" + "\n".join(console)
    assert os.path.getsize(png) > 20000
    with open(png, "rb") as handle:
        pixels = np.asarray(Image.open(io.BytesIO(handle.read())).convert("RGB"))
    assert pixels.shape == (2600, 1280, 3)
    packed = (pixels[..., 0].astype(np.int32) << 16) | (pixels[..., 1].astype(np.int32) << 8) \
        | pixels[..., 2]
    assert len(np.unique(packed)) > 50  # not one flat colour: text, tables, strip, bar
    # The strip is drawn: on one pixel row, 36 Edge TPU cells and the 4 CPU cells, each
    # CELL_WIDTH pixels wide in its colour.
    assert cell_runs(pixels, EDGETPU_COLOUR, CELL_WIDTH) == 36
    assert cell_runs(pixels, CPU_COLOUR, CELL_WIDTH) == 4
