"""Inputs of the report stage made the way the pipeline makes them, and readers of its outputs.

The JSON inputs are the committed real outputs of the stages (models/quantization.json,
reports/crop_metrics.json, reports/fidelity.json and the embeddings plot); toolchain.yaml is
written by `facenet_edgetpu.core.toolchain`. The compile result is either

- predicted: `edgetpu_analyzer.predict.predict_file` on a small Keras model quantized to uint8
  here, whose third operator (LEAKY_RELU) the Edge TPU lacks, so both colours appear, and
  whose file name holds characters HTML and Markdown must escape; or
- compiled: `edgetpu_analyzer.parse` on real `edgetpu_compiler` stdout from tests/data.

The compiled case has no model files to match the stdout (FaceNet comes out of the pipeline),
so it gets files of known size in their place: the report reads only their sizes.
"""
from __future__ import annotations

import os
import re
import warnings
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Dict, List, Optional


from edgetpu_analyzer.parse import parse_compiler_stdout
from edgetpu_analyzer.predict import predict_file
from edgetpu_analyzer.result import CompileResult
from facenet_edgetpu.core import artifacts, toolchain
from facenet_edgetpu.core.dvcfile import load_stages
from facenet_edgetpu.core.params import load_params
from facenet_edgetpu.lib import records
from facenet_edgetpu.stages import report
from tests.tiny_models import convert

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(REPO, "tests", "data")
QUANTIZATION = os.path.join(REPO, "models", "quantization.json")
CROPS = os.path.join(REPO, "reports", "crop_metrics.json")
FIDELITY = os.path.join(REPO, "reports", "fidelity.json")
FIDELITY_PLOTS = os.path.join(REPO, "reports", "fidelity")
PREDICT_COMPILER = "16.0.384591198"
MIN_RUNTIME_VERSION = 12
# A legal file name that HTML and Markdown must both escape.
AWKWARD_NAME = "tiny <b>|&.tflite"


@dataclass
class Inputs:
    """What the report stage reads besides the committed JSON files."""

    compile_dir: str
    toolchain: str
    tflite: str
    model: str
    result: CompileResult

    def argv(self, out_dir: str) -> List[str]:
        return ["--compile-dir", self.compile_dir, "--quantization", QUANTIZATION,
                "--crops", CROPS, "--fidelity", FIDELITY, "--fidelity-plots", FIDELITY_PLOTS,
                "--toolchain", self.toolchain, "--tflite", self.tflite, "--model", self.model,
                "--out-md", os.path.join(out_dir, "report.md"),
                "--out-html", os.path.join(out_dir, "report.html"),
                "--metrics", os.path.join(out_dir, "metrics.json"),
                "--plots", os.path.join(out_dir, "plots")]


@dataclass
class Outputs:
    markdown: str
    html: str
    metrics: Dict
    operators_csv: str
    sizes_csv: str


def write_toolchain(path: str) -> str:
    """toolchain.yaml as `python -m facenet_edgetpu toolchain` writes it for the repository's
    dvc.yaml, all stages running here."""
    params = load_params(os.path.join(REPO, "params.yaml"))
    stages = load_stages(REPO, params)
    everything = toolchain.current_toolchain("edgetpu_compiler")
    sections = {stage: {key: everything[key] for key in keys}
                for stage, keys in toolchain.declared_keys(stages).items()}
    artifacts.write_text(path, toolchain.toolchain_text(sections))
    return path


def write_compile_result(directory: str, result: CompileResult) -> str:
    """The compile stage's result file."""
    artifacts.write_json(os.path.join(directory, records.COMPILE_RESULT_FILE), result.to_dict())
    return directory


def _uint8_model(h5_path: str) -> bytes:
    """A small Keras model saved as .h5, quantized like the quantize stage does (uint8 I/O)."""
    import tensorflow as tf

    layers = tf.keras.layers
    inputs = layers.Input((16, 16, 3), batch_size=1)
    x = layers.Conv2D(8, 3, padding="same")(inputs)
    x = layers.LeakyReLU()(x)
    x = layers.Conv2D(8, 3, padding="same")(x)
    model = tf.keras.Model(inputs, layers.GlobalAveragePooling2D()(x))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "HDF5 is legacy": the pipeline's model is an .h5
        model.save(h5_path)
    return convert(model, "uint8")


