"""How every stage is started, whichever way it is started.

`python -m facenet_edgetpu <stage> [options]` (the command of every stage in dvc.yaml) and
`python -m facenet_edgetpu.stages.<stage> [options]` both come here, so they behave the same:

1. with `runner: {kind: docker}` in params.yaml the same command runs inside the image instead
   (core/runner.py), where this module runs again;
2. otherwise the stage's section of toolchain.yaml must still describe this environment (so
   dvc.lock never records artifacts under a stale toolchain), and temporary files that a killed
   run of this stage left next to its outputs are removed;
3. the stage's `main(argv)` runs. A mistake the user can fix (a PipelineError, or a file the
   system refuses to write: no space, read-only, no permission) prints one message naming the
   file and what to do, and exits 1; anything else is a bug and keeps its traceback, with a line
   saying so.
"""
from __future__ import annotations

import argparse
import errno
import importlib
import os
import sys
import traceback
from typing import Callable, Optional, Sequence

from facenet_edgetpu.core import artifacts, dvcfile, runner, toolchain
from facenet_edgetpu.core.errors import PipelineError
from facenet_edgetpu.core.params import load_params

STAGES = ("fetch_inputs", "crop_faces", "representative_dataset", "quantize", "compile",
          "fidelity", "report")
TOOLCHAIN_COMMAND = "toolchain"

StageMain = Callable[[Sequence[str]], None]

# Refusals of the file system that the user fixes (free space, permissions), not bugs.
_ENVIRONMENT_ERRNOS = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
}


def prepare_local_run(stage: str) -> None:
    """Before a stage runs here: its toolchain.yaml section must describe this environment, and
    temporary siblings (core/artifacts.py) that a killed run left next to its outputs go.

    Both come from the stage's entry in dvc.yaml; a stage run by hand outside a pipeline
    folder (no dvc.yaml) has neither a recorded toolchain nor outputs to clean."""
    if not os.path.exists(dvcfile.DVC_FILE):
        return
    params = load_params()
    spec = dvcfile.load_stage(".", stage, params)
    toolchain.check_stage(stage, spec, params)
    for path in artifacts.stale_partials(spec.outs):
        print("{}: removing {}, left by an interrupted run".format(stage, path), file=sys.stderr)
        artifacts.remove(path)


def environment_error(error: OSError) -> Optional[str]:
    """One line for a file-system refusal the user can fix; None for anything else."""
    reason = _ENVIRONMENT_ERRNOS.get(error.errno or 0)
    if reason is None:
        return None
    where = error.filename or "a file"
    if error.errno == errno.ENOSPC:
        return "no space left on {} (the device holding {}): free some space and run again; " \
               "nothing was recorded".format(os.path.dirname(os.path.abspath(where)) or where,
                                              where)
    return "cannot write {}: {}. Make it writable (or point the output elsewhere) and run " \
           "again; nothing was recorded".format(where, reason)


def run_stage(stage: str, stage_main: StageMain, argv: Sequence[str]) -> int:
    """Run one stage as described in the module docstring; return the exit status."""
    try:
        chosen = runner.configured(stage=stage)
        if chosen["kind"] == "docker":
            return runner.run_stage(stage, chosen["image"], argv)
        prepare_local_run(stage)
        stage_main(list(argv))
    except PipelineError as error:
        print("{} failed: {}".format(stage, error), file=sys.stderr)
        return 1
    except OSError as error:
        message = environment_error(error)
        if message is None:
            raise
        print("{} failed: {}".format(stage, message), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("{} interrupted; its outputs were left as they were".format(stage), file=sys.stderr)
        return 130
    return 0


def usage() -> str:
    return "usage: python -m facenet_edgetpu {{{}}} [options]  (--help after a stage lists " \
           "them)".format(",".join(STAGES + (TOOLCHAIN_COMMAND,)))


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in STAGES + (TOOLCHAIN_COMMAND,):
        print(usage(), file=sys.stderr)
        return 2
    command, options = argv[0], argv[1:]
    if command == TOOLCHAIN_COMMAND:
        return toolchain.main(options)
    module = importlib.import_module("facenet_edgetpu.stages." + command)
    return run_stage(command, module.main, options)


def stage_parser(stage: str, doc: str) -> argparse.ArgumentParser:
    """The option parser of one stage: its paths come from dvc.yaml's command line."""
    return argparse.ArgumentParser(prog="python -m facenet_edgetpu " + stage,
                                   description=doc.strip().split("\n\n")[0])


def start(stage: str, stage_main: StageMain) -> None:
    """What `python -m facenet_edgetpu.stages.<stage>` runs: the same path as the main entry."""
    sys.exit(bug_guard(lambda: run_stage(stage, stage_main, sys.argv[1:])))


def bug_guard(run: Callable[[], int]) -> int:
    """Run an entry; an unexpected exception prints its traceback and says it is a bug."""
    try:
        return run()
    except Exception:  # anything the stages did not turn into a message
        traceback.print_exc()
        print("This is a bug in facenet_edgetpu, not a problem with your inputs: please report "
              "it with the traceback above.", file=sys.stderr)
        return 1
