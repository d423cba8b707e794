"""Render the pipeline's report as one self-contained HTML page (reports/report.html).

`render_html` takes the data the report stage gathers (sizes, compile result, quantization
details, crop statistics, toolchain) plus the optional fidelity metrics and embedding plot, and
returns the page as text. The page needs nothing else: the CSS is inline, the operator strip
and the memory bar are inline SVG, the plot is a data: URI, and there is no script. The same
arguments give the same bytes (no timestamps, no unordered iteration).

Sections and the ids tests rely on: #summary, #sizes, #operators, #strip (one `.op` element per
operator with `data-status`), #memory (one `.segment` per memory line), #fidelity,
#quantization, #crops, #toolchain. Every section that shows predicted figures carries a
`.predicted-badge`.
"""
from __future__ import annotations

import base64
import html
import math
import os
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from edgetpu_analyzer.result import STATUS_MAPPED, CompileResult, format_size
from facenet_edgetpu.lib.seed import SEED_OPERATORS, SEED_SIZES

TITLE = "FaceNet \u2192 Edge TPU build report"

# Colours shared by the strip, the operator table and the memory bar (tests look for the
# first two in the screenshot).
EDGETPU_COLOUR = "#1f8a70"
CPU_COLOUR = "#d1495b"
ON_CHIP_FREE_COLOUR = "#bfe3d6"
OFF_CHIP_COLOUR = "#e9a23b"
PREDICTED_COLOUR = "#6a3fb5"

SIZE_LABELS = (("keras_h5", "Keras model (.h5)"), ("tflite", "Full-integer TFLite"),
               ("edgetpu_tflite", "Edge TPU TFLite"))
CROP_COLUMNS = ("photos", "read", "cropped", "no_face", "margin_outside_image", "unreadable",
                "not_tried")

# Operator strip geometry (SVG user units).
STRIP_COLUMNS = 50
CELL_WIDTH = 16
CELL_HEIGHT = 22
CELL_GAP = 2
STRIP_LEFT = 36
CPU_LIST_OPEN_LIMIT = 25

# Memory bar geometry.
BAR_WIDTH = 936
BAR_HEIGHT = 34

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

CSS = """
*{box-sizing:border-box}
body{margin:0;background:#f4f5f7;color:#1d2330;
 font:15px/1.5 -apple-system,"Segoe UI",Roboto,"DejaVu Sans","Helvetica Neue",Arial,sans-serif}
main{max-width:1040px;margin:0 auto;padding:24px 20px 40px}
header.page{background:#1d2330;color:#fff;padding:26px 28px 22px;border-radius:10px}
header.page h1{margin:0 0 4px;font-size:26px;font-weight:650;letter-spacing:-.01em}
header.page .subtitle{color:#c5cad6;margin:0}
header.page .subtitle code{color:#fff}
.cards{display:flex;flex-wrap:wrap;gap:12px;margin-top:18px}
.card{flex:1 1 200px;background:#2a3242;border-radius:8px;padding:10px 14px}
.card .label{display:block;font-size:12px;text-transform:uppercase;letter-spacing:.06em;
 color:#aeb5c4}
.card .value{display:block;font-size:21px;font-weight:650;font-variant-numeric:tabular-nums;
 white-space:nowrap}
.card .detail{display:block;font-size:13px;color:#c5cad6}
.predicted-badge{display:inline-block;background:%(predicted)s;color:#fff;font-size:12px;
 font-weight:700;letter-spacing:.08em;padding:2px 9px;border-radius:999px;vertical-align:middle;
 margin-left:8px}
.banner{margin:16px 0 0;padding:12px 16px;border-radius:8px;font-size:14px}
.banner.predicted{background:#efe8fa;border-left:5px solid %(predicted)s;color:#2e1d4f}
.banner.fatal{background:#fde8eb;border-left:5px solid %(cpu)s;color:#5a1420}
.banner ul{margin:6px 0 0;padding-left:20px}
section{background:#fff;border:1px solid #e1e4ea;border-radius:10px;padding:18px 22px;
 margin-top:18px}
section h2{margin:0 0 12px;font-size:19px;font-weight:650}
section h3{margin:18px 0 8px;font-size:15px;font-weight:650;color:#3a4254}
p.note{color:#545c6e;font-size:13.5px;margin:8px 0 0}
table{border-collapse:collapse;width:100%%;font-size:14px}
th,td{text-align:left;padding:6px 10px;border-bottom:1px solid #e8eaef;vertical-align:top}
th{font-size:12px;text-transform:uppercase;letter-spacing:.05em;color:#636b7d;font-weight:650;
 background:#f8f9fb}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
tr.cpu td{background:#fdf1f3}
tr.cpu td:first-child{box-shadow:inset 4px 0 0 %(cpu)s}
.pill{display:inline-block;padding:1px 8px;border-radius:999px;font-size:12px;font-weight:650;
 color:#fff;white-space:nowrap}
.pill.edgetpu{background:%(edgetpu)s}
.pill.cpu{background:%(cpu)s}
.key{display:inline-block;min-width:18px;text-align:center;border-radius:4px;color:#fff;
 background:%(cpu)s;font-weight:700;font-size:12px;margin-right:4px}
.delta-up{color:#a3293b}
.delta-down{color:#1f7a52}
tr.total td{font-weight:650;border-top:2px solid #c9ced8;background:#f8f9fb}
.muted{color:#8a91a0}
svg{display:block;max-width:100%%;height:auto}
.legend{display:flex;flex-wrap:wrap;gap:6px 18px;margin:10px 0 0;padding:0;list-style:none;
 font-size:13.5px}
.legend li{display:flex;align-items:center;gap:6px}
.swatch{display:inline-block;width:14px;height:14px;border-radius:3px}
.groups{display:grid;grid-template-columns:repeat(auto-fit,minmax(280px,1fr));gap:0 28px}
details summary{cursor:pointer;color:#3a4254;font-weight:600;margin-top:10px}
figure{margin:14px 0 0}
figure img{max-width:100%%;border:1px solid #e1e4ea;border-radius:6px}
figcaption{font-size:13px;color:#545c6e}
code{font-family:"DejaVu Sans Mono",Menlo,Consolas,monospace;font-size:.92em}
footer{margin-top:22px;color:#8a91a0;font-size:12.5px;text-align:center}
""" % {"predicted": PREDICTED_COLOUR, "cpu": CPU_COLOUR, "edgetpu": EDGETPU_COLOUR}


