"""Stage `float_model`: the Keras h5 to a float TFLite model, the slow part paid once.

Loads the h5 (Lambda layers saved by old Pythons are translated by lib/keras_loader.py;
`float_model.lambda_functions` supplies any it cannot translate) with batch size 1, folds every
batch normalization into the layer before it in float64 (lib/bn_fold.py: the converter's own
folding uses the CPU's approximate rsqrt, so its constants differed from machine to machine),
and converts with no optimization: TF 2.x `TFLiteConverter.from_keras_model`, TF 1.15 the v1
converter on the Keras session (lib/converter.py).

Every later stage starts from this file: the reference run (float_reference), calibration and
quantization, so a change to the faces or to calibration never loads the h5 again.

Outputs: the float .tflite and a JSON record of how it was made (records.FloatModel).

Example (as dvc.yaml runs it):
    python -m facenet_edgetpu float_model --model models/facenet_keras.h5 \\
        --out models/facenet_float.tflite --report models/float_model.json
"""
from __future__ import annotations

import hashlib
import os
from typing import Any, Dict, Mapping, Sequence, Tuple

from facenet_edgetpu.core import artifacts, entry
from facenet_edgetpu.core.log import get_logger, timed
from facenet_edgetpu.core.params import Field, ParamsError, section
from facenet_edgetpu.lib import records
from facenet_edgetpu.lib.converter import float_tflite
from facenet_edgetpu.lib.keras_loader import model_lambda_layers
from facenet_edgetpu.lib.keras_model import load_folded_keras_model
from facenet_edgetpu.lib.tf_compat import graph_mode, tensorflow

SCHEMA = {
    # layer name -> Python lambda source, for Lambda layers the loader cannot translate
    "lambda_functions": Field(dict, optional=True, default={}),
}

log = get_logger("float_model")


def check_lambda_functions(lambda_functions: Mapping[str, Any]) -> Dict[str, str]:
    """Validate `float_model.lambda_functions`: layer name -> non-empty lambda source."""
    checked = {}
    for name, source in sorted(lambda_functions.items()):
        if not isinstance(name, str) or not name or not isinstance(source, str) or \
                not source.strip():
            raise ParamsError(
                "params.yaml: 'float_model.lambda_functions' maps a Lambda layer name to Python "
                "lambda source, e.g. {{Block35_1_ScaleSum: \"lambda inputs, scale: inputs[0] + "
                "inputs[1] * scale\"}}; got {!r}: {!r}.".format(name, source))
        checked[name] = source
    return checked


def convert(h5_path: str, lambda_functions: Mapping[str, str]
            ) -> Tuple[bytes, records.FloatModel]:
    """(float .tflite bytes, its record); writes nothing."""
    lambdas = model_lambda_layers(h5_path, lambda_functions)
    for origin in ("translated", "params"):
        chosen = sorted({item.source for item in lambdas if item.origin == origin and
                         item.key == "function"})
        if chosen:
            log.info("Lambda layers, source %s: %d layer(s) %s", origin,
                     sum(1 for item in lambdas if item.origin == origin), "; ".join(chosen))
    with timed(log, "loading {} and folding its batch normalizations".format(h5_path)):
        model, removed = load_folded_keras_model(h5_path, lambda_functions)
    log.info("folded %d batch normalization layers", len(removed))
    with timed(log, "float conversion"):
        data = float_tflite(model)
    tf = tensorflow()
    record = records.FloatModel(
        converter="tf.compat.v1.lite.TFLiteConverter.from_session" if graph_mode(tf)
        else "tf.lite.TFLiteConverter.from_keras_model",
        tensorflow_version=tf.__version__, folded_batch_norms=len(removed),
        lambda_layers={item.layer: records.LambdaSource(item.origin, item.source)
                       for item in lambdas if item.key == "function"},
        tflite_bytes=len(data), tflite_sha256=hashlib.sha256(data).hexdigest())
    return data, record


def main(argv: Sequence[str]) -> None:
    parser = entry.stage_parser("float_model", __doc__)
    parser.add_argument("--model", required=True, help="the Keras .h5 model")
    parser.add_argument("--out", required=True, help="the float .tflite to write")
    parser.add_argument("--report", required=True, help="the JSON record to write")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
    params = section("float_model", SCHEMA)
    data, record = convert(args.model, check_lambda_functions(params["lambda_functions"]))
    artifacts.write_bytes(args.out, data)
    record.save(args.report)
    log.info("wrote %s (%d bytes, sha256 %s) and %s", args.out, record.tflite_bytes,
             record.tflite_sha256[:12], args.report)


if __name__ == "__main__":
    entry.start("float_model", main)
