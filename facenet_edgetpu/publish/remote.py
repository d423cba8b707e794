"""Push and pull the pipeline's artifacts and run-cache: `make publish` and `make pull`.

Both use the DVC remote configured as the default (`dvc remote add -d ...`, docs/sharing.md),
through DVC's Python API, with two things the `dvc` command does not do by itself:

- every download is checked against its hash (the remote's `verify` option, forced on): an
  object corrupted on the remote fails the pull instead of being checked out as good;
- `push` also uploads the outputs of every run in the local run-cache, not only the run
  records (`dvc push --run-cache` sends the records alone), so that another runner's
  `dvc repro --pull` restores a stage someone already computed instead of running it again.

Failures are one line naming the remote, what went wrong and what to do. DVC writes through
temporary files and renames them into place, so a failed transfer leaves no half-written
file, and neither command deletes anything local.
"""
from __future__ import annotations

import contextlib
import logging
import os
import re
from typing import Any, Iterator, List, NamedTuple, Tuple

from facenet_edgetpu.publish.errors import PublishError, one_line

NO_REMOTE = ("no DVC remote is configured in {root}: add one, e.g. `dvc remote add -d storage "
             "s3://<bucket>/<path>` (S3-compatible; `dvc remote modify storage endpointurl "
             "<url>` for a server other than AWS) or `dvc remote add -d storage "
             "ssh://<user>@<host>/<path>`, with the credentials in the environment "
             "(docs/sharing.md)")

# (what DVC said, matched case-insensitively) -> (what it means, what to do). First match wins.
FAILURES = (
    (r"SignatureDoesNotMatch|InvalidAccessKeyId|AccessDenied|Forbidden|\b403\b|"
     r"Permission denied|PermissionDenied|Authentication failed|No more authentication",
     "refused the credentials",
     "check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (S3) or the SSH key and user (`dvc "
     "remote modify --local <name> keyfile <path>`)"),
    (r"NoSuchBucket|bucket does not exist",
     "has no such bucket", "create the bucket, or fix the remote's URL"),
    (r"Could not connect|Cannot connect|Connection refused|ConnectionRefused|Connect call "
     r"failed|Name or service not known|nodename nor servname|Temporary failure in name|"
     r"No route to host|timed out|unreachable|Errno 111|Errno 113",
     "is unreachable", "check the remote's URL and that the server is up and reachable"),
    (r"hash mismatch|corrupt|does not match|checksum",
     "returned objects that do not match their hashes (corrupted on the remote)",
     "nothing corrupted was checked out; whoever has good copies should `make publish` again"),
    (r"Checkout failed|missing cache files|not in cache|do not exist neither locally nor on "
     r"remote|failed to (pull|fetch|download)",
     "lacks objects this commit needs, or sent objects that failed their hash check",
     "nothing unchecked was checked out; run `make publish` where the pipeline ran, then pull "
     "again"),
)


class Remote(NamedTuple):
    name: str
    url: str


class Transfer(NamedTuple):
    files: int           # objects and run records sent or received
    run_outputs: int     # objects of run-cache outputs pushed (push only)


def _import_repo():
    try:
        from dvc.repo import Repo
    except ImportError:
        raise PublishError("pushing and pulling need DVC with dvc-s3 / dvc-ssh: install "
                           "requirements/dev.lock (make .venv/.installed)") from None
    return Repo


def default_remote(root: str = ".") -> Remote:
    """The default remote of the repository at `root`; a PublishError when there is none."""
    Repo = _import_repo()
    try:
        with Repo(root) as repo:
            name = repo.config["core"].get("remote")
            remotes = repo.config["remote"]
    except Exception as error:  # DVC raises many types; the user needs one line
        raise PublishError("cannot read the DVC configuration of {}: {}".format(
            os.path.abspath(root), one_line(error))) from error
    if not name:
        raise PublishError(NO_REMOTE.format(root=os.path.abspath(root)))
    if name not in remotes:
        raise PublishError("the default DVC remote {!r} is not defined: `dvc remote list` "
                           "shows the remotes; set one with `dvc remote default <name>`".format(
                               name))
    return Remote(name, str(remotes[name].get("url", "")))


