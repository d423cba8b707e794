"""The shapes of the JSON files one stage writes and another reads, declared once.

Each file is a dataclass tree; the writer builds the record and calls `save` (or `to_dict`),
the reader calls `load` (or `from_dict`), so both sides agree on every key and type. Reading
checks the whole shape and turns any difference (a missing or unknown key, a wrong type) into
one `RecordError` naming the file, the key path and the stage to rerun.

    reports/crop_metrics.json   CropMetrics      (crop_faces)
    data/faces/manifest.json    Manifest         (crop_faces)
    models/quantization.json    Quantization     (quantize)
    reports/fidelity.json       Fidelity         (fidelity)

The compile stage's models/edgetpu/compile_result.json is `edgetpu_analyzer.result.CompileResult`
(`to_dict` / `from_dict`); only its file name is here, so that the stages that do not read it
do not depend on the analyzer package.

Adding a key to a file is one line in its dataclass: a field with a default (None for "not
written by older runs") is optional when reading and left out of `to_dict` while it is None.
"""
from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple, Type, TypeVar

from facenet_edgetpu.core import artifacts

# File names inside a stage's output folder, shared by the writer and the readers.
MANIFEST_FILE = "manifest.json"                 # in data/faces/
COMPILE_RESULT_FILE = "compile_result.json"     # in models/edgetpu/
EMBEDDINGS_PNG = "embeddings.png"               # in reports/fidelity/
ROC_DIR = "roc"                                 # in reports/fidelity/: <variant>.csv

RecordType = TypeVar("RecordType", bound="Record")


class RecordError(artifacts.ArtifactError):
    """A stage output file is not of the shape its writer gives it."""


def _fix(stage: str) -> str:
    return "rerun the stage that writes it (dvc repro {})".format(stage)


