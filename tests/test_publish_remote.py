"""`make publish` / `make pull` (facenet_edgetpu.publish push / pull) against real remotes.

A small DVC pipeline in a temporary git repository (one stage, one parameter) is pushed from
clone A to a SeaweedFS S3 store and to an OpenSSH server, both started on loopback by the
tests, then pulled into fresh clones. The stage appends a line to a ledger file OUTSIDE the
repository each time it really runs: a restore from the cache or the run-cache writes no
line, so an unchanged ledger proves that nothing was recomputed.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys

import pytest

from tests import publish_servers as servers

STAGE = '''"""Test stage: out/ from params.yaml make.value; logs real runs in $PUBLISH_LEDGER."""
import hashlib, os, yaml
value = yaml.safe_load(open("params.yaml"))["make"]["value"]
os.makedirs("out", exist_ok=True)
with open("out/data.bin", "wb") as handle:
    for block in range(64):
        handle.write(hashlib.sha256("{} {}".format(value, block).encode()).digest() * 128)
with open("out/value.txt", "w") as handle:
    handle.write("{}\\n".format(value))
with open(os.environ["PUBLISH_LEDGER"], "a") as ledger:
    ledger.write("ran value={}\\n".format(value))
'''
DVC_YAML = """stages:
  make:
    cmd: python stage.py
    deps: [stage.py]
    params: [make.value]
    outs: [out]
