"""`quantize.lambda_functions`: Lambda-layer sources the user supplies in params.yaml.

Every stage that loads the Keras model reads it (quantize, fidelity), so its field and its check
live here, once.
"""
from __future__ import annotations

from typing import Any, Dict, Mapping

from facenet_edgetpu.core.params import Field, ParamsError, section

LAMBDA_FUNCTIONS_FIELD = Field(dict, optional=True, default={})


def check_lambda_functions(lambda_functions: Mapping[str, Any]) -> Dict[str, str]:
    """Validate `quantize.lambda_functions`: layer name -> non-empty string (lambda source)."""
    checked = {}
    for name, source in sorted(lambda_functions.items()):
        if not isinstance(name, str) or not name or not isinstance(source, str) or \
                not source.strip():
            raise ParamsError(
                "params.yaml: 'quantize.lambda_functions' maps a Lambda layer name to Python "
                "lambda source, e.g. {{Block35_1_ScaleSum: \"lambda inputs, scale: inputs[0] + "
                "inputs[1] * scale\"}}; got {!r}: {!r}.".format(name, source))
        checked[name] = source
    return checked


def lambda_functions_param() -> Dict[str, str]:
    """The checked `quantize.lambda_functions` of params.yaml."""
    raw = section("quantize", {"lambda_functions": LAMBDA_FUNCTIONS_FIELD},
                  partial=True)["lambda_functions"]
    return check_lambda_functions(raw)
