"""reports/report.html on real stage outputs: its markup, its agreement with report.md, and the
page as headless Chromium renders it.

The reports are rendered by the stage's main() (tests/report_helpers.py says from what). The
browser tests read the DOM Chromium serializes after loading the page (not the text we
wrote), check the page logged nothing to the console, and look at the screenshot's pixels.
"""
from __future__ import annotations

import io
import os
import re

import numpy as np
import pytest
from PIL import Image

from edgetpu_analyzer.result import STATUS_MAPPED, format_size
from facenet_edgetpu.report import render, svg
from tests import browser
from tests import report_helpers as helpers
from tests.report_helpers import AWKWARD_NAME, markdown_alignments, markdown_tables, parse_html

SECTION_IDS = ["summary", "sizes", "operators", "strip", "memory", "fidelity", "quantization",
               "crops", "toolchain"]
PREDICTED_IDS = {"summary", "operators", "strip", "memory"}


@pytest.fixture(scope="module")
def predicted(tmp_path_factory):
    inputs = helpers.shared("predicted", helpers.predicted_inputs, tmp_path_factory)
    out = str(tmp_path_factory.mktemp("predicted_html"))
    return inputs, helpers.run_report(inputs, out), os.path.join(out, "report.html")


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    inputs = helpers.shared("compiled", helpers.compiled_inputs, tmp_path_factory)
    out = str(tmp_path_factory.mktemp("compiled_html"))
    return inputs, helpers.run_report(inputs, out), os.path.join(out, "report.html")


CASES = ["predicted", "compiled"]


def section_titles(root):
    """Section headings without their badge, in page order (the header counts as Summary)."""
    titles = ["Summary"]
    for section in root.find_all("section"):
        heading = section.find_all("h2")[0]
        titles.append(heading.text().replace("PREDICTED", "").strip())
    return titles


# --------------------------------------------------------------------------------------------
# One report, two renderings
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("case", CASES)
def test_html_and_markdown_have_the_same_sections_and_tables(case, request):
    _, outputs, _ = request.getfixturevalue(case)
    root = parse_html(outputs.html)
    assert [node.attrs["id"] for node in root.find_all()
            if node.tag in ("header", "section")] == SECTION_IDS
    markdown_headings = [line[3:].replace("**PREDICTED**", "").strip()
                         for line in outputs.markdown.splitlines() if line.startswith("## ")]
    assert section_titles(root) == markdown_headings
    # Every table, cell by cell (Markdown's extra memory table is the HTML's legend).
    html_tables = [table.rows() for table in root.find_all("table")]
    md_tables = [table for table in markdown_tables(outputs.markdown)
                 if table[0][0] != "memory line"]
    assert len(html_tables) == len(md_tables) >= 10
    for html_table, md_table in zip(html_tables, md_tables):
        assert html_table == md_table


@pytest.mark.parametrize("case", CASES)
def test_numbers_are_right_aligned_in_both(case, request):
    _, outputs, _ = request.getfixturevalue(case)
    html = []
    for table in parse_html(outputs.html).find_all("table"):
        rows = [[cell for cell in row.find_all() if cell.tag in ("th", "td")]
                for row in table.find_all("tr")]
        aligned = [["num" in cell.attrs.get("class", "").split() for cell in row] for row in rows]
        assert all(row == aligned[0] for row in aligned)  # a column is aligned as a whole
        html.append(aligned[0])
    markdown = [columns for columns, table in zip(markdown_alignments(outputs.markdown),
                                                  markdown_tables(outputs.markdown))
                if table[0][0] != "memory line"]
    assert html == markdown
    sizes = parse_html(outputs.html).by_id("size-table")
    assert html[0] == [False, True, True, True] and sizes.find_all("td")[1].attrs["class"] == "num"