"""
KINDS = ("s3", "ssh")


def expected_data(value) -> bytes:
    return b"".join(hashlib.sha256("{} {}".format(value, block).encode()).digest() * 128
                    for block in range(64))


def run(command, cwd, env, check=True):
    done = subprocess.run(command, cwd=cwd, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, universal_newlines=True)
    if check and done.returncode != 0:
        raise AssertionError("{} failed ({}):\n{}\n{}".format(
            " ".join(command), done.returncode, done.stdout[-3000:], done.stderr[-3000:]))
    return done


def publish(repo, env, *args, check=True):
    return run([sys.executable, "-m", "facenet_edgetpu.publish"] + list(args), repo, env, check)


def dvc(repo, env, *args, check=True):
    return run([sys.executable, "-m", "dvc"] + list(args), repo, env, check)


def set_value(repo, value):
    with open(os.path.join(repo, "params.yaml"), "w", encoding="utf-8") as handle:
        handle.write("make:\n  value: {}\n".format(value))


def ledger_lines(env):
    if not os.path.exists(env["PUBLISH_LEDGER"]):
        return []
    with open(env["PUBLISH_LEDGER"], "r", encoding="utf-8") as handle:
        return handle.read().splitlines()


def snapshot(repo):
    """Every file of the work tree (.git aside) with its bytes: what a failure must not touch."""
    files = {}
    for parent, folders, names in os.walk(repo):
        folders[:] = [name for name in folders if name not in (".git", "tmp")]
        for name in names:
            path = os.path.join(parent, name)
            if os.path.islink(path):
                files[os.path.relpath(path, repo)] = "-> " + os.readlink(path)
            else:
                with open(path, "rb") as handle:
                    files[os.path.relpath(path, repo)] = hashlib.sha256(handle.read()).hexdigest()
    return files


def base_env(tmp):
    """The environment of every command: this venv, a throwaway HOME, a ledger, git identity."""
    home = os.path.join(tmp, "home")
    os.makedirs(os.path.join(home, ".ssh"), exist_ok=True)
    env = dict(os.environ)
    env.update({
        "PATH": os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", ""),
        "HOME": home, "DVC_NO_ANALYTICS": "1", "PUBLISH_LEDGER": os.path.join(tmp, "ledger"),
        "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t", "PYTHONPATH": os.path.dirname(os.path.dirname(
            os.path.abspath(__file__))) + os.pathsep + env.get("PYTHONPATH", "")})
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE",
                 "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        env.pop(name, None)
    return env


class Remote:
    """One remote kind: its URL, and the credentials a clone needs (kept out of git)."""

    def __init__(self, kind, server, tmp):
        self.kind, self.server = kind, server
        if kind == "s3":
            self.url = "s3://dvc/{}".format(os.path.basename(tmp))
        else:
            self.url = "ssh://{}@127.0.0.1:{}{}".format(
                server.user, server.port, os.path.join(tmp, "ssh-store"))

    def add(self, repo, env):
        dvc(repo, env, "remote", "add", "-d", "storage", self.url)
        if self.kind == "s3":
            dvc(repo, env, "remote", "modify", "storage", "endpointurl", self.server.endpoint)

    def credentials(self, repo, env, good=True):
        """The credentials of one clone: S3 keys in its environment, the SSH key in
        .dvc/config.local; `good=False` gives a wrong secret / a key the server refuses."""
        env = dict(env)
        if self.kind == "s3":
            env["AWS_ACCESS_KEY_ID"] = servers.S3_ACCESS_KEY
            env["AWS_SECRET_ACCESS_KEY"] = servers.S3_SECRET_KEY if good else "wrong-secret"
            return env
        shutil.copyfile(self.server.known_hosts, os.path.join(env["HOME"], ".ssh", "known_hosts"))
        key = self.server.key
        if not good:
            key = os.path.join(env["HOME"], "stranger_key")
            if not os.path.exists(key):
                subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key],
                               check=True)
        dvc(repo, env, "remote", "modify", "--local", "storage", "keyfile", key)
        return env


@pytest.fixture(scope="module")
def s3_server(tmp_path_factory):
    with servers.s3_store(str(tmp_path_factory.mktemp("s3"))) as store:
        yield store


@pytest.fixture(scope="module")
def ssh_server(tmp_path_factory):
    with servers.ssh_server(str(tmp_path_factory.mktemp("ssh"))) as server:
        yield server


@pytest.fixture(scope="module", params=KINDS)
def published(request, tmp_path_factory):
    """Clone A ran the stage for value 1, then 2, then 1 again (restored from its run-cache),
    committed value 1 and pushed to the remote; (A, remote, env)."""
    server = request.getfixturevalue(request.param + "_server")
    tmp = str(tmp_path_factory.mktemp("published_" + request.param))
    env = base_env(tmp)
    remote = Remote(request.param, server, tmp)
    a = os.path.join(tmp, "a")
    os.makedirs(a)
    with open(os.path.join(a, "stage.py"), "w", encoding="utf-8") as handle:
        handle.write(STAGE)
    with open(os.path.join(a, "dvc.yaml"), "w", encoding="utf-8") as handle:
        handle.write(DVC_YAML)
    set_value(a, 1)
    run(["git", "init", "-q"], a, env)
    dvc(a, env, "init", "-q")
    remote.add(a, env)
    for value in (1, 2, 1):
        set_value(a, value)
        dvc(a, env, "repro")
    assert ledger_lines(env) == ["ran value=1", "ran value=2"]
    run(["git", "add", "-A"], a, env)
    run(["git", "commit", "-q", "-m", "value 1"], a, env)
    a_env = remote.credentials(a, env)
    pushed = publish(a, a_env, "push")
    assert "pushed to remote 'storage'" in pushed.stdout
    return a, remote, env


def fresh_clone(published, name, good=True):
    a, remote, env = published
    clone = os.path.join(os.path.dirname(a), name)
    run(["git", "clone", "-q", a, clone], os.path.dirname(a), env)
    return clone, remote.credentials(clone, env, good)


def test_committed_config_holds_no_credentials(published):
    a, remote, _ = published
    with open(os.path.join(a, ".dvc", "config"), "r", encoding="utf-8") as handle:
        config = handle.read()
    assert remote.url in config
    assert servers.S3_SECRET_KEY not in config and "keyfile" not in config
    tracked = run(["git", "ls-files"], a, published[2]).stdout.split()
    assert ".dvc/config.local" not in tracked


def test_fresh_clone_pulls_identical_files_and_runs_no_stage(published):
    a, _, env = published
    b, b_env = fresh_clone(published, "b")
    ledger = ledger_lines(env)
    pulled = publish(b, b_env, "pull")
    assert "pulled from remote 'storage'" in pulled.stdout
    for name in ("data.bin", "value.txt"):
        with open(os.path.join(a, "out", name), "rb") as mine, \
                open(os.path.join(b, "out", name), "rb") as theirs:
            assert mine.read() == theirs.read()
    assert dvc(b, b_env, "status").stdout.strip() == "Data and pipelines are up to date."
    repro = dvc(b, b_env, "repro").stdout
    assert "Running stage" not in repro and "didn't change, skipping" in repro
    assert ledger_lines(env) == ledger


def test_parameter_change_and_back_is_restored_from_the_run_cache(published):
    b, b_env = fresh_clone(published, "b_params")
    publish(b, b_env, "pull")
    ledger = ledger_lines(published[2])
    set_value(b, 2)     # computed by clone A only: its outputs come from the remote
    repro = dvc(b, b_env, "repro", "--pull").stdout
    assert "Stage 'make' is cached - skipping run, checking out outputs" in repro
    with open(os.path.join(b, "out", "data.bin"), "rb") as handle:
        assert handle.read() == expected_data(2)
    set_value(b, 1)     # and back: the pulled run record restores it from the local cache
    repro = dvc(b, b_env, "repro").stdout
    assert "Stage 'make' is cached - skipping run, checking out outputs" in repro
    with open(os.path.join(b, "out", "data.bin"), "rb") as handle:
        assert handle.read() == expected_data(1)
    assert ledger_lines(published[2]) == ledger, "a stage ran instead of being restored"


def assert_one_line_naming_the_remote(done, meaning):
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert lines and "remote 'storage'" in lines[-1] and meaning in lines[-1], done.stderr
    assert "Traceback" not in done.stderr


def test_refused_credentials_fail_clearly_and_touch_nothing(published):
    b, b_env = fresh_clone(published, "b_refused", good=False)
    before = snapshot(b)
    done = publish(b, b_env, "pull", check=False)
    assert_one_line_naming_the_remote(done, "refused the credentials")
    assert snapshot(b) == before
    assert not os.path.exists(os.path.join(b, "out"))


def test_push_to_a_remote_that_is_down_fails_clearly_and_deletes_nothing(published):
    a, remote, env = published
    down = os.path.join(os.path.dirname(a), "a_down")
    shutil.copytree(a, down, symlinks=True)
    closed_port = servers.free_ports(1)[0]      # nothing listens there
    if remote.kind == "s3":
        dvc(down, env, "remote", "modify", "storage", "endpointurl",
            "http://127.0.0.1:{}".format(closed_port))
    else:
        dvc(down, env, "remote", "modify", "storage", "port", str(closed_port))
    down_env = remote.credentials(down, env)
    before = snapshot(down)
    done = publish(down, down_env, "push", check=False)
    assert_one_line_naming_the_remote(done, "is unreachable")
    assert snapshot(down) == before


def corrupt_data_object(published):
    """Overwrite, on the remote, the object holding value 1's out/data.bin (same length)."""
    a, remote, _ = published
    digest = hashlib.md5(expected_data(1)).hexdigest()
    relative = "files/md5/{}/{}".format(digest[:2], digest[2:])
    if remote.kind == "s3":
        client = servers.s3_client(remote.server.endpoint)
        prefix = remote.url[len("s3://dvc/"):]
        key = "{}/{}".format(prefix, relative)
        client.head_object(Bucket="dvc", Key=key)      # it is there before we damage it
        client.put_object(Bucket="dvc", Key=key, Body=b"X" * len(expected_data(1)))
        return lambda: client.put_object(Bucket="dvc", Key=key, Body=expected_data(1))
    path = os.path.join(remote.url.split(":{}".format(remote.server.port), 1)[1], relative)
    os.chmod(path, 0o644)
    with open(path, "wb") as handle:
        handle.write(b"X" * len(expected_data(1)))

    def restore():
        with open(path, "wb") as handle:
            handle.write(expected_data(1))
    return restore


