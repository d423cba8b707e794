"""Predict what the Edge TPU compiler will say about a .tflite model, without the compiler.

`edgetpu_compiler` runs only on x86-64 Linux. This command prints, on any machine, the
compiler's stdout layout (header lines and the "Operator / Count / Status" table) as this
project predicts it, under a first line that marks it as a prediction; `--json` prints the
result structure instead.

Example usage:
```
edgetpu-predict models/facenet_keras.tflite --compiler-version 15.0 --min-runtime-version 12
```

Exit status: 0 when the compiler is predicted to compile the model (even if some operators
stay on the CPU), 1 when it is predicted to refuse it, 2 for bad input or arguments.
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import List, Optional

from edgetpu_analyzer import rules
from edgetpu_analyzer.predict import predict_file
from edgetpu_analyzer.render import render_compiler_stdout
from edgetpu_analyzer.tflite_reader import ModelReadError

EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_BAD_INPUT = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edgetpu-predict", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("model", help="path to a .tflite model (8-bit quantized for mapping)")
    parser.add_argument(
        "--compiler-version", default=rules.DEFAULT_COMPILER_VERSION,
        help="compiler release to imitate: {} (a prefix such as 15.0 is enough)".format(
            ", ".join(profile.version for profile in rules.COMPILER_PROFILES)))
    parser.add_argument(
        "--min-runtime-version", type=int, default=None,
        help="like the compiler's --min_runtime_version; default: the newest runtime of the "
             "chosen compiler (14 for 16.0, 13 for 14.1/15.0)")
    parser.add_argument("--json", action="store_true",
                        help="print the result structure as JSON instead of compiler text")
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result = predict_file(args.model, args.compiler_version, args.min_runtime_version)
    except (ModelReadError, ValueError) as error:
        # One line, no traceback: the reader already says what is wrong with the file.
        print("edgetpu-predict: error: {}".format(error), file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.json:
        print(json.dumps(result.to_dict(), indent=2, sort_keys=True))
    else:
        sys.stdout.write(render_compiler_stdout(result, show_operations=True))
        for note in result.notes:
            print("# note: " + note)
    return EXIT_OK if result.succeeded else EXIT_REFUSED


if __name__ == "__main__":
    sys.exit(main())
