"""Lay the report model out as Markdown and as one self-contained HTML page, with Jinja2.

The templates are `templates/report.md.j2` and `templates/report.html.j2`; the page's
stylesheet `report.css` is inlined into it. HTML output is autoescaped. Markdown output is
escaped by default too (`markdown_text` runs on every `{{ }}` value): a value can only add
Markdown structure when a template marks it `|safe`, as the templates' own macros do.
Same model, same bytes: nothing depends on the time, the machine or dict order.
"""
from __future__ import annotations

import os
import re
from typing import Any

import jinja2
from markupsafe import Markup

from facenet_edgetpu.report.formats import thousands
from facenet_edgetpu.report.model import ReportModel

PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
TEMPLATES_DIR = os.path.join(PACKAGE_DIR, "templates")
CSS_PATH = os.path.join(PACKAGE_DIR, "report.css")

_UNESCAPED_PIPE = re.compile(r"(?<!\\)\|")
_BLANK_LINES = re.compile(r"\n{3,}")


def markdown_text(value: Any) -> str:
    """A value as Markdown text: a table cell cannot be split by `|` nor HTML be injected.
    Values marked safe (the output of the templates' macros) are kept as they are."""
    if isinstance(value, Markup):
        return value
    text = str(value)
    return _UNESCAPED_PIPE.sub(r"\\|", text.replace("<", "&lt;").replace(">", "&gt;"))


def svg_number(value: float) -> str:
    """An SVG coordinate: at most two decimals, no trailing zeros (36, 54.5, 123.46)."""
    text = "{:.2f}".format(value).rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def _environment(html: bool) -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR), autoescape=html,
        finalize=None if html else markdown_text, undefined=jinja2.StrictUndefined,
        trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    environment.filters["n"] = svg_number
    environment.filters["thousands"] = thousands
    return environment


def render_markdown(report: ReportModel) -> str:
    text = _environment(html=False).get_template("report.md.j2").render(report=report)
    # Markdown reads any run of blank lines as one: keep one, so that the template can leave
    # a blank line around each optional block without doubling them.
    return _BLANK_LINES.sub("\n\n", text).strip("\n") + "\n"


def render_html(report: ReportModel) -> str:
    with open(CSS_PATH, "r", encoding="utf-8") as handle:
        css = handle.read()
    return _environment(html=True).get_template("report.html.j2").render(
        report=report, css=Markup(css))