def predicted_inputs(root: str) -> Inputs:
    """A prediction for a model with an Edge TPU part and a CPU part, as the compile stage
    makes it when no compiler is installed."""
    model = os.path.join(root, "tiny.h5")
    tflite = os.path.join(root, AWKWARD_NAME)
    artifacts.write_bytes(tflite, _uint8_model(model))
    result = predict_file(tflite, PREDICT_COMPILER, MIN_RUNTIME_VERSION,
                          display_path=os.path.basename(tflite))
    compile_dir = write_compile_result(os.path.join(root, "edgetpu"), result)
    return Inputs(compile_dir, write_toolchain(os.path.join(root, "toolchain.yaml")), tflite,
                  model, result)


def compiled_inputs(root: str, stdout_file: str = "seed000_facenet_v15_stdout.txt",
                    sizes=(92397640 // 1024, 23812408 // 1024, 23515704 // 1024)) -> Inputs:
    """A real compiler's result, as the compile stage keeps it (with the compiled model)."""
    with open(os.path.join(DATA, stdout_file), "r", encoding="utf-8") as handle:
        result = parse_compiler_stdout(handle.read())
    result.min_runtime_version = MIN_RUNTIME_VERSION  # the compile stage records its flag
    compile_dir = write_compile_result(os.path.join(root, "edgetpu"), result)
    model, tflite = os.path.join(root, "facenet_keras.h5"), os.path.join(root, "facenet.tflite")
    paths = [model, tflite]
    if result.succeeded:  # the compiler wrote a model
        paths.append(os.path.join(compile_dir, os.path.basename(result.output_model)))
    for path, size in zip(paths, sizes):
        artifacts.write_bytes(path, b"\0" * size)
    return Inputs(compile_dir, write_toolchain(os.path.join(root, "toolchain.yaml")), tflite,
                  model, result)


_BUILT: Dict[str, Inputs] = {}


def shared(name: str, make, tmp_path_factory) -> Inputs:
    """`make(folder)` once per test session (the predicted case converts a model with TF)."""
    if name not in _BUILT:
        _BUILT[name] = make(str(tmp_path_factory.mktemp(name)))
    return _BUILT[name]


def run_report(inputs: Inputs, out_dir: str) -> Outputs:
    """Run the report stage's main() and read what it wrote."""
    report.main(inputs.argv(out_dir))

    def text(*parts):
        with open(os.path.join(out_dir, *parts), "r", encoding="utf-8") as handle:
            return handle.read()

    return Outputs(text("report.md"), text("report.html"),
                   artifacts.read_json(os.path.join(out_dir, "metrics.json"), "report"),
                   text("plots", "operators.csv"), text("plots", "sizes.csv"))


# --------------------------------------------------------------------------------------------
# Reading the Markdown report
# --------------------------------------------------------------------------------------------

def markdown_sections(markdown: str) -> Dict[str, str]:
    """{heading text without the PREDICTED mark: body} for the level-2 sections."""
    sections = {}
    for block in re.split(r"^## ", markdown, flags=re.M)[1:]:
        heading, _, body = block.partition("\n")
        sections[heading.replace("**PREDICTED**", "").strip()] = body
    return sections


def _markdown_cell(text: str) -> str:
    """A Markdown cell as the reader sees it: escapes undone, emphasis and code marks gone."""
    text = text.replace("\\|", "|").replace("&lt;", "<").replace("&gt;", ">")
    return " ".join(text.replace("**", "").replace("`", "").split())


def markdown_tables(markdown: str) -> List[List[List[str]]]:
    """Every table (header row first) as rows of cell texts, in document order."""
    tables: List[List[List[str]]] = []
    current: Optional[List[List[str]]] = None
    for line in markdown.splitlines() + [""]:
        if line.startswith("|") and line.endswith("|"):
            cells = [_markdown_cell(cell) for cell in re.split(r"(?<!\\)\|", line[1:-1])]
            if current is None:
                current = []
                tables.append(current)
            if not all(re.fullmatch(r"-+:?", cell) for cell in cells):
                current.append(cells)
        else:
            current = None
    return tables


def markdown_alignments(markdown: str) -> List[List[bool]]:
    """Per table, which columns are right-aligned (`---:`), in document order."""
    return [[cell.strip().endswith(":") for cell in line.strip("|").split("|")]
            for line in markdown.splitlines()
            if line.startswith("|") and re.fullmatch(r"\|( -+:? \|)+", line)]


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

    def text(self):
        """The text with whitespace runs collapsed."""
        return " ".join(self.all_text().split())

    def rows(self):
        """A table's rows, header first, as lists of cell texts."""
        return [[cell.text() for cell in row.find_all() if cell.tag in ("th", "td")]
                for row in self.find_all("tr")]


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


def parse_html(markup: str) -> Node:
    builder = DomBuilder()
    builder.feed(markup)
    builder.close()
    return builder.root
