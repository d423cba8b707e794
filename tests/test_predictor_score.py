"""The predictor scored against real compiler output: `edgetpu-predict --score DIR`.

The shared corpus (real `edgetpu_compiler` operation logs next to their exact input models,
gathered from public repositories) lives beside the repository and is test data only: it is
read here, never copied into the repository. Its location: $FACENET_EDGETPU_CORPUS, else
<repo>/../shared/edgetpu-corpus. Without it the tests skip, except in CI (CI=true), where they
fail.
"""
import json
import os
import shutil
import subprocess
import sys

import pytest

from edgetpu_analyzer import cli
from edgetpu_analyzer.diff import row_counts
from edgetpu_analyzer.parse import parse_operation_log
from edgetpu_analyzer.predict import predict_file
from edgetpu_analyzer.render import render_compiler_stdout
from edgetpu_analyzer.score import (
    FLAGS_DEFAULT, FLAGS_FROM_COMPILED_MODEL, FLAGS_FROM_LOG, FLAGS_FROM_MANIFEST, CorpusError,
    load_corpus, render_score_text, score_corpus, table_needs_several_regions)
from edgetpu_analyzer.tflite_reader import read_model

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Raise this floor as the predictor improves; issue 12 asks for at least 95 % exact tables.
EXACT_FLOOR = 0.95


def corpus_directory():
    return os.environ.get("FACENET_EDGETPU_CORPUS") or os.path.join(
        os.path.dirname(REPO), "shared", "edgetpu-corpus")


@pytest.fixture(scope="module")
def corpus():
    directory = corpus_directory()
    if not os.path.isfile(os.path.join(directory, "manifest.json")):
        message = "no compiler-output corpus at {} (set FACENET_EDGETPU_CORPUS)".format(
            directory)
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return directory


@pytest.fixture(scope="module")
def corpus_score(corpus):
    return score_corpus(corpus)


def _pair(corpus, predicate):
    """The first corpus pair whose manifest entry satisfies `predicate` (skip if none)."""
    with open(os.path.join(corpus, "manifest.json")) as handle:
        entries = json.load(handle)
    entries = entries.get("pairs", entries) if isinstance(entries, dict) else entries
    for entry in entries:
        if predicate(entry):
            return entry
    pytest.skip("the corpus has no pair of the kind this test needs")


def _copy_pair(corpus, entry, destination):
    """A one-pair corpus in `destination` with the model of `entry` (test files only)."""
    os.makedirs(str(destination / "models"))
    os.makedirs(str(destination / "logs"))
    shutil.copy(os.path.join(corpus, entry["model_file"]), str(destination / "models" / "m.tflite"))
    shutil.copy(os.path.join(corpus, entry["log_file"]), str(destination / "logs" / "m.log"))
    manifest = {"id": "only", "model_file": "models/m.tflite", "log_file": "logs/m.log"}
    return manifest


def _write_manifest(directory, entries):
    (directory / "manifest.json").write_text(json.dumps(entries))


# --- the score on the shared corpus -----------------------------------------------------------

def test_shared_corpus_meets_the_floor(corpus_score):
    errors = [(pair.pair_id, pair.error) for pair in corpus_score.pairs if pair.error]
    assert errors == []
    wrong = {pair.pair_id: pair.differences for pair in corpus_score.pairs if not pair.exact}
    assert corpus_score.fraction >= EXACT_FLOOR, "exact {}/{}; wrong: {}".format(
        corpus_score.exact, len(corpus_score.pairs), wrong)


def test_every_pair_is_predicted_with_its_own_compiler_release(corpus, corpus_score):
    entries = {pair.pair_id: pair for pair in load_corpus(corpus)}
    for pair in corpus_score.pairs:
        wanted = entries[pair.pair_id].compiler_version
        assert pair.compiler_version == wanted
        # Every release in the corpus is one whose rules are known: nothing is approximated.
        assert pair.imitated_version == wanted


