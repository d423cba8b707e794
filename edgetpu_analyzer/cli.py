"""Predict what the Edge TPU compiler will say about a .tflite model, without the compiler.

`edgetpu_compiler` runs only on x86-64 Linux. This command prints, on any machine, the
compiler's stdout layout (header lines and the "Operator / Count / Status" table) as this
project predicts it, under a first line that marks it as a prediction; `--json` prints the
result structure instead. `--score DIR` instead scores the predictor against a corpus of real
compiler outputs (see edgetpu_analyzer.score for the layout).

Example usage:
```
edgetpu-predict models/facenet_keras.tflite --compiler-version 15.0 --min-runtime-version 12
edgetpu-predict model.tflite --compiler-version 17     # imitates 16.0.384591198 and says so
edgetpu-predict --score ../shared/edgetpu-corpus
```

Any well-formed compiler version (numbers separated by dots) is accepted: the nearest release
whose rules are known is imitated, and the output names it.

Exit status: 0 when the compiler is predicted to compile the model (even if some operators
stay on the CPU) or when a corpus was scored, 1 when the compiler is predicted to refuse the
model, 2 for bad input or arguments.
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import List, Optional

from edgetpu_analyzer import rules
from edgetpu_analyzer.predict import predict_file
from edgetpu_analyzer.render import render_compiler_stdout
from edgetpu_analyzer.score import CorpusError, render_score_text, score_corpus
from edgetpu_analyzer.tflite_reader import ModelReadError

EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_BAD_INPUT = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edgetpu-predict", description=__doc__.split("\n\n")[0],
        epilog="known compiler releases: {}".format(
            ", ".join(profile.version for profile in rules.COMPILER_PROFILES)),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("model", nargs="?",
                        help="path to a .tflite model (8-bit quantized for mapping)")
    parser.add_argument(
        "--compiler-version", default=rules.DEFAULT_COMPILER_VERSION,
        help="compiler release to imitate (16, 2.1, 17: the nearest known one)")
    parser.add_argument(
        "--min-runtime-version", type=int, default=None,
        help="like the compiler's --min_runtime_version; default: the newest runtime of the "
             "chosen compiler (14 for 16.0, 13 for 14.1/15.0)")
    parser.add_argument(
        "-a", "--enable-multiple-subgraphs", action="store_true",
        help="like the compiler's -a: every mappable operator maps, in as many Edge TPU "
             "subgraphs as needed")
    parser.add_argument("--json", action="store_true",
                        help="print the result structure as JSON instead of compiler text")
    parser.add_argument(
        "--score", metavar="DIR",
        help="instead of one model, predict every pair of the corpus DIR (manifest.json, "
             "models, compiler logs) and compare with the real compiler output")
    return parser


def _error(message: object) -> int:
    # One line, no traceback: the reader and the corpus loader already say what is wrong.
    print("edgetpu-predict: error: {}".format(str(message).splitlines()[0]), file=sys.stderr)
    return EXIT_BAD_INPUT


def _score(args: argparse.Namespace) -> int:
    try:
        score = score_corpus(args.score)
    except CorpusError as error:
        return _error(error)
    if args.json:
        print(json.dumps(score.to_dict(), indent=2, sort_keys=True))
    else:
        sys.stdout.write(render_score_text(score))
    return EXIT_OK


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if (args.score is None) == (args.model is None):
        return _error("give either a .tflite model or --score DIR (not both)")
    if args.score is not None:
        return _score(args)
    try:
        result = predict_file(args.model, args.compiler_version, args.min_runtime_version,
                              multiple_subgraphs=args.enable_multiple_subgraphs)
    except (ModelReadError, ValueError) as error:
        return _error(error)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2, sort_keys=True))
    else:
        sys.stdout.write(render_compiler_stdout(result, show_operations=True))
        for note in result.notes:
            print("# note: " + note)
    return EXIT_OK if result.succeeded else EXIT_REFUSED


if __name__ == "__main__":
    sys.exit(main())
