"""Headless Chromium for the HTML report tests: find it, dump a page's DOM, take a screenshot.

Chromium comes from Debian's packages (`apt-get install -y chromium`). Without it the browser
tests skip, except under CI (the CI environment variable set), where they fail: `.ci/run` must
install it. Each run gets its own throw-away profile, resolves no host names (the report must
not fetch anything), and has its stderr log kept so the page's console messages can be checked.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import tempfile
from typing import List, Optional, Tuple

import pytest

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
INSTALL_HINT = ("headless Chromium is needed for the HTML report tests: `.ci/run` must install "
                "it (apt-get update && apt-get install -y --no-install-recommends chromium)")
TIMEOUT_SECONDS = 90

# Chromium logs every console message of a page as "...:INFO:CONSOLE:12] "text", source: url (12)"
# (older builds: "INFO:CONSOLE(12)").
CONSOLE_LINE = re.compile(r":CONSOLE[:(]")


def find_chromium() -> Optional[str]:
    """The browser binary: $CHROMIUM if set, else the first candidate on PATH."""
    explicit = os.environ.get("CHROMIUM")
    if explicit:
        return explicit if os.access(explicit, os.X_OK) else None
    for name in CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return None


def require_chromium() -> str:
    """The browser binary; fails under CI and skips elsewhere when there is none."""
    path = find_chromium()
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("Chromium not found and CI is set: " + INSTALL_HINT, pytrace=False)
        pytest.skip("Chromium not found: " + INSTALL_HINT)
    return path


def _run(binary: str, page: str, extra: List[str], window: Tuple[int, int]) -> Tuple[str, str]:
    """Run headless Chromium on a local file; return (stdout, stderr)."""
    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    command = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
               "--disable-extensions", "--disable-background-networking", "--hide-scrollbars",
               "--force-color-profile=srgb", "--force-device-scale-factor=1",
               "--host-resolver-rules=MAP * ~NOTFOUND", "--user-data-dir=" + profile,
               "--enable-logging=stderr", "--v=0",
               "--window-size={},{}".format(*window)] + extra + [
        "file://" + os.path.abspath(page)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               universal_newlines=True, start_new_session=True)
    try:
        stdout, stderr = process.communicate(timeout=TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        raise AssertionError("Chromium did not finish within {} s: {}".format(
            TIMEOUT_SECONDS, " ".join(command))) from None
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    if process.returncode != 0:
        raise AssertionError("Chromium exited with {}:\n{}".format(process.returncode,
                                                                  stderr[-4000:]))
    return stdout, stderr


def console_messages(stderr: str) -> List[str]:
    """The page console lines in Chromium's log (errors, warnings, logs alike)."""
    return [line for line in stderr.splitlines() if CONSOLE_LINE.search(line)]


def dump_dom(binary: str, page: str,
             window: Tuple[int, int] = (1280, 1000)) -> Tuple[str, List[str]]:
    """(the DOM as Chromium serializes it after loading, the page's console lines)."""
    stdout, stderr = _run(binary, page, ["--dump-dom"], window)
    return stdout, console_messages(stderr)


def screenshot(binary: str, page: str, png: str,
               window: Tuple[int, int] = (1280, 3600)) -> List[str]:
    """Write a PNG of the page's first `window` pixels; return the page's console lines."""
    _, stderr = _run(binary, page, ["--screenshot=" + os.path.abspath(png)], window)
    if not os.path.exists(png):
        raise AssertionError("Chromium wrote no screenshot:\n" + stderr[-4000:])
    return console_messages(stderr)