class _Collect(logging.Handler):
    """Keeps DVC's warnings and errors: the cause of a failure is often only logged."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: List[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(one_line(record.getMessage()))


@contextlib.contextmanager
def _collected_dvc_messages() -> Iterator[_Collect]:
    collector = _Collect()
    logger = logging.getLogger("dvc")
    logger.addHandler(collector)
    try:
        yield collector
    finally:
        logger.removeHandler(collector)


def explain(operation: str, remote: Remote, messages: List[str]) -> PublishError:
    """One line: which remote, what went wrong (from the FAILURES table), what to do."""
    messages = [one_line(message) for message in messages]
    text = " ".join(messages)
    cause = next((message for message in reversed(messages) if message), "no message")
    for pattern, meaning, advice in FAILURES:
        if re.search(pattern, text, re.IGNORECASE):
            return PublishError("{} failed: remote {!r} ({}) {}: {}. DVC said: {}".format(
                operation, remote.name, remote.url, meaning, advice, cause[:300]))
    return PublishError("{} failed: remote {!r} ({}): {}".format(
        operation, remote.name, remote.url, cause[:300]))


def _run(operation: str, remote: Remote, root: str, action) -> Any:
    """Open the repository with download checks on, run `action(repo)`, explain failures."""
    Repo = _import_repo()
    with _collected_dvc_messages() as collector:
        try:
            with Repo(root, remote=remote.name, remote_config={"verify": True}) as repo:
                return action(repo)
        except KeyboardInterrupt:
            raise
        except Exception as error:  # DVC raises many types; classify them by what was said
            raise explain(operation, remote, collector.messages + [str(error)]) from error


def run_cache_entries(repo) -> List[Tuple[str, str]]:
    """(key, value) of every run recorded in the local run-cache (.dvc/cache/runs/xx/key/value)."""
    entries = []
    root = repo.stage_cache.cache_dir
    if not os.path.isdir(root):
        return entries
    for prefix in sorted(os.listdir(root)):
        for key in sorted(os.listdir(os.path.join(root, prefix))):
            entries += [(key, value)
                        for value in sorted(os.listdir(os.path.join(root, prefix, key)))]
    return entries


def _push_run_outputs(repo, remote: Remote) -> int:
    """Upload the outputs of every run in the local run-cache; how many objects were sent.

    Runs whose outputs are no longer in the local cache (`dvc gc`) are skipped.
    """
    objects = set()
    for found in repo.stage_cache.get_used_objs(run_cache_entries(repo)).values():
        objects.update(found)
    present = [obj for obj in objects if (repo.cache.legacy if obj.name == "md5-dos2unix"
                                          else repo.cache.local).exists(obj.value)]
    if not present:
        return 0
    result = repo.cloud.push(present, remote=remote.name)
    if result.failed:
        raise RuntimeError("failed to push {} run-cache output objects".format(
            len(result.failed)))
    return len(result.transferred)


def push(root: str = ".") -> Transfer:
    """`dvc push --run-cache` plus the outputs of every cached run, to the default remote."""
    remote = default_remote(root)

    def action(repo):
        files = repo.push(remote=remote.name, run_cache=True)
        return Transfer(files, _push_run_outputs(repo, remote))
    return _run("push", remote, root, action)


def pull(root: str = ".") -> Transfer:
    """`dvc pull --run-cache` from the default remote, every download checked."""
    remote = default_remote(root)

    def action(repo):
        result = repo.pull(remote=remote.name, run_cache=True)
        return Transfer(sum(len(value) for value in result.values())
                        if isinstance(result, dict) else int(result or 0), 0)
    return _run("pull", remote, root, action)
