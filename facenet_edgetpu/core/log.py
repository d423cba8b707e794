"""Logging for stages: one line per step, with how long it took."""
from __future__ import annotations

import contextlib
import logging
import resource
import sys
import time
from typing import Iterator

_FORMAT = "%(asctime)s %(name)s: %(message)s"


def get_logger(name: str) -> logging.Logger:
    """A logger writing to stderr; stage names make the lines easy to follow in `dvc repro`."""
    logger = logging.getLogger(name)
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(_FORMAT, datefmt="%H:%M:%S"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
    return logger


@contextlib.contextmanager
def timed(logger: logging.Logger, what: str) -> Iterator[None]:
    """Log `what`, run the block, then log how long it took."""
    logger.info("%s ...", what)
    start = time.monotonic()
    yield
    logger.info("%s done in %.1f s", what, time.monotonic() - start)


def peak_rss_mib() -> float:
    """The largest resident memory of this process or of any child it waited for, in MiB
    (Linux reports kilobytes)."""
    return max(resource.getrusage(who).ru_maxrss
               for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)) / 1024.0