@pytest.mark.parametrize("case", CASES)
def test_html_and_markdown_show_the_same_strip_and_memory(case, request):
    inputs, outputs, _ = request.getfixturevalue(case)
    root = parse_html(outputs.html)
    cells = root.by_id("strip").find_all("g", cls="op")
    text = "".join(row.split()[1] for row in outputs.markdown.split("```text\n", 1)[1].split(
        "```", 1)[0].splitlines())
    assert "".join("#" if cell.attrs["data-runs-on"] == "edgetpu" else
                   cell.find_all("text")[0].text() for cell in cells) == text
    legend = root.by_id("memory-legend").text()
    memory = outputs.markdown.split("| memory line |", 1)[1]
    for segment in root.by_id("memory").find_all("g", cls="segment"):
        size = format_size(int(segment.attrs["data-bytes"]))
        assert size in legend and "| {} |".format(size) in memory


# --------------------------------------------------------------------------------------------
# The markup (no browser)
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("case", CASES)
def test_no_external_references(case, request):
    _, outputs, _ = request.getfixturevalue(case)
    lowered = outputs.html.lower()
    for forbidden in ("http://", "https://", 'src="//', 'href="//', "@import", "url(",
                      "<link", "<script", "<iframe"):
        assert forbidden not in lowered, forbidden
    for reference in re.findall(r'(?:src|href)="([^"]*)"', outputs.html):
        assert reference.startswith(("data:", "#")), reference
    with open(render.CSS_PATH, encoding="utf-8") as handle:
        assert handle.read() in outputs.html  # the stylesheet, inlined


def test_text_from_the_inputs_is_escaped(predicted):
    inputs, outputs, _ = predicted
    assert os.path.basename(inputs.tflite) == AWKWARD_NAME
    assert "<code>tiny &lt;b&gt;|&amp;.tflite</code>" in outputs.html
    assert "<b>" not in outputs.html
    root = parse_html(outputs.html)
    assert root.find_all("header")[0].find_all("code")[0].text() == AWKWARD_NAME
    notes = inputs.result.notes
    assert any(">" in note for note in notes)  # "22.71MiB -> 22.43MiB"
    assert [li.text() for li in root.by_id("prediction-note").find_all("li")] == [
        " ".join(note.split()) for note in notes]
    assert not any(note in outputs.html for note in notes if ">" in note)


def test_predicted_badges_only_for_a_prediction(predicted, compiled):
    root = parse_html(predicted[1].html)
    for section in SECTION_IDS:
        badges = root.by_id(section).find_all(cls="predicted-badge")
        assert bool(badges) == (section in PREDICTED_IDS or section == "sizes"), section
    size_row = root.by_id("size-table").rows()[3]
    assert size_row[1] == "\u2248 {} PREDICTED".format(
        format_size(predicted[0].result.output_size_bytes))
    assert root.find_all("body")[0].attrs["data-predicted"] == "true"
    assert root.by_id("prediction-note")
    real = parse_html(compiled[1].html)
    assert not real.find_all(cls="predicted-badge") and "PREDICTED" not in compiled[1].html
    assert real.find_all("body")[0].attrs["data-predicted"] == "false"


def test_strip_cells_follow_the_execution_order(predicted):
    inputs, outputs, _ = predicted
    strip = parse_html(outputs.html).by_id("strip")
    cells = strip.find_all("g", cls="op")
    order = inputs.result.execution_order
    assert [(int(c.attrs["data-index"]), c.attrs["data-operator"], c.attrs["data-status"])
            for c in cells] == [(op.index, op.operator, op.status) for op in order]
    assert [c.attrs["data-runs-on"] for c in cells] == [
        "edgetpu" if op.status == STATUS_MAPPED else "cpu" for op in order]
    assert strip.find_all(cls="strip")[0].attrs["data-order"] == "execution"
    for cell, op in zip(cells, order):
        tooltip = cell.find_all("title")[0].text()
        assert tooltip.startswith("#{} {}: {}".format(op.index, op.operator, op.status))
        assert (op.reason or "") in tooltip
        assert bool(cell.find_all("text")) == (op.status != STATUS_MAPPED)


def rects(nodes):
    return [tuple(float(node.find_all("rect")[0].attrs[key])
                  for key in ("x", "y", "width", "height")) for node in nodes]