def test_cli_scores_the_corpus_as_text_and_json(corpus, corpus_score, capsys):
    assert cli.main(["--score", corpus]) == 0
    text = capsys.readouterr().out
    assert text.startswith("# Scoring edgetpu_analyzer PREDICTIONS")
    assert "exact {}/{}".format(corpus_score.exact, len(corpus_score.pairs)) in text
    assert "memory on-chip used:" in text
    assert cli.main(["--score", corpus, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert (data["exact"], data["pairs"]) == (corpus_score.exact, len(corpus_score.pairs))
    assert sorted(item["id"] for item in data["results"]) == sorted(
        pair.pair_id for pair in corpus_score.pairs)


def test_console_script_entry_point_scores(corpus):
    completed = subprocess.run(
        [sys.executable, "-m", "edgetpu_analyzer.cli", "--score", corpus], cwd=REPO,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert completed.returncode == 0, completed.stderr.decode()
    assert b"\nexact " in completed.stdout


# --- how the scorer decides the compiler flags ------------------------------------------------

def test_flags_come_from_the_manifest_first(corpus, tmp_path):
    entry = _copy_pair(corpus, _pair(corpus, lambda e: True), tmp_path)
    entry["compiler_flags"] = ["-a", "--min_runtime_version=13"]
    entry["compiler_version"] = "16.0.384591198"
    _write_manifest(tmp_path, [entry])
    pair = score_corpus(str(tmp_path)).pairs[0]
    assert pair.flags_source == FLAGS_FROM_MANIFEST
    assert pair.flags.multiple_subgraphs and pair.flags.min_runtime_version == 13


def test_several_custom_ops_in_the_compiled_model_mean_dash_a(corpus, tmp_path):
    entry = _copy_pair(corpus, _pair(corpus, lambda e: True), tmp_path)
    entry["compiled_model_check"] = {"edgetpu_custom_ops": 3}
    _write_manifest(tmp_path, [entry])
    pair = score_corpus(str(tmp_path)).pairs[0]
    assert pair.flags_source == FLAGS_FROM_COMPILED_MODEL.format(3)
    assert pair.flags.multiple_subgraphs


def _real_tables(corpus):
    for pair in load_corpus(corpus):
        with open(pair.log_path) as handle:
            yield pair, read_model(pair.model_path), row_counts(parse_operation_log(handle.read()))


def test_a_real_table_that_needs_two_regions_implies_dash_a(corpus, corpus_score):
    # A mapped operator type that reads, through an operator type on the CPU, the output of
    # another mapped type: one Edge TPU custom op cannot do that.
    scored = {pair.pair_id: pair for pair in corpus_score.pairs}
    several = [(pair, model, table) for pair, model, table in _real_tables(corpus)
               if table_needs_several_regions(model, table)]
    if not several:
        pytest.skip("no table in this corpus needs several Edge TPU regions")
    for pair, model, table in several:
        assert scored[pair.pair_id].flags.multiple_subgraphs
        assert scored[pair.pair_id].flags_source in (
            FLAGS_FROM_LOG, FLAGS_FROM_COMPILED_MODEL.format(pair.compiled_custom_ops))
        # The same counts, all mapped, fit in one region.
        merged = {}
        for (operator, _), count in table.items():
            merged[(operator, "Mapped to Edge TPU")] = merged.get(
                (operator, "Mapped to Edge TPU"), 0) + count
        assert not table_needs_several_regions(model, merged)


def test_a_table_with_the_subgraph_status_keeps_the_default_flags(corpus, corpus_score):
    entry = _pair(corpus, lambda e: any(
        "More than one subgraph" in status for status in e["log_statuses"]))
    pair = next(p for p in corpus_score.pairs if p.pair_id == entry["id"])
    assert pair.flags_source == FLAGS_DEFAULT and not pair.flags.multiple_subgraphs


# --- what a difference looks like -------------------------------------------------------------

def test_a_wrong_table_is_reported_row_by_row(corpus, tmp_path):
    entry = _copy_pair(corpus, _pair(corpus, lambda e: e["mapping"] == "full"), tmp_path)
    log = tmp_path / "logs" / "m.log"
    text = log.read_text().replace("Mapped to Edge TPU", "Operation not supported", 1)
    log.write_text(text)
    _write_manifest(tmp_path, [entry])
    score = score_corpus(str(tmp_path))
    pair = score.pairs[0]
    assert not pair.exact and score.exact == 0
    assert any(real and not predicted and status == "Operation not supported"
               for _, status, real, predicted in pair.differences)
    assert any(predicted and not real and status == "Mapped to Edge TPU"
               for _, status, real, predicted in pair.differences)


def test_memory_lines_of_compiler_stdout_are_compared(corpus, tmp_path):
    entry = _copy_pair(corpus, _pair(corpus, lambda e: e["mapping"] == "full"), tmp_path)
    _write_manifest(tmp_path, [entry])
    assert score_corpus(str(tmp_path)).pairs[0].memory == []   # operation logs have none
    # Compiler stdout for the same model whose on-chip figure is larger than predicted.
    result = predict_file(str(tmp_path / "models" / "m.tflite"), "16")
    stdout = render_compiler_stdout(result).split("\n", 1)[1]   # drop the prediction marker
    stdout = stdout.replace("On-chip memory used for caching model parameters: ",
                            "On-chip memory used for caching model parameters: 1")
    (tmp_path / "logs" / "m.log").write_text(stdout)
    memory = score_corpus(str(tmp_path)).pairs[0].memory
    assert [item.line for item in memory] == ["on-chip used", "off-chip"]
    assert memory[0].relative_error < 0 and not memory[0].within_tolerance
    assert memory[1].real == result.off_chip_memory_bytes and memory[1].within_tolerance


# --- bad corpora --------------------------------------------------------------------------------

@pytest.mark.parametrize("content, message", [
    (None, "cannot read the manifest"),
    ("{not json", "not valid JSON"),
    ("[]", "expected a non-empty list"),
    ('[{"id": "x", "log_file": "l.log"}]', "has no 'model_file' path"),
    ('[{"model_file": "m", "log_file": "l", "compiler_flags": "-a"}]', "must be a list"),
    ('[{"model_file": "m", "log_file": "l", "compiler_flags": ["-m", "x"]}]',
     "needs a runtime number"),
])
def test_a_bad_manifest_is_one_clear_line(tmp_path, capsys, content, message):
    if content is not None:
        (tmp_path / "manifest.json").write_text(content)
    with pytest.raises(CorpusError, match=message):
        load_corpus(str(tmp_path))
    assert cli.main(["--score", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("edgetpu-predict: error: ") and err.count("\n") == 1
    assert message in err


def test_a_missing_model_is_reported_for_its_pair_only(corpus, tmp_path):
    entry = _copy_pair(corpus, _pair(corpus, lambda e: True), tmp_path)
    broken = dict(entry, id="broken", model_file="models/missing.tflite")
    _write_manifest(tmp_path, [entry, broken])
    score = score_corpus(str(tmp_path))
    assert [pair.pair_id for pair in score.pairs] == ["only", "broken"]
    assert score.pairs[0].error is None
    assert "missing.tflite: no such file" in score.pairs[1].error and not score.pairs[1].exact
    assert "broken  ERROR  " in render_score_text(score)


def test_score_and_model_are_exclusive(capsys):
    assert cli.main([]) == 2
    assert "either a .tflite model or --score DIR" in capsys.readouterr().err
    with pytest.raises(CorpusError, match="no such corpus directory"):
        load_corpus(os.path.join(REPO, "no-such-corpus"))