def _kind(value: Any) -> str:
    """How a JSON value is called in messages."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return "null" if value is None else type(value).__name__


class _ShapeError(Exception):
    """A difference from the declared shape at `where` (a dotted key path)."""

    def __init__(self, where: str, problem: str) -> None:
        Exception.__init__(self, where, problem)
        self.where, self.problem = where, problem


def _expected(where: str, wanted: str, value: Any) -> _ShapeError:
    shown = "" if isinstance(value, (dict, list)) or value is None else " ({!r})".format(value)
    return _ShapeError(where, "expected {}, found {}{}".format(wanted, _kind(value), shown))


def _join(where: str, key: Any) -> str:
    return "{}.{}".format(where, key) if where else str(key)


def _decode_scalar(kind: type, value: Any, where: str) -> Any:
    if kind is bool:
        if not isinstance(value, bool):
            raise _expected(where, "a boolean", value)
        return value
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _expected(where, "an integer", value)
        return value
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _expected(where, "a number", value)
        return float(value)
    if kind is str:
        if not isinstance(value, str):
            raise _expected(where, "a string", value)
        return value
    raise TypeError("records cannot hold {!r}".format(kind))


def _decode(kind: Any, value: Any, where: str) -> Any:
    """`value` (parsed JSON) as an instance of the annotation `kind`, checked all the way down."""
    origin = getattr(kind, "__origin__", None)
    arguments: Tuple[Any, ...] = getattr(kind, "__args__", ())
    if origin is typing.Union:  # Optional[X]: the only union records use
        inner = [argument for argument in arguments if argument is not type(None)][0]
        return None if value is None else _decode(inner, value, where)
    if origin is list:
        if not isinstance(value, list):
            raise _expected(where, "a list", value)
        return [_decode(arguments[0], item, "{}[{}]".format(where, index))
                for index, item in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise _expected(where, "a mapping", value)
        return {key: _decode(arguments[1], item, _join(where, key)) for key, item in value.items()}
    if isinstance(kind, type) and issubclass(kind, Record):
        return kind._decode_fields(value, where)
    return _decode_scalar(kind, value, where)


def _encode(value: Any) -> Any:
    if isinstance(value, Record):
        return value.to_dict()
    if isinstance(value, list):
        return [_encode(item) for item in value]
    if isinstance(value, dict):
        return {key: _encode(item) for key, item in value.items()}
    return value


def _checked(kind: Any, data: Any, source: str, stage: str) -> Any:
    """`data` decoded as `kind`; a RecordError naming `source` and the key path if it differs."""
    try:
        return _decode(kind, data, "")
    except _ShapeError as error:
        raise RecordError("{}: {}{}; {}".format(
            source, error.where + ": " if error.where else "", error.problem, _fix(stage))) \
            from None


@dataclass
class Record:
    """A JSON object with a fixed set of keys: one dataclass field per key."""

    # The stage that writes the file (for "rerun it" in error messages); set by top-level records.
    WRITER = "?"

    @classmethod
    def _decode_fields(cls: Type[RecordType], value: Any, where: str) -> RecordType:
        if not isinstance(value, dict):
            raise _expected(where, "a mapping", value)
        hints = typing.get_type_hints(cls)  # each field resolved in its own class's module
        fields = {item.name: item for item in dataclasses.fields(cls)}
        unknown = sorted(set(value) - set(fields))
        if unknown:
            raise _ShapeError(where, "unknown key(s) {} (expected {})".format(
                ", ".join(map(repr, unknown)), ", ".join(sorted(fields))))
        values = {}
        for name, declared in fields.items():
            if name in value:
                values[name] = _decode(hints[name], value[name], _join(where, name))
            elif (declared.default is dataclasses.MISSING
                  and declared.default_factory is dataclasses.MISSING):  # type: ignore
                raise _ShapeError(_join(where, name), "key missing")
        return cls(**values)

    @classmethod
    def from_dict(cls: Type[RecordType], data: Any, source: str) -> RecordType:
        """The record of parsed JSON `data`; RecordError names `source` when the shape differs."""
        return _checked(cls, data, source, cls.WRITER)

    def to_dict(self) -> Dict[str, Any]:
        """The JSON object the writer puts in the file (optional keys left out while None)."""
        return {item.name: _encode(getattr(self, item.name)) for item in dataclasses.fields(self)
                if not (item.default is None and getattr(self, item.name) is None)}

    # (load/save, not read/write: crop counts have a key "read".)
    @classmethod
    def load(cls: Type[RecordType], path: str) -> RecordType:
        """The record in the JSON file `path`; RecordError if it is missing or malformed."""
        return cls.from_dict(artifacts.read_json(path, cls.WRITER), path)

    def save(self, path: str) -> None:
        """Write the record atomically (sorted keys, no timestamps), after checking that it has
        its declared shape: a writer cannot write a file its readers would refuse."""
        data = self.to_dict()
        type(self).from_dict(data, "{} (being written)".format(path))
        artifacts.write_json(path, data)


# --------------------------------------------------------------------------------------------
# crop_faces: reports/crop_metrics.json and data/faces/manifest.json
# --------------------------------------------------------------------------------------------

@dataclass
class CropCounts(Record):
    """What happened to the photos of one split (every photo is counted once)."""

    photos: int
    read: int                     # opened as an image
    cropped: int
    unreadable: int
    no_face: int                  # the detector found no face
    margin_outside_image: int     # the face box plus margin leaves the image
    not_tried: int                # left once max_faces crops were kept


@dataclass
class CropMetrics(Record):
    """reports/crop_metrics.json: {split: counts}, the splits at the top level."""

    WRITER = "crop_faces"
    splits: Dict[str, CropCounts] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Any, source: str) -> "CropMetrics":
        return cls(_checked(Dict[str, CropCounts], data, source, cls.WRITER))

    def to_dict(self) -> Dict[str, Any]:
        return {split: counts.to_dict() for split, counts in self.splits.items()}


@dataclass
class ManifestEntry(Record):
    """One crop in data/faces/manifest.json; paths relative to the photos and faces folders."""

    crop: str                     # <split>/<person>/<stem>.png inside data/faces
    person: str
    photo: str                    # <split>/<person>/<file> inside the photos folder
    box: List[int]                # x, y, width, height of the crop in the photo
    split: str


@dataclass
class Manifest(Record):
    """data/faces/manifest.json: a list of entries, in crop order."""

    WRITER = "crop_faces"
    entries: List[ManifestEntry] = field(default_factory=list)

    @classmethod
    def from_dict(cls, data: Any, source: str) -> "Manifest":
        return cls(_checked(List[ManifestEntry], data, source, cls.WRITER))

    def to_dict(self) -> List[Dict[str, Any]]:  # type: ignore[override]
        return [entry.to_dict() for entry in self.entries]

    def split(self, name: str) -> List[ManifestEntry]:
        """The entries of one split, in manifest order."""
        return [entry for entry in self.entries if entry.split == name]


# --------------------------------------------------------------------------------------------
# float_model: models/float_model.json; calibrate: models/calibration_ranges.json
# --------------------------------------------------------------------------------------------

@dataclass
class LambdaSource(Record):
    """The Python source used for one Lambda layer and where it came from."""

    origin: str                   # "translated" (from the saved bytecode) or "params"
    source: str


@dataclass
class FloatModel(Record):
    """models/float_model.json: how the float TFLite model was made from the Keras h5."""

    WRITER = "float_model"
    converter: str
    tensorflow_version: str
    folded_batch_norms: int                   # folded in float64 before converting
    lambda_layers: Dict[str, LambdaSource]
    tflite_bytes: int
    tflite_sha256: str


@dataclass
class TensorRange(Record):
    min: float
    max: float


@dataclass
class CalibrationRanges(Record):
    """models/calibration_ranges.json: every activation tensor's recorded range, by name."""

    WRITER = "calibrate"
    float_model_sha256: str       # the model the ranges were recorded on
    kernels: str                  # which TFLite kernels computed the activations
    faces: List[str]              # the calibration faces (crops), in order
    tensors: Dict[str, TensorRange]


