"""How every stage is started, whichever way it is started.

`python -m facenet_edgetpu <stage> [options]` (the command of every stage in dvc.yaml) and
`python -m facenet_edgetpu.stages.<stage> [options]` both come here, so they behave the same:

1. with `runner: {kind: docker}` in params.yaml the same command runs inside the image instead
   (core/runner.py), where this module runs again;
2. otherwise the stage's section of toolchain.yaml must still describe this environment (so
   dvc.lock never records artifacts under a stale toolchain), and temporary files that a killed
   run of this stage left next to its outputs are removed;
3. the stage's `main(argv)` runs, and its last line says how long it took and its peak
   resident memory (its worker processes included). A mistake the user can fix (a
   PipelineError, or a file the system refuses: no space, read-only, no permission) prints one
   message naming the file and what to do, and exits 1; anything else is a bug and keeps its
   traceback, with a line saying so. Ctrl-C, SIGTERM and SIGHUP stop the stage through
   Python's own unwinding, so its temporary files are removed on the way out (only a SIGKILL
   leaves them, for the next run to remove in step 2).
"""
from __future__ import annotations

import argparse
import contextlib
import errno
import importlib
import os
import signal
import sys
import time
import traceback
from typing import Callable, Iterator, Optional, Sequence

from facenet_edgetpu.core import artifacts, dvcfile, runner, toolchain
from facenet_edgetpu.core.errors import PipelineError
from facenet_edgetpu.core.log import get_logger, peak_rss_mib
from facenet_edgetpu.core.params import load_params

STAGES = ("fetch_inputs", "crop_faces", "representative_dataset", "float_model",
          "float_reference", "calibrate", "quantize", "compile", "fidelity", "report")
TOOLCHAIN_COMMAND = "toolchain"

StageMain = Callable[[Sequence[str]], None]

# Refusals of the file system that the user fixes, not bugs: errno -> (what, what to do).
_ACCESS = "give the pipeline access to it (inputs must be readable, outputs writable)"
_ENVIRONMENT_ERRNOS = {
    errno.ENOSPC: ("no space left", "free some space"),
    errno.EDQUOT: ("disk quota exceeded", "free some space or raise the quota"),
    errno.EROFS: ("it is on a read-only file system",
                  "make that file system writable (or run the pipeline from a writable copy)"),
    errno.EACCES: ("permission denied", _ACCESS),
    errno.EPERM: ("operation not permitted", _ACCESS),
    errno.ENOTDIR: ("a part of the path is a file, not a folder", "remove or rename that file"),
    errno.EISDIR: ("it is a folder where a file belongs", "remove or rename the folder"),
}
_OUT_OF_SPACE = (errno.ENOSPC, errno.EDQUOT)
# Signals that stop a local stage by unwinding (Ctrl-C is KeyboardInterrupt already).
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


class Stopped(BaseException):
    """SIGTERM or SIGHUP reached a stage running here. A BaseException, like KeyboardInterrupt,
    so no `except Exception` in a stage swallows it and every `finally` on the way out runs."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


@contextlib.contextmanager
def _stop_by_unwinding() -> Iterator[None]:
    """Turn SIGTERM and SIGHUP into `Stopped` while the stage runs (by default they end Python
    at once, leaving its temporary files behind)."""
    def stop(signum: int, frame: object) -> None:
        raise Stopped(signum)

    previous = {sig: signal.signal(sig, stop) for sig in _STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


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
    known = _ENVIRONMENT_ERRNOS.get(error.errno or 0)
    if known is None:
        return None
    what, fix = known
    where = error.filename or "a file"
    if error.errno in _OUT_OF_SPACE:
        return "{} on {} (the device holding {}): {} and run again; nothing was recorded".format(
            what, os.path.dirname(os.path.abspath(where)), where, fix)
    return "{}: {}. {} and run again; nothing was recorded".format(
        where, what, fix[0].upper() + fix[1:])


def run_stage(stage: str, stage_main: StageMain, argv: Sequence[str]) -> int:
    """Run one stage as described in the module docstring; return the exit status."""
    try:
        chosen = runner.configured(stage=stage)
        if chosen["kind"] == "docker":
            return runner.run_stage(stage, chosen["image"], argv)
        start = time.monotonic()
        with _stop_by_unwinding():
            prepare_local_run(stage)
            stage_main(list(argv))
        # tools/bench.py reads this line to time the stages of a `dvc exp run`
        get_logger(stage).info("finished in %.1f s, peak RSS %.0f MiB",
                               time.monotonic() - start, peak_rss_mib())
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
        print("{} interrupted; its temporary files were removed".format(stage), file=sys.stderr)
        return 128 + signal.SIGINT
    except Stopped as stopped:
        print("{} stopped by {}; its temporary files were removed".format(
            stage, signal.Signals(stopped.signum).name), file=sys.stderr)
        return 128 + stopped.signum
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