def test_strip_geometry_is_a_grid_inside_the_drawing(compiled):
    inputs, outputs, _ = compiled
    strip = parse_html(outputs.html).by_id("strip")
    drawing = strip.by_id("strip-svg")
    width, height = (float(drawing.attrs[key]) for key in ("width", "height"))
    assert drawing.attrs["viewbox"] == "0 0 {:g} {:g}".format(width, height)
    boxes = rects(strip.find_all("g", cls="op"))
    assert len(boxes) == inputs.result.total_operations
    columns = svg.STRIP_COLUMNS
    for position, (x, y, w, h) in enumerate(boxes):
        row, column = divmod(position, columns)
        first_x, first_y, _, _ = boxes[row * columns]
        assert y == first_y and (column == 0 or x > boxes[position - 1][0] + w)  # no overlap
        assert 0 <= x and x + w <= width and 0 <= y and y + h <= height, position
        if row:
            assert y >= boxes[(row - 1) * columns][1] + h  # rows do not overlap either
    pitches = {round(boxes[i + 1][0] - boxes[i][0], 3) for i in range(columns - 1)}
    assert len(pitches) == 1
    assert height - (boxes[-1][1] + boxes[-1][3]) < boxes[0][3]  # no empty row at the end
    labels = [(int(t.text()), float(t.attrs["y"])) for t in strip.find_all("text", cls="row-label")]
    assert [label for label, _ in labels] == list(range(0, len(boxes), columns))
    for (_, y), position in zip(labels, range(0, len(boxes), columns)):
        assert boxes[position][1] <= y <= boxes[position][1] + boxes[position][3]
    for label in strip.find_all("text", cls="row-label"):  # right-aligned left of the cells
        assert label.attrs["text-anchor"] == "end" and float(label.attrs["x"]) < boxes[0][0]
    assert "not in execution order" in strip.by_id("strip-order-note").text()


@pytest.mark.parametrize("case", CASES)
def test_memory_bar_is_to_scale(case, request):
    inputs, outputs, _ = request.getfixturevalue(case)
    result = inputs.result
    memory = parse_html(outputs.html).by_id("memory")
    segments = memory.find_all("g", cls="segment")
    values = [result.on_chip_memory_used_bytes, result.on_chip_memory_remaining_bytes,
              result.off_chip_memory_bytes]
    assert [s.attrs["data-kind"] for s in segments] == ["on-chip-used", "on-chip-remaining",
                                                        "off-chip"]
    assert [int(s.attrs["data-bytes"]) for s in segments] == values
    bar = float(memory.by_id("memory-svg").attrs["width"])
    x = 0.0
    for (left, _, width, _), value in zip(rects(segments), values):
        assert left == pytest.approx(x, abs=0.01)
        assert width == pytest.approx(bar * value / sum(values), abs=0.01)
        x += width
    assert x == pytest.approx(bar, abs=0.02)
    capacity = memory.find_all("g", cls="capacity")
    if values[2]:
        line = capacity[0].find_all("line")[0]
        assert float(line.attrs["x1"]) == pytest.approx(
            bar * (values[0] + values[1]) / sum(values), abs=0.01)
        assert format_size(values[0] + values[1]) in capacity[0].text()
    else:
        assert not capacity
    for node in segments:  # a label inside a segment stays inside it
        for label in node.find_all("text"):
            left, _, width, _ = rects([node])[0]
            assert left < float(label.attrs["x"]) < left + width


def test_fidelity_section_holds_the_plot(predicted):
    _, outputs, _ = predicted
    fidelity = parse_html(outputs.html).by_id("fidelity")
    image = fidelity.by_id("embeddings-plot")
    with open(os.path.join(helpers.FIDELITY_PLOTS, "embeddings.png"), "rb") as handle:
        import base64
        assert image.attrs["src"] == "data:image/png;base64," + base64.b64encode(
            handle.read()).decode("ascii")