# --------------------------------------------------------------------------------------------
# quantize: models/quantization.json
# --------------------------------------------------------------------------------------------

@dataclass
class TensorDetails(Record):
    """The model's input or output tensor as tf.lite.Interpreter reports it."""

    name: str
    dtype: str
    shape: List[int]
    scale: float
    zero_point: int


@dataclass
class Quantization(Record):
    """models/quantization.json: what the full-integer conversion produced."""

    WRITER = "quantize"
    calibration_samples: int
    converter: str
    io_type: str
    input: TensorDetails
    output: TensorDetails
    lambda_layers: Dict[str, LambdaSource]
    operator_count: int
    operators: Dict[str, int]                 # operator name -> count in the flatbuffer
    operator_versions: Dict[str, List[int]]
    tensorflow_version: str
    tflite_bytes: int
    tflite_sha256: str
    float_model_sha256: Optional[str] = None       # the float model it quantized


# --------------------------------------------------------------------------------------------
# fidelity: reports/fidelity.json
# --------------------------------------------------------------------------------------------

@dataclass
class FidelityCounts(Record):
    val_faces: int                # the probes
    gallery_faces: int            # the train faces
    people: int
    pairs: int                    # val face pairs scored for verification
    genuine_pairs: int            # of them, pairs of the same person


@dataclass
class InputQuantization(Record):
    scale: float
    zero_point: int
    clipped_fraction: float       # val input values at the ends of the model's input range
    seed_wrapped_fraction: float  # val input values the seed's quantization wraps around
    seed_wrapped_faces: int       # val faces with at least one wrapped value


@dataclass
class VariantMetrics(Record):
    """How well one variant (float, int8, ...) identifies and verifies the val faces."""

    identity_accuracy: float
    eer: float
    eer_threshold: float
    auc: float
    embedding_norm_mean: float


@dataclass
class Agreement(Record):
    """Per-face agreement of a quantized variant's embeddings with the float ones."""

    cosine_mean: float
    cosine_min: float
    l2_mean: float
    l2_max: float


@dataclass
class Fidelity(Record):
    """reports/fidelity.json: the float model against the full-integer model."""

    WRITER = "fidelity"
    counts: FidelityCounts
    input_quantization: InputQuantization
    variants: Dict[str, VariantMetrics]
    vs_float: Dict[str, Agreement]
