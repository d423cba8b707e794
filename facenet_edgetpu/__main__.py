"""Run one pipeline stage: `python -m facenet_edgetpu <stage>`, the command of every stage in dvc.yaml.

This is the single entry point through which DVC runs stage code. It first checks that
toolchain.yaml still describes the environment (so dvc.lock never records artifacts under
a stale toolchain), then runs the stage module `facenet_edgetpu.stages.<stage>`. Errors the user can fix
(bad params, bad input) are printed as one message; anything else keeps its traceback.

With `runner: {kind: docker}` in params.yaml the same command runs inside the image instead
(facenet_edgetpu/core/runner.py), where this entry point runs again and does the check; `fetch_inputs`,
which needs the network, stays on the host.
"""
from __future__ import annotations

import runpy
import sys

from facenet_edgetpu.core import runner, toolchain
from facenet_edgetpu.core.errors import PipelineError

STAGES = ("fetch_inputs", "crop_faces", "representative_dataset", "quantize", "compile",
          "fidelity", "report")


def check_toolchain() -> None:
    actual = toolchain.current_toolchain(toolchain.compiler_param())
    differences = toolchain.stale_keys(toolchain.recorded_toolchain(), actual)
    if differences:
        raise PipelineError(
            "{} does not match this environment ({}). Run `python -m facenet_edgetpu.core.toolchain` (make "
            "repro does it), then `dvc repro`, which reruns the stages the change affects.".format(
                toolchain.TOOLCHAIN_FILE, "; ".join(
                    "{}: recorded {}, found {}".format(key, old, new)
                    for key, (old, new) in differences.items())))


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1 or argv[0] not in STAGES:
        print("usage: python -m facenet_edgetpu {{{}}}".format(",".join(STAGES)), file=sys.stderr)
        return 2
    stage = argv[0]
    try:
        chosen = runner.configured()
        if chosen["kind"] == "docker" and stage not in runner.HOST_STAGES:
            return runner.run_stage(stage, chosen["image"])
        if chosen["kind"] == "local":  # a host stage under the docker runner uses no toolchain key
            check_toolchain()
        sys.argv = ["facenet_edgetpu.stages." + stage]
        runpy.run_module("facenet_edgetpu.stages." + stage, run_name="__main__", alter_sys=True)
    except PipelineError as error:
        print("{} failed: {}".format(stage, error), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
