"""dvc.yaml and the code agree: what a stage runs and reads is what DVC hashes.

If a stage imported a module its deps do not list, editing that module would not rerun it and
dvc.lock would record a stale artifact as current; if it listed a module it does not import, an
unrelated edit would rerun it. So, for every stage:

- its code deps equal the import closure (within the repository) of the entry point and its
  stage module;
- every path on its command line is a declared dep, output or params file, and every data dep
  and output is on its command line (the stage is told its paths; none are hidden in code);
- no module it runs names a pipeline path (a dep or output of any stage) as a constant, unless
  that path is the stage's own dep or output.
"""
from __future__ import annotations

import ast
import os
import shlex
from typing import Dict, Iterator, List, Set

import pytest

from facenet_edgetpu.core.dvcfile import StageSpec, load_stages
from facenet_edgetpu.core.params import load_params
from tests.import_closure import closure, module_file

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CODE_ROOTS = ("facenet_edgetpu", "edgetpu_analyzer")
CONTROL_FILES = {"params.yaml", "dvc.yaml", "toolchain.yaml"}


def stages(repo: str = REPO) -> Dict[str, StageSpec]:
    return load_stages(repo, load_params(os.path.join(repo, "params.yaml")))


def is_code(path: str) -> bool:
    return path.split("/")[0] in CODE_ROOTS


def declared_code(repo: str, spec: StageSpec) -> Set[str]:
    """The stage's code deps, directories expanded to the Python files in them."""
    files = set()
    for dep in filter(is_code, spec.deps):
        full = os.path.join(repo, dep)
        if os.path.isdir(full):
            for root, _, names in os.walk(full):
                files.update(os.path.relpath(os.path.join(root, name), repo).replace(os.sep, "/")
                             for name in names if name.endswith(".py"))
        else:
            files.add(dep)
    return files


def command_words(spec: StageSpec) -> List[str]:
    return shlex.split(spec.cmd)


def stage_roots(repo: str, spec: StageSpec) -> List[str]:
    """The modules `python -m <package> <stage> ...` runs: the package's __main__ and the
    stage's module."""
    words = command_words(spec)
    assert words[:2] == ["python", "-m"] and words[3] == spec.name, spec.cmd
    package = words[2]
    candidates = [package + ".stages." + spec.name, package + "." + spec.name]
    module = next((name for name in candidates if module_file(repo, name)), None)
    assert module is not None, "no module for stage {} among {}".format(spec.name, candidates)
    return [package + ".__main__", module]


def command_paths(spec: StageSpec) -> List[str]:
    """The values of the command's options: the paths the stage is told."""
    return [os.path.normpath(word) for word in command_words(spec)[4:] if not word.startswith("-")]


def string_constants(repo: str, path: str) -> Iterator[str]:
    """Every string constant of a module, and every os.path.join / "/"-join of constants."""
    with open(os.path.join(repo, path), "r", encoding="utf-8") as handle:
        tree = ast.parse(handle.read(), path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            yield node.value
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "join" and \
                node.args and all(isinstance(a, ast.Constant) and isinstance(a.value, str)
                                  for a in node.args):
            yield "/".join(a.value for a in node.args)


@pytest.fixture(scope="module")
def specs():
    return stages()


def test_every_stage_runs_through_the_entry_point(specs):
    assert list(specs) == ["fetch_inputs", "crop_faces", "representative_dataset", "float_model",
                           "float_reference", "calibrate", "quantize", "compile", "fidelity",
                           "report"]
    for spec in specs.values():
        assert command_words(spec)[:4] == ["python", "-m", "facenet_edgetpu", spec.name]


@pytest.mark.parametrize("stage", sorted(stages()))
def test_code_deps_are_the_import_closure(stage, specs):
    spec = specs[stage]
    actual = closure(REPO, stage_roots(REPO, spec))
    declared = declared_code(REPO, spec)
    assert sorted(actual - declared) == [], "imported but not in deps of " + stage
    assert sorted(declared - actual) == [], "in deps of {} but never imported".format(stage)


@pytest.mark.parametrize("stage", sorted(stages()))
def test_paths_are_on_the_command_line(stage, specs):
    spec = specs[stage]
    told = set(command_paths(spec))
    data_deps = {dep for dep in spec.deps if not is_code(dep)}
    params_files = {"params.yaml"} | {next(iter(entry)) for entry in spec.params
                                      if isinstance(entry, dict)}
    assert sorted(told - data_deps - set(spec.outs) - params_files) == [], \
        "command-line paths of {} that are neither deps, outs nor params files".format(stage)
    assert sorted((data_deps | set(spec.outs)) - told) == [], \
        "deps/outs of {} missing from its command line".format(stage)


@pytest.mark.parametrize("stage", sorted(stages()))
def test_code_names_no_pipeline_path_the_stage_does_not_declare(stage, specs):
    spec = specs[stage]
    pipeline_paths = {path for other in specs.values() for path in other.deps + other.outs
                      if not is_code(path)}
    own = set(spec.deps) | set(spec.outs)
    found = {}
    for path in sorted(closure(REPO, stage_roots(REPO, spec))):
        named = {os.path.normpath(text) for text in string_constants(REPO, path)
                 if "\n" not in text and len(text) < 200}
        hidden = sorted((named & pipeline_paths) - own - CONTROL_FILES)
        if hidden:
            found[path] = hidden
    assert found == {}, "constant pipeline paths in the code of {}".format(stage)


def test_the_closure_follows_lazy_and_relative_imports(tmp_path):
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("")
    (package / "sub" / "a.py").write_text("def f():\n    from . import b\n")
    (package / "sub" / "b.py").write_text("from ..c import thing\nimport json\n")
    (package / "c.py").write_text("thing = 1\n")
    (package / "unused.py").write_text("")
    assert closure(str(tmp_path), ["pkg.sub.a"]) == {
        "pkg/__init__.py", "pkg/sub/__init__.py", "pkg/sub/a.py", "pkg/sub/b.py", "pkg/c.py"}
