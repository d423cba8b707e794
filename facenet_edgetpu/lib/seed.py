"""The seed article's measurements (shared/seeds/000_*), which the reports compare against.

TF 1.15 converter, edgetpu_compiler 15.0.340273435 with `--min_runtime_version 12`.
"""

SEED_CONVERTER = "TF 1.15"
SEED_COMPILER = "15.0.340273435"
SEED_SIZES = {"keras_h5": 92397640, "tflite": 23812408, "edgetpu_tflite": 23515704}
SEED_OPERATORS = {"CONV_2D": 132, "CONCATENATION": 23, "ADD": 21, "QUANTIZE": 33,
                  "MAX_POOL_2D": 3, "MEAN": 1, "FULLY_CONNECTED": 1}