def test_object_corrupted_on_the_remote_is_not_checked_out(published):
    c, c_env = fresh_clone(published, "c_corrupt")
    restore = corrupt_data_object(published)
    try:
        done = publish(c, c_env, "pull", check=False)
    finally:
        restore()
    assert_one_line_naming_the_remote(done, "failed their hash check")
    data = os.path.join(c, "out", "data.bin")
    assert not os.path.exists(data) or open(data, "rb").read() == expected_data(1)
    cached = [os.path.join(parent, name) for parent, _, names in
              os.walk(os.path.join(c, ".dvc", "cache", "files")) for name in names]
    for path in cached:
        with open(path, "rb") as handle:
            assert not handle.read().startswith(b"XXXX"), "the corrupted object was cached"
    status = dvc(c, c_env, "status").stdout
    assert "Data and pipelines are up to date." not in status


def test_no_remote_configured_says_how_to_add_one(tmp_path):
    env = base_env(str(tmp_path))
    repo = str(tmp_path / "repo")
    os.makedirs(repo)
    run(["git", "init", "-q"], repo, env)
    dvc(repo, env, "init", "-q")
    for command in ("push", "pull"):
        done = publish(repo, env, command, check=False)
        assert done.returncode == 1
        assert done.stderr.count("\n") == 1 and "no DVC remote is configured" in done.stderr
        assert "dvc remote add -d storage s3://" in done.stderr
        assert "docs/sharing.md" in done.stderr