def test_refused_model_has_no_cells_and_says_why(tmp_path):
    inputs = helpers.compiled_inputs(str(tmp_path / "in"),
                                     "v16_transpose_conv_v4_refused_stdout.txt")
    outputs = helpers.run_report(inputs, str(tmp_path / "out"))
    page = parse_html(outputs.html)
    assert inputs.result.fatal_error.splitlines()[0] in page.by_id("fatal-error").text()
    assert not page.by_id("strip").find_all("g", cls="op")
    assert "refused" in page.by_id("strip").text()
    assert "no memory lines" in page.by_id("memory").text()
    assert "**The compiler did refuse the model:**" in outputs.markdown


# --------------------------------------------------------------------------------------------
# In headless Chromium
# --------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def chromium():
    return browser.require_chromium()


@pytest.mark.browser
def test_console_capture_sees_a_broken_page(chromium, tmp_path):
    """The console check below can fail: a page with a script error and bad SVG is caught."""
    page = tmp_path / "broken.html"
    page.write_text('<!DOCTYPE html><html><body><svg><rect width="-1" height="x"/></svg>'
                    '<script>notDefined();</script></body></html>', encoding="utf-8")
    _, console = browser.dump_dom(chromium, str(page))
    assert any("Uncaught ReferenceError" in line for line in console), console
    assert any("<rect> attribute width" in line for line in console), console


@pytest.mark.browser
@pytest.mark.parametrize("case", CASES)
def test_chromium_renders_the_report(chromium, case, request):
    inputs, outputs, page = request.getfixturevalue(case)
    dom, console = browser.dump_dom(chromium, page)
    assert console == [], "the page logged to the console:\n" + "\n".join(console)
    root = parse_html(dom)
    result = inputs.result
    assert [table.rows() for table in root.find_all("table")] == [
        table.rows() for table in parse_html(outputs.html).find_all("table")]
    cells = root.by_id("strip").find_all("g", cls="op")
    assert len(cells) == result.total_operations
    assert len(root.by_id("memory").find_all("g", cls="segment")) == 3
    assert root.by_id("embeddings-plot").attrs["src"].startswith("data:image/png;base64,")
    badges = root.find_all(cls="predicted-badge")
    assert bool(badges) == result.predicted


def css_colour(name: str) -> np.ndarray:
    with open(render.CSS_PATH, encoding="utf-8") as handle:
        value = re.search(r"--{}:(#[0-9a-f]{{6}})".format(name), handle.read()).group(1)
    return np.array([int(value[i:i + 2], 16) for i in (1, 3, 5)])


def cell_runs(pixels: np.ndarray, colour: np.ndarray, width: int) -> int:
    """The most runs of `width` (+-1) pixels of `colour` found on one pixel row."""
    mask = np.abs(pixels.astype(int) - colour).max(axis=2) <= 8
    best = 0
    for line in mask:
        edges = np.flatnonzero(np.diff(np.concatenate(([0], line.astype(int), [0]))))
        lengths = edges[1::2] - edges[0::2]
        best = max(best, int(np.sum(np.abs(lengths - width) <= 1)))
    return best


@pytest.mark.browser
def test_screenshot_shows_the_strip_in_both_colours(chromium, predicted, tmp_path):
    inputs, _, page = predicted
    png = str(tmp_path / "report.png")
    console = browser.screenshot(chromium, page, png, window=(1280, 2000))
    assert console == [], "the page logged to the console:\n" + "\n".join(console)
    with open(png, "rb") as handle:
        pixels = np.asarray(Image.open(io.BytesIO(handle.read())).convert("RGB"))
    assert pixels.shape == (2000, 1280, 3)
    packed = (pixels[..., 0].astype(np.int32) << 16) | (pixels[..., 1].astype(np.int32) << 8) \
        | pixels[..., 2]
    assert len(np.unique(packed)) > 50  # not one flat colour: text, tables, strip, bar
    # On one pixel row: one CELL_WIDTH-wide run of each colour per cell of the strip.
    order = inputs.result.execution_order
    on_tpu = sum(1 for op in order if op.status == STATUS_MAPPED)
    assert cell_runs(pixels, css_colour("edgetpu"), svg.CELL_WIDTH) == on_tpu
    assert cell_runs(pixels, css_colour("cpu"), svg.CELL_WIDTH) == len(order) - on_tpu
