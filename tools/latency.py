"""CPU latency of the pipeline's TFLite models on this machine: `make bench` prints it.

    python tools/latency.py FLOAT.tflite INT8.tflite [--runs 30] [--warmup 3]

Median wall time of single-threaded invocations (TFLite's default kernels) after untimed
warm-up runs, on one zero-valued input. A property of the machine, so it is measured here and
never recorded as a pipeline artifact.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from typing import List, Optional

import numpy as np


def median_ms(path: str, runs: int, warmup: int) -> float:
    import tensorflow as tf

    interpreter = tf.lite.Interpreter(model_path=path, num_threads=1)
    interpreter.allocate_tensors()
    details = interpreter.get_input_details()[0]
    interpreter.set_tensor(details["index"], np.zeros(details["shape"], details["dtype"]))
    for _ in range(warmup):
        interpreter.invoke()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        interpreter.invoke()
        times.append((time.perf_counter() - start) * 1000.0)
    return statistics.median(times)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="+", help=".tflite files")
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    for path in args.models:
        print("{}: median {:.1f} ms over {} single-thread runs".format(
            os.path.basename(path), median_ms(path, args.runs, args.warmup), args.runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
