"""The publishing path on the real pipeline, as a user runs it: `make publish` from the clone
that ran `dvc repro`, to a real S3 server; a fresh clone runs `make pull`, then `dvc repro`
runs no stage, `dvc status` is clean and every output is byte-identical; the bundle verifies.

Marked `publish`: tools/ci_publish_check.sh runs it after `make test` (.ci/run). With
PUBLISH_FIGURES=<file>, the push / pull times and sizes are written there as JSON.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import time

import pytest

from tests import publish_servers as servers
from tests.test_container_pipeline import output_files, sha256
from tests.test_publish_remote import base_env, dvc, publish, run

pytestmark = pytest.mark.publish
VENV = sys.prefix


def make(repo, env, target):
    """`make <target>` with this test's virtual environment (never rebuilt from here)."""
    installed = os.path.join(VENV, ".installed")
    return run(["make", "--no-print-directory", "VENV=" + VENV, "-o", installed, target],
               repo, env)


def remote_bytes(endpoint, prefix):
    client = servers.s3_client(endpoint)
    total, count, token = 0, 0, None
    while True:
        page = client.list_objects_v2(Bucket="dvc", Prefix=prefix, **(
            {"ContinuationToken": token} if token else {}))
        total += sum(entry["Size"] for entry in page.get("Contents", []))
        count += len(page.get("Contents", []))
        if not page.get("IsTruncated"):
            return total, count
        token = page["NextContinuationToken"]


def test_make_publish_then_make_pull_gives_a_fresh_clone_everything(pipeline_repo, tmp_path):
    if not os.path.exists(os.path.join(VENV, ".installed")):
        pytest.skip("needs the project's venv (make .venv/.installed): make runs from it")
    env = base_env(str(tmp_path))
    env.update({"AWS_ACCESS_KEY_ID": servers.S3_ACCESS_KEY,
                "AWS_SECRET_ACCESS_KEY": servers.S3_SECRET_KEY})
    a = str(tmp_path / "a")
    shutil.copytree(pipeline_repo[0], a, symlinks=True)
    figures = {}
    with servers.s3_store(str(tmp_path)) as store:
        dvc(a, env, "remote", "add", "-d", "storage", "s3://dvc/pipeline")
        dvc(a, env, "remote", "modify", "storage", "endpointurl", store.endpoint)
        run(["git", "add", "-A"], a, env)
        run(["git", "commit", "-q", "-m", "pipeline results"], a, env)

        start = time.monotonic()
        published = make(a, env, "publish").stdout
        figures["make_publish_seconds"] = round(time.monotonic() - start, 1)
        figures["remote_bytes"], figures["remote_objects"] = remote_bytes(
            store.endpoint, "pipeline/")
        assert "pushed to remote 'storage'" in published and "bundle written" in published

        b = str(tmp_path / "b")
        run(["git", "clone", "-q", a, b], str(tmp_path), env)
        start = time.monotonic()
        make(b, env, "pull")
        figures["make_pull_seconds"] = round(time.monotonic() - start, 1)
        start = time.monotonic()
        repro = dvc(b, env, "repro").stdout
        figures["repro_after_pull_seconds"] = round(time.monotonic() - start, 1)

    assert "Running stage" not in repro, repro
    assert dvc(b, env, "status").stdout.strip() == "Data and pipelines are up to date."
    outputs = output_files(a)
    assert "models/facenet_keras.tflite" in outputs and "reports/report.html" in outputs
    assert output_files(b) == outputs
    different = [path for path in sorted(outputs)
                 if sha256(os.path.join(a, path)) != sha256(os.path.join(b, path))]
    assert different == []

    archive = os.path.join(a, "dist", "facenet-edgetpu-bundle.tar.gz")
    verified = publish(a, env, "verify", archive)
    assert "files match the provenance statement" in verified.stdout
    with open(os.path.join(a, "dist", "bundle", "provenance.intoto.json"), "r",
              encoding="utf-8") as handle:
        statement = json.load(handle)
    commit = run(["git", "rev-parse", "HEAD"], a, env).stdout.strip()
    assert statement["predicate"]["buildDefinition"]["resolvedDependencies"][0]["digest"] == {
        "gitCommit": commit}
    figures["bundle_bytes"] = os.path.getsize(archive)
    if os.environ.get("PUBLISH_FIGURES"):
        with open(os.environ["PUBLISH_FIGURES"], "w", encoding="utf-8") as handle:
            json.dump(figures, handle, indent=2, sort_keys=True)