def _e(value: Any) -> str:
    """Text escaped for HTML content and attribute values."""
    return html.escape(str(value), quote=True)


def _bytes(size: Optional[int]) -> str:
    return "{:,}".format(size) if size is not None else "\u2013"


def _number(value: Any) -> str:
    """A metric value as text: ints with separators, floats to four to six decimals."""
    if value is None:
        return "\u2013"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return "{:,}".format(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "\u221e" if value > 0 else "\u2212\u221e"
        if value == 0 or 1e-3 <= abs(value) < 1e5:
            # Up to six decimals (what the stages round to), at least four (for alignment).
            text = "{:.6f}".format(value).rstrip("0")
            return text + "0" * max(0, 4 - len(text.split(".")[1]))
        return "{:.3e}".format(value)
    if isinstance(value, (list, tuple)):
        shown = ", ".join(_number(item) for item in value[:8])
        return shown + (", \u2026 ({} values)".format(len(value)) if len(value) > 8 else "")
    return str(value)


def _is_numeric(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _badge(predicted: bool) -> str:
    return ('<span class="predicted-badge" title="Predicted by edgetpu-predict, not compiler '
            'output">PREDICTED</span>') if predicted else ""


class _Raw(object):
    """Markup that `_table` inserts as is (built from escaped parts)."""

    def __init__(self, markup: str) -> None:
        self.markup = markup


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]], table_id: str = "",
           numeric: Sequence[int] = (), row_classes: Sequence[str] = ()) -> str:
    """A table; cells are escaped unless they are `_Raw` markup."""
    out = ['<table{}>'.format(' id="{}"'.format(_e(table_id)) if table_id else ""), "<thead><tr>"]
    for column, name in enumerate(header):
        out.append('<th{}>{}</th>'.format(' class="num"' if column in numeric else "", _e(name)))
    out.append("</tr></thead><tbody>")
    for index, row in enumerate(rows):
        css = row_classes[index] if index < len(row_classes) and row_classes[index] else ""
        out.append('<tr{}>'.format(' class="{}"'.format(css) if css else ""))
        for column, cell in enumerate(row):
            text = cell.markup if isinstance(cell, _Raw) else _e(cell)
            out.append('<td{}>{}</td>'.format(' class="num"' if column in numeric else "", text))
        out.append("</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def _section(section_id: str, title: str, body: List[str], predicted: bool = False) -> str:
    return '<section id="{}"><h2>{}{}</h2>\n{}\n</section>'.format(
        section_id, _e(title), _badge(predicted), "\n".join(body))


# --------------------------------------------------------------------------------------------
# Header
# --------------------------------------------------------------------------------------------

def _header(result: CompileResult, sizes: Mapping[str, Optional[int]], title: str) -> str:
    kind = "predicted by edgetpu-predict" if result.predicted else "compiled"
    model = os.path.basename(result.input_model) if result.input_model else "facenet_keras.tflite"
    subtitle = "<code>{}</code> \u00b7 Edge TPU compiler {} \u00b7 {}{}".format(
        _e(model), _e(result.compiler_version), _e(kind),
        " \u00b7 <code>--min_runtime_version {}</code>".format(_e(result.min_runtime_version))
        if result.min_runtime_version is not None else "")
    cards = []
    if result.total_operations:
        cards.append(("On the Edge TPU", "{} / {}".format(
            result.operations_on_edgetpu or 0, result.total_operations),
            "{:.1f} % mapped \u00b7 {} on CPU".format(
                100.0 * result.mapped_fraction(), result.operations_on_cpu or 0)))
    if result.edgetpu_subgraphs is not None:
        cards.append(("Edge TPU subgraphs", str(result.edgetpu_subgraphs),
                      "one is the best case" if result.edgetpu_subgraphs == 1 else ""))
    if result.on_chip_memory_used_bytes is not None or result.off_chip_memory_bytes is not None:
        cards.append(("Parameters on / off chip", "{} / {}".format(
            format_size(result.on_chip_memory_used_bytes or 0),
            format_size(result.off_chip_memory_bytes or 0)),
            "off-chip: streamed per inference"))
    edgetpu_size = sizes.get("edgetpu_tflite")
    if edgetpu_size is not None:
        cards.append(("Edge TPU model", format_size(edgetpu_size),
                      "{:,} bytes".format(edgetpu_size)))
    elif sizes.get("tflite") is not None:
        cards.append(("Full-integer TFLite", format_size(sizes["tflite"]),
                      "{:,} bytes".format(sizes["tflite"])))
    card_html = "".join(
        '<div class="card"><span class="label">{}</span><span class="value">{}</span>'
        '<span class="detail">{}</span></div>'.format(_e(label), _e(value), _e(detail))
        for label, value, detail in cards)
    out = ['<header class="page" id="summary"><h1>{}{}</h1>'.format(_e(title),
                                                                       _badge(result.predicted)),
           '<p class="subtitle">{}</p>'.format(subtitle)]
    if card_html:
        out.append('<div class="cards">{}</div>'.format(card_html))
    out.append("</header>")
    if result.predicted:
        notes = "".join("<li>{}</li>".format(_e(note)) for note in result.notes)
        out.append(
            '<div class="banner predicted" id="prediction-note"><strong>Predicted, not compiled.'
            '</strong> No <code>edgetpu_compiler</code> ran: the operator statuses, the strip and '
            'the memory figures below follow the compiler\'s published rules; the memory '
            'figures are estimates.{}</div>'.format("<ul>{}</ul>".format(notes) if notes else ""))
    if result.fatal_error:
        out.append('<div class="banner fatal" id="fatal-error"><strong>The compiler {} refuse '
                   'the model:</strong> <code>{}</code></div>'.format(
                       "would" if result.predicted else "did", _e(result.fatal_error)))
    return "\n".join(out)


# --------------------------------------------------------------------------------------------
# Sizes and operators
# --------------------------------------------------------------------------------------------

def _sizes(sizes: Mapping[str, Optional[int]], seed_sizes: Mapping[str, int],
           result: CompileResult) -> str:
    rows = []
    for name, label in SIZE_LABELS:
        size = sizes.get(name)
        seed = seed_sizes.get(name)
        if size is not None:
            this_run = _Raw("{} <span class=\"muted\">({})</span>".format(
                _e(_bytes(size)), _e(format_size(size))))
        elif name == "edgetpu_tflite" and result.predicted and result.output_size_bytes:
            this_run = _Raw("\u2248 {}{}".format(_e(format_size(result.output_size_bytes)),
                                                 _badge(True)))
        else:
            this_run = _Raw('<span class="muted">not built</span>')
        if size is not None and seed:
            change = 100.0 * (size - seed) / seed
            delta = _Raw('<span class="{}">{:+.2f} %</span>'.format(
                "delta-up" if change > 0 else "delta-down" if change < 0 else "muted", change))
        else:
            delta = "\u2013"
        rows.append([label, this_run, _bytes(seed), delta])
    return _section("sizes", "Sizes", [
        _table(["artifact", "bytes (this run)", "bytes (seed)", "vs seed"], rows,
               numeric=(1, 2, 3)),
        '<p class="note">Seed: TF 1.15 converter, Edge TPU compiler 15.0.340273435.</p>'])


def _runs_on(status: Optional[str]) -> str:
    return "edgetpu" if status == STATUS_MAPPED else "cpu"


def _pill(status: Optional[str]) -> str:
    where = _runs_on(status)
    return '<span class="pill {}">{}</span>'.format(where, "Edge TPU" if where == "edgetpu"
                                                     else "CPU")


def _operators(result: CompileResult) -> str:
    rows = sorted(result.operators, key=lambda row: (row.operator, row.status))
    body = []
    if result.total_operations is not None:
        body.append('<p>{} operations: <strong>{}</strong> on the Edge TPU, <strong>{}</strong> '
                    'on the CPU, in {} Edge TPU subgraph(s).</p>'.format(
                        _e(result.total_operations), _e(result.operations_on_edgetpu),
                        _e(result.operations_on_cpu), _e(result.edgetpu_subgraphs)))
    if rows:
        body.append(_table(
            ["operator", "count", "runs on", "status"],
            [[row.operator, row.count, _Raw(_pill(row.status)), row.status] for row in rows],
            table_id="operator-table", numeric=(1,),
            row_classes=["cpu" if row.status != STATUS_MAPPED else "" for row in rows]))
    else:
        body.append('<p class="note">No operator table (the compiler stopped before it).</p>')
    return _section("operators", "Operators", body, result.predicted)


# --------------------------------------------------------------------------------------------
# Operator strip
# --------------------------------------------------------------------------------------------

def _strip_cells(result: CompileResult) -> Tuple[List[Tuple[int, str, str, str]], str]:
    """(index, operator, status, reason) per cell, and "execution" or "table" order."""
    if result.execution_order:
        return [(op.index, op.operator, op.status or "", op.reason or "")
                for op in result.execution_order], "execution"
    cells = []
    for row in result.operators:
        for _ in range(row.count):
            cells.append((len(cells), row.operator, row.status, ""))
    return cells, "table"


def _status_keys(statuses: Sequence[str]) -> Dict[str, str]:
    """A letter per CPU status, in order of first appearance."""
    keys = {}  # type: Dict[str, str]
    for status in statuses:
        if status != STATUS_MAPPED and status not in keys:
            index = len(keys)
            keys[status] = chr(ord("A") + index) if index < 26 else str(index + 1)
    return keys


def _strip(result: CompileResult) -> str:
    cells, order = _strip_cells(result)
    if not cells:
        return _section("strip", "Operator strip", [
            '<p class="note">No operators to show{}.</p>'.format(
                ": the compiler refused the model" if result.fatal_error else "")],
            result.predicted)
    keys = _status_keys([status for _, _, status, _ in cells])
    rows = (len(cells) + STRIP_COLUMNS - 1) // STRIP_COLUMNS
    pitch = CELL_WIDTH + CELL_GAP
    width = STRIP_LEFT + STRIP_COLUMNS * pitch
    height = rows * (CELL_HEIGHT + CELL_GAP)
    svg = ['<svg id="strip-svg" viewBox="0 0 {w} {h}" '
           'width="{w}" height="{h}" role="img" aria-label="{n} operators in {o} order">'.format(
               w=width, h=height, n=len(cells), o=order)]
    for row in range(rows):
        svg.append('<text x="{}" y="{}" font-size="10" fill="#8a91a0" text-anchor="end">{}</text>'
                   .format(STRIP_LEFT - 6, row * (CELL_HEIGHT + CELL_GAP) + 15,
                           row * STRIP_COLUMNS))
    for position, (index, operator, status, reason) in enumerate(cells):
        x = STRIP_LEFT + (position % STRIP_COLUMNS) * pitch
        y = (position // STRIP_COLUMNS) * (CELL_HEIGHT + CELL_GAP)
        where = _runs_on(status)
        tooltip = "#{} {}: {}{}".format(index, operator, status or "no status",
                                         " \u2014 " + reason if reason else "")
        svg.append('<g class="op {w}" data-index="{i}" data-operator="{o}" data-status="{s}" '
                   'data-runs-on="{w}"><title>{t}</title><rect x="{x}" y="{y}" width="{cw}" '
                   'height="{ch}" rx="2" fill="{c}"/>'.format(
                       w=where, i=index, o=_e(operator), s=_e(status), t=_e(tooltip), x=x, y=y,
                       cw=CELL_WIDTH, ch=CELL_HEIGHT,
                       c=EDGETPU_COLOUR if where == "edgetpu" else CPU_COLOUR))
        if where == "cpu":
            svg.append('<text x="{}" y="{}" font-size="10" font-weight="700" fill="#fff" '
                       'text-anchor="middle">{}</text>'.format(
                           x + CELL_WIDTH / 2.0, y + 15, _e(keys[status])))
        svg.append("</g>")
    svg.append("</svg>")

    on_tpu = sum(1 for cell in cells if cell[2] == STATUS_MAPPED)
    legend = ['<ul class="legend" id="strip-legend"><li><span class="swatch" style="background:'
              '{}"></span>Edge TPU ({})</li>'.format(EDGETPU_COLOUR, on_tpu)]
    for status, key in keys.items():
        count = sum(1 for cell in cells if cell[2] == status)
        legend.append('<li data-status="{}"><span class="key">{}</span>CPU: {} ({})</li>'.format(
            _e(status), _e(key), _e(status or "no status"), count))
    legend.append("</ul>")

    if order == "execution":
        caption = ('<p class="note">One cell per operator of the main subgraph in execution '
                   'order, left to right, {} per row (row labels are operator indices). Hover a '
                   'cell for its operator and status.</p>'.format(STRIP_COLUMNS))
    else:
        caption = ('<p class="note" id="strip-order-note"><strong>Execution order unknown:</strong>'
                   ' the compiler prints only the operator table, so the cells are drawn from '
                   'its counts, grouped by table row, not in execution order.</p>')

    cpu_cells = [cell for cell in cells if cell[2] != STATUS_MAPPED]
    listing = ""
    if cpu_cells:
        if order == "execution":
            table = _table(["#", "operator", "status", "why"], [
                [index, operator, _Raw('<span class="key">{}</span>{}'.format(
                    _e(keys[status]), _e(status or "no status"))), reason or "\u2013"]
                for index, operator, status, reason in cpu_cells],
                table_id="cpu-operators", numeric=(0,))
        else:
            table = _table(["operator", "count", "status"], [
                [row.operator, row.count, _Raw('<span class="key">{}</span>{}'.format(
                    _e(keys[row.status]), _e(row.status)))]
                for row in result.operators if row.status != STATUS_MAPPED],
                table_id="cpu-operators", numeric=(1,))
        heading = "Operators on the CPU ({})".format(len(cpu_cells))
        if len(cpu_cells) <= CPU_LIST_OPEN_LIMIT:
            listing = "<h3>{}</h3>{}".format(_e(heading), table)
        else:
            listing = "<details><summary>{}</summary>{}</details>".format(_e(heading), table)
    body = ['<div class="strip" data-order="{}" data-count="{}">{}</div>'.format(
        order, len(cells), "".join(svg)), "".join(legend), caption]
    if listing:
        body.append(listing)
    return _section("strip", "Operator strip", body, result.predicted)


# --------------------------------------------------------------------------------------------
# Memory bar
# --------------------------------------------------------------------------------------------

def _memory(result: CompileResult) -> str:
    used = result.on_chip_memory_used_bytes
    remaining = result.on_chip_memory_remaining_bytes
    derived = False
    if remaining is None and result.on_chip_memory_available_bytes is not None and used is not None:
        remaining = max(result.on_chip_memory_available_bytes - used, 0)
        derived = True
    off_chip = result.off_chip_memory_bytes
    segments = [("on-chip-used", "On-chip used", used, EDGETPU_COLOUR, "#fff"),
                ("on-chip-remaining", "On-chip remaining" + (" (available \u2212 used)"
                                                              if derived else ""),
                 remaining, ON_CHIP_FREE_COLOUR, "#1d2330"),
                ("off-chip", "Off-chip (streamed)", off_chip, OFF_CHIP_COLOUR, "#1d2330")]
    known = [segment for segment in segments if segment[2] is not None]
    total = sum(segment[2] for segment in known)
    body = []
    if not known:
        body.append('<p class="note">The compile result has no memory lines.</p>')
        return _section("memory", "Parameter memory", body, result.predicted)

    svg = ['<svg id="memory-svg" viewBox="0 0 {w} {h}" '
           'width="{w}" height="{h}" role="img" aria-label="parameter memory">'.format(
               w=BAR_WIDTH, h=BAR_HEIGHT + 22)]
    svg.append('<rect x="0" y="0" width="{}" height="{}" rx="4" fill="#eef0f3"/>'.format(
        BAR_WIDTH, BAR_HEIGHT))
    x = 0.0
    for kind, label, value, colour, ink in known:
        width = BAR_WIDTH * value / float(total) if total else 0.0
        text = "{} {}".format(label.split(" (")[0], format_size(value))
        svg.append('<g class="segment" data-kind="{}" data-bytes="{}"><title>{}: {} ({:,} bytes)'
                   '</title><rect x="{:.2f}" y="0" width="{:.2f}" height="{}" fill="{}"/>'.format(
                       kind, value, _e(label), _e(format_size(value)), value, x, width,
                       BAR_HEIGHT, colour))
        if width >= 7.2 * len(text) + 12:
            svg.append('<text x="{:.2f}" y="{}" font-size="12.5" fill="{}">{}</text>'.format(
                x + 8, BAR_HEIGHT / 2.0 + 4.5, ink, _e(text)))
        svg.append("</g>")
        x += width
    if used is not None and remaining is not None and off_chip and total:
        edge = BAR_WIDTH * (used + remaining) / float(total)
        svg.append('<line x1="{e:.2f}" y1="0" x2="{e:.2f}" y2="{h}" stroke="#1d2330" '
                   'stroke-width="2"/><text x="{e:.2f}" y="{t}" font-size="11.5" fill="#545c6e" '
                   'text-anchor="{a}">on-chip capacity {c}</text>'.format(
                       e=edge, h=BAR_HEIGHT + 6, t=BAR_HEIGHT + 18,
                       a="end" if edge > BAR_WIDTH / 2.0 else "start",
                       c=_e(format_size(used + remaining))))
    svg.append("</svg>")
    legend = ['<ul class="legend" id="memory-legend">']
    for kind, label, value, colour, _ in segments:
        shown = format_size(value) if value is not None else "not reported"
        share = " \u00b7 {:.1f} %".format(100.0 * value / total) if value is not None and total \
            else ""
        legend.append('<li data-kind="{}"><span class="swatch" style="background:{}"></span>'
                      '{}: <strong>{}</strong>{}</li>'.format(kind, colour, _e(label), _e(shown),
                                                              _e(share)))
    legend.append("</ul>")
    body += ["".join(svg), "".join(legend),
             '<p class="note">To scale. Parameters that do not fit in the Edge TPU\'s on-chip '
             'memory are streamed from host memory on every inference.{} Units as the compiler '
             'prints them.</p>'.format(" These figures are estimates." if result.predicted
                                       else "")]
    return _section("memory", "Parameter memory", body, result.predicted)


# --------------------------------------------------------------------------------------------
# Fidelity
# --------------------------------------------------------------------------------------------

def _flatten(value: Any, prefix: str = "") -> List[Tuple[str, Any]]:
    """Scalar leaves of nested dicts as (dotted key, value), in the dict's order."""
    if isinstance(value, Mapping):
        items = []  # type: List[Tuple[str, Any]]
        for key, inner in value.items():
            items.extend(_flatten(inner, "{}.{}".format(prefix, key) if prefix else str(key)))
        return items
    return [(prefix, value)]


def _matrix(rows: Sequence[Tuple[str, Any]], corner: str) -> str:
    """A table with one row per (name, nested dict) and one column per flattened key."""
    flat = [(name, dict(_flatten(value))) for name, value in rows]
    columns = []  # type: List[str]
    for _, values in flat:
        for key in values:
            if key not in columns:
                columns.append(key)
    numeric = [index + 1 for index, key in enumerate(columns)
               if all(_is_numeric(values.get(key)) or values.get(key) is None
                      for _, values in flat)]
    return _table([corner] + columns,
                  [[name] + [_number(values.get(key)) for key in columns] for name, values in flat],
                  numeric=numeric)


def _is_scalar_dict(value: Any) -> bool:
    return isinstance(value, Mapping) and not any(
        isinstance(inner, (Mapping, list)) for inner in value.values())


def _key_values(data: Mapping[str, Any]) -> str:
    return _table(["metric", "value"], [[key, _number(value)] for key, value in data.items()],
                  numeric=(1,))


def _fidelity_block(data: Mapping[str, Any], depth: int) -> List[str]:
    """Any nesting of dicts as tables: dicts of dicts become one row per key (variant x metric),
    dicts of numbers become metric/value tables, deeper dicts recurse."""
    out = []
    matrices, groups, nested = [], [], []
    scalars = {}  # type: Dict[str, Any]
    for key, value in data.items():
        heading = "<h3>{}</h3>".format(_e(key))
        if isinstance(value, list) and any(isinstance(v, Mapping) for v in value):
            matrices.append(heading + _matrix(
                [(str(i), v if isinstance(v, Mapping) else {"value": v})
                 for i, v in enumerate(value)], "#"))
        elif isinstance(value, Mapping) and value and all(
                isinstance(inner, Mapping) for inner in value.values()):
            matrices.append(heading + _matrix(list(value.items()), str(key)))
        elif _is_scalar_dict(value):
            groups.append('<div class="group">{}{}</div>'.format(heading, _key_values(value)))
        elif isinstance(value, Mapping):
            nested.append(heading + ("".join(_fidelity_block(value, depth + 1)) if depth < 4
                                     else _matrix([(str(key), value)], "entry")))
        else:
            scalars[str(key)] = value
    out.extend(matrices)
    if scalars:
        groups.insert(0, '<div class="group">{}</div>'.format(_key_values(scalars)))
    if groups:
        out.append('<div class="groups">{}</div>'.format("".join(groups)))
    out.extend(nested)
    return out


def _embedded_png(path: str) -> str:
    if not os.path.exists(path):
        return '<p class="note">No embedding plot ({} is missing).</p>'.format(_e(path))
    with open(path, "rb") as handle:
        data = handle.read()
    if not data.startswith(PNG_SIGNATURE):
        return '<p class="note">{} is not a PNG file; not embedded.</p>'.format(_e(path))
    return ('<figure><img id="embeddings-plot" alt="Float and int8 embeddings" '
            'src="data:image/png;base64,{}"><figcaption>{}</figcaption></figure>'.format(
                base64.b64encode(data).decode("ascii"), _e(os.path.basename(path))))


def _fidelity(fidelity: Optional[Mapping[str, Any]], embeddings_png: Optional[str]) -> str:
    body = []
    if fidelity:
        body.append('<p class="note">The float model against the full-integer model, as the '
                    'fidelity stage measured them (reports/fidelity.json).</p>')
        body.extend(_fidelity_block(fidelity, 0))
    else:
        body.append('<p class="note" id="fidelity-missing">No fidelity metrics '
                    '(reports/fidelity.json was not given).</p>')
    if embeddings_png:
        body.append(_embedded_png(embeddings_png))
    return _section("fidelity", "Fidelity: float vs int8", body)


# --------------------------------------------------------------------------------------------
# Quantization, calibration faces, toolchain
# --------------------------------------------------------------------------------------------

def _tensors(quantization: Mapping[str, Any]) -> List[Tuple[str, Mapping[str, Any]]]:
    """(label, details) of the model's inputs and outputs, in either layout of the report."""
    tensors = []
    for side in ("input", "output"):
        if isinstance(quantization.get(side), Mapping):
            tensors.append((side, quantization[side]))
        for number, details in enumerate(quantization.get(side + "s") or []):
            tensors.append(("{} {}".format(side, number) if len(quantization[side + "s"]) > 1
                            else side, details))
    return tensors


def _quantization(quantization: Mapping[str, Any], seed_operators: Mapping[str, int]) -> str:
    body = []
    tensors = _tensors(quantization)
    if tensors:
        body.append(_table(["tensor", "name", "dtype", "shape", "scale", "zero point"], [
            [label, details.get("name", "\u2013"), details.get("dtype", "\u2013"),
             "\u00d7".join(str(d) for d in details.get("shape", [])) or "\u2013",
             details.get("scale", "\u2013"), details.get("zero_point", "\u2013")]
            for label, details in tensors], numeric=(4, 5)))
    facts = [(label, quantization[key]) for key, label in (
        ("calibration_samples", "calibration faces"), ("io_type", "input/output type"),
        ("converter", "converter"), ("tensorflow_version", "TensorFlow"),
        ("tflite_sha256", "TFLite sha256")) if key in quantization]
    if facts:
        body.append('<p class="note">{}</p>'.format(" \u00b7 ".join(
            "{}: <code>{}</code>".format(_e(label), _e(value)) for label, value in facts)))
    operators = quantization.get("operators") or {}
    names = sorted(set(operators) | set(seed_operators))
    if names:
        body.append("<h3>TFLite operators</h3>")
        counts = [(name, operators.get(name, 0), seed_operators.get(name, 0)) for name in names]
        counts.append(("total", sum(operators.values()), sum(seed_operators.values())))
        body.append(_table(
            ["operator", "this run", "seed (TF 1.15)", "difference"],
            [[name, ours, seed, "{:+d}".format(ours - seed) if ours != seed else "\u2013"]
             for name, ours, seed in counts],
            table_id="tflite-operators", numeric=(1, 2, 3),
            row_classes=[""] * (len(counts) - 1) + ["total"]))
    return _section("quantization", "Quantization", body)


def _crops(crops: Mapping[str, Mapping[str, Any]]) -> str:
    if not crops:
        return _section("crops", "Calibration faces", ['<p class="note">No crop statistics.</p>'])
    keys = [key for key in CROP_COLUMNS if any(key in counts for counts in crops.values())]
    keys += sorted({key for counts in crops.values() for key in counts} - set(keys))
    return _section("crops", "Calibration faces", [_table(
        ["split"] + keys, [[split] + [_number(crops[split].get(key, 0)) for key in keys]
                           for split in sorted(crops)], numeric=range(1, len(keys) + 1))])


def _toolchain(toolchain: Mapping[str, Any]) -> str:
    return _section("toolchain", "Toolchain", [_table(
        ["component", "version"], [[key, toolchain[key]] for key in sorted(toolchain)],
        table_id="toolchain-table")])


# --------------------------------------------------------------------------------------------
# The page
# --------------------------------------------------------------------------------------------

def render_html(sizes: Mapping[str, Optional[int]], result: CompileResult,
                quantization: Mapping[str, Any], crops: Mapping[str, Mapping[str, Any]],
                toolchain: Mapping[str, Any], fidelity: Optional[Mapping[str, Any]] = None,
                embeddings_png: Optional[str] = None, title: str = TITLE) -> str:
    """The report as one self-contained HTML page.

    Args:
        sizes: bytes per artifact ("keras_h5", "tflite", "edgetpu_tflite"; None = not built).
        result: the compile result, real or predicted.
        quantization: models/quantization.json.
        crops: reports/crop_metrics.json (counts per split).
        toolchain: toolchain.yaml.
        fidelity: reports/fidelity.json, any nesting of dicts of numbers; None = not run.
        embeddings_png: path of a PNG to embed as a data: URI; None = no plot.
        title: the page's heading.

    Returns:
        The HTML text; the same arguments give the same text.
    """
    sections = [
        _header(result, sizes, title),
        _sizes(sizes, SEED_SIZES, result),
        _operators(result),
        _strip(result),
        _memory(result),
        _fidelity(fidelity, embeddings_png),
        _quantization(quantization, SEED_OPERATORS),
        _crops(crops),
        _toolchain(toolchain),
    ]
    return "\n".join([
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<title>{}{}</title>".format(_e(title), " (predicted)" if result.predicted else ""),
        "<style>{}</style>".format(CSS),
        "</head>",
        '<body data-predicted="{}">'.format("true" if result.predicted else "false"),
        "<main>",
    ] + sections + [
        '<footer>Written by <code>python -m facenet_edgetpu report</code>. Self-contained: no scripts, no '
        'external resources.</footer>',
        "</main>",
        "</body>",
        "</html>",
    ]) + "\n"
