"""Tests of `oplog-diff`: the diff of two compile results, its three layouts, its inputs
(compiler stdout, operation logs, compile_result.json, directories, git revisions read
through DVC) and its exit codes.

Fixtures in tests/data/oplog_*: real compiler stdout copied from the seeds (FaceNet with
compiler 15.0; MobileNet v2 integer-quant vs full-integer-quant with compiler 2.0), and texts
written in the compiler's exact layout (operator in 31 columns, count in 11; facts sheet 5 and
7.3): a compiler 16 partial mapping, a compiler 16 refusal, and two operation logs.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from edgetpu_analyzer import oplog_diff
from edgetpu_analyzer.diff import (
    VERDICT_CHANGED, VERDICT_IMPROVEMENT, VERDICT_REGRESSION, VERDICT_UNCHANGED, RowChange,
    diff_results, status_moves)
from edgetpu_analyzer.diff_render import render_text
from edgetpu_analyzer.parse import parse_compiler_stdout, parse_operation_log
from edgetpu_analyzer.result import STATUS_MAPPED, CompileResult, OperatorRow

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(REPO, "tests", "data")

MOBILENET_INTEGER = os.path.join(DATA, "oplog_mobilenet_v2_integer_quant_stdout.txt")
MOBILENET_FULL_INTEGER = os.path.join(DATA, "oplog_mobilenet_v2_full_integer_quant_stdout.txt")
FACENET_V15_STDOUT = os.path.join(DATA, "oplog_facenet_v15_stdout.txt")
FACENET_V15_LOG = os.path.join(DATA, "oplog_facenet_v15_edgetpu.log")
FACENET_V16_PARTIAL_LOG = os.path.join(DATA, "oplog_facenet_v16_partial_edgetpu.log")
FACENET_V16_PARTIAL_STDOUT = os.path.join(DATA, "oplog_facenet_v16_partial_stdout.txt")
FACENET_V16_REFUSED_STDOUT = os.path.join(DATA, "oplog_facenet_v16_refused_stdout.txt")

MORE_THAN_ONE = "More than one subgraph is not supported"
OTHERWISE = ("Operation is otherwise supported, but not mapped due to some unspecified "
             "limitation")
DATA_TYPE = "Operation is working on an unsupported data type"


def read(path):
    with open(path, "r", encoding="utf-8", newline="") as handle:
        return handle.read()


def run_main(capsys, *argv):
    """(exit code, stdout, stderr) of oplog-diff run in this process."""
    code = oplog_diff.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def rows_by_key(difference):
    return {(row.operator, row.status): (row.a, row.b) for row in difference.rows}


# --- the diff itself --------------------------------------------------------------------------

def test_log_diff_keys_rows_by_operator_and_status():
    """Two operation logs: reordered rows, one operator under two statuses, CRLF, stray
    blanks. The diff must pair rows by (operator, status), not by position or operator."""
    before = parse_operation_log(read(FACENET_V15_LOG))
    after = parse_operation_log(read(FACENET_V16_PARTIAL_LOG))
    difference = diff_results(before, after)

    keys = [(row.operator, row.status) for row in difference.rows]
    assert keys == sorted(keys)
    assert rows_by_key(difference) == {
        ("ADD", STATUS_MAPPED): (21, 21),
        ("CONCATENATION", STATUS_MAPPED): (23, 23),
        ("CONV_2D", STATUS_MAPPED): (132, 129),
        ("CONV_2D", MORE_THAN_ONE): (0, 3),
        ("DEQUANTIZE", DATA_TYPE): (0, 1),
        ("FULLY_CONNECTED", STATUS_MAPPED): (1, 1),
        ("MAX_POOL_2D", STATUS_MAPPED): (3, 3),
        ("MEAN", STATUS_MAPPED): (1, 1),
        ("QUANTIZE", STATUS_MAPPED): (33, 32),
        ("QUANTIZE", OTHERWISE): (0, 1),
    }
    moves = [(m.operator, m.count, m.from_status, m.to_status) for m in difference.status_moves]
    assert moves == [("CONV_2D", 3, STATUS_MAPPED, MORE_THAN_ONE),
                     ("QUANTIZE", 1, STATUS_MAPPED, OTHERWISE)]
    operations = {value.name: (value.a, value.b) for value in difference.operations}
    assert operations["total_operations"] == (214, 215)
    assert operations["operations_on_edgetpu"] == (214, 210)
    assert operations["operations_on_cpu"] == (0, 5)
    assert difference.verdict == VERDICT_REGRESSION
    assert [finding.rule for finding in difference.regressions] == ["fewer_mapped"]
    # A log has no memory lines: the off-chip part of the rule is skipped, and says so.
    assert any("off-chip memory not compared" in note for note in difference.notes)
    assert "compiler version changed: 15.0.340273435 -> 16.0.384591198" in difference.notes


def test_reordering_rows_alone_is_no_change():
    rows = [OperatorRow("CONV_2D", 5, STATUS_MAPPED), OperatorRow("CONV_2D", 2, MORE_THAN_ONE),
            OperatorRow("ADD", 1, STATUS_MAPPED)]
    first = CompileResult("15.0.340273435", False, operators=rows, total_operations=8,
                          operations_on_edgetpu=6, operations_on_cpu=2)
    second = CompileResult("15.0.340273435", False, operators=list(reversed(rows)),
                           total_operations=8, operations_on_edgetpu=6, operations_on_cpu=2)
    difference = diff_results(first, second)
    assert difference.verdict == VERDICT_UNCHANGED
    assert all(row.change == 0 for row in difference.rows)
    assert difference.status_moves == []


def test_status_moves_pair_losses_with_gains_and_leave_the_rest_as_count_changes():
    rows = [RowChange("CONV_2D", "a-status", 4, 0), RowChange("CONV_2D", "b-status", 0, 1),
            RowChange("CONV_2D", "c-status", 0, 5), RowChange("ADD", STATUS_MAPPED, 2, 0)]
    moves = [(m.operator, m.count, m.from_status, m.to_status) for m in status_moves(rows)]
    # 4 lost, 6 gained: 4 moved (sorted pairing), 2 are new; ADD only lost, so nothing moved.
    assert moves == [("CONV_2D", 1, "a-status", "b-status"),
                     ("CONV_2D", 3, "a-status", "c-status")]


def test_stdout_and_log_of_the_same_run_do_not_differ():
    stdout_result = parse_compiler_stdout(read(FACENET_V15_STDOUT))
    log_result = parse_operation_log(read(FACENET_V15_LOG))
    difference = diff_results(stdout_result, log_result)
    assert difference.verdict == VERDICT_UNCHANGED
    assert len(difference.rows) == 7 and all(row.change == 0 for row in difference.rows)
    off_chip = [value for value in difference.memory if value.name == "off_chip_memory_bytes"][0]
    assert (off_chip.a, off_chip.b, off_chip.change) == (15791555, None, None)


def test_stdout_without_table_is_not_read_as_all_rows_removed():
    with_table = parse_compiler_stdout(read(FACENET_V15_STDOUT))
    without_table = parse_compiler_stdout(read(FACENET_V15_STDOUT))
    without_table.operators = []
    difference = diff_results(with_table, without_table)
    assert difference.rows == [] and difference.verdict == VERDICT_UNCHANGED
    assert any(note.startswith("operator rows not compared: no operator table for B")
               for note in difference.notes)


def test_stdout_and_log_inputs_are_recognised(capsys):
    code, out, _ = run_main(capsys, FACENET_V15_STDOUT, FACENET_V16_PARTIAL_LOG)
    assert code == 0
    assert "A: {} (compiler stdout file)".format(FACENET_V15_STDOUT) in out
    assert "B: {} (operation log file)".format(FACENET_V16_PARTIAL_LOG) in out
    assert 'CONV_2D: 3 moved from "Mapped to Edge TPU" to "{}"'.format(MORE_THAN_ONE) in out


def test_toolchain_changes_are_listed_only_when_both_sides_have_one():
    result = parse_compiler_stdout(read(FACENET_V15_STDOUT))
    both = diff_results(result, result, {"edgetpu_compiler": "15.0", "tflite": "2.18.0"},
                        {"edgetpu_compiler": "16.0", "tflite": "2.18.0", "python": "3.11.7"})
    assert both.toolchain_compared
    assert both.toolchain_changes == [("edgetpu_compiler", "15.0", "16.0"),
                                      ("python", None, "3.11.7")]
    assert both.verdict == VERDICT_CHANGED  # a toolchain change is reported, not judged
    one = diff_results(result, result, None, {"edgetpu_compiler": "16.0"})
    assert not one.toolchain_compared and one.toolchain_changes == []
    assert "toolchain not compared: known only for B" in one.notes


# --- the MobileNet pair, plain text, exit codes ------------------------------------------------

def test_mobilenet_pair_plain_text(capsys):
    code, out, err = run_main(capsys, MOBILENET_INTEGER, MOBILENET_FULL_INTEGER)
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines[2] == ("Verdict: improvement - more operations mapped to the Edge TPU: "
                        "70 -> 72 (+2)")
    assert "operations on Edge TPU  70  72      +2" in lines
    assert "operations on CPU        2   0      -2" in lines
    assert "on-chip memory available  6.91MiB  6.91MiB       0" in lines
    table_start = lines.index("Operator table (changed rows; 7 unchanged not shown)")
    table = lines[table_start + 1:table_start + 5]
    assert [line.split()[0] for line in table] == ["Operator", "DEQUANTIZE", "QUANTIZE",
                                                   "QUANTIZE"]
    # Columns are aligned: every status starts in the same column.
    status_column = table[0].index("Status")
    assert [line[status_column:] for line in table[1:]] == [DATA_TYPE, STATUS_MAPPED, OTHERWISE]
    assert ('  QUANTIZE: 1 moved from "{}" to "Mapped to Edge TPU"'.format(OTHERWISE)
            in lines)
    assert ("  - A and B compiled different models: mobilenet_v2_integer_quant.tflite and "
            "mobilenet_v2_full_integer_quant1.tflite") in lines


@pytest.mark.parametrize("first, second, expected_code, verdict", [
    (MOBILENET_FULL_INTEGER, MOBILENET_INTEGER, 1, VERDICT_REGRESSION),       # fewer mapped
    (MOBILENET_INTEGER, MOBILENET_FULL_INTEGER, 0, VERDICT_IMPROVEMENT),      # more mapped
    (MOBILENET_INTEGER, MOBILENET_INTEGER, 0, VERDICT_UNCHANGED),             # no change
    (FACENET_V15_STDOUT, FACENET_V16_PARTIAL_STDOUT, 1, VERDICT_REGRESSION),  # + off-chip
    (FACENET_V15_STDOUT, FACENET_V16_REFUSED_STDOUT, 1, VERDICT_REGRESSION),  # refused
    (FACENET_V16_REFUSED_STDOUT, FACENET_V15_STDOUT, 0, VERDICT_IMPROVEMENT),
])
def test_fail_on_regression_exit_codes(capsys, first, second, expected_code, verdict):
    code, out, _ = run_main(capsys, first, second, "--fail-on-regression", "--json")
    assert code == expected_code
    assert json.loads(out)["verdict"] == verdict
    # Without the flag a regression is reported but does not fail.
    code, _, _ = run_main(capsys, first, second)
    assert code == 0


def test_off_chip_growth_alone_is_a_regression():
    before = parse_compiler_stdout(read(FACENET_V15_STDOUT))
    after = parse_compiler_stdout(read(FACENET_V15_STDOUT))
    after.off_chip_memory_bytes += 1024
    difference = diff_results(before, after)
    assert [finding.rule for finding in difference.regressions] == ["off_chip_grew"]
    assert "15.06MiB -> " in difference.regressions[0].message
    assert [finding.rule for finding in diff_results(after, before).improvements] == [
        "off_chip_shrank"]


def test_refused_side_is_named_with_the_compilers_reason():
    refused = parse_compiler_stdout(read(FACENET_V16_REFUSED_STDOUT))
    compiled = parse_compiler_stdout(read(FACENET_V15_STDOUT))
    text = render_text(diff_results(compiled, refused))
    assert "B refused:" in text
    assert "Compilation failed due to large activation tensors in model." in text
    assert "real, refused" in text


# --- JSON and Markdown --------------------------------------------------------------------------

def test_json_structure(capsys):
    code, out, _ = run_main(capsys, FACENET_V15_STDOUT, FACENET_V16_PARTIAL_STDOUT, "--json")
    assert code == 0
    data = json.loads(out)
    assert out == json.dumps(data, indent=2, sort_keys=True) + "\n"  # stable: sorted keys
    assert set(data) == {"format", "verdict", "regression", "a", "b", "compiler", "operations",
                         "memory", "sizes", "rows", "status_moves", "toolchain", "regressions",
                         "improvements", "notes"}
    assert data["format"] == "edgetpu-oplog-diff/1"
    assert data["regression"] is True
    assert [item["rule"] for item in data["regressions"]] == ["fewer_mapped", "off_chip_grew"]
    assert data["compiler"]["version"] == {"a": "15.0.340273435", "b": "16.0.384591198",
                                           "changed": True}
    assert data["a"]["source"] == FACENET_V15_STDOUT + " (compiler stdout file)"
    assert data["memory"]["off_chip_memory_bytes"]["change"] == (
        data["memory"]["off_chip_memory_bytes"]["b"] - data["memory"]["off_chip_memory_bytes"]["a"])
    assert data["memory"]["off_chip_memory_bytes"]["change"] > 0
    assert data["operations"]["operations_on_edgetpu"] == {
        "label": "operations on Edge TPU", "unit": "count", "a": 214, "b": 211, "change": -3,
        "changed": True}
    # JSON lists every row, unchanged ones included, sorted by (operator, status).
    keys = [(row["operator"], row["status"]) for row in data["rows"]]
    assert keys == sorted(keys) and len(keys) == 8
    assert {"operator": "CONV_2D", "status": MORE_THAN_ONE, "a": 0, "b": 3, "change": 3,
            "changed": True} in data["rows"]
    assert data["status_moves"] == [{"operator": "CONV_2D", "count": 3,
                                     "from_status": STATUS_MAPPED, "to_status": MORE_THAN_ONE}]
    assert data["toolchain"] == {"compared": False, "changes": []}


def test_markdown_structure(capsys):
    code, out, _ = run_main(capsys, MOBILENET_INTEGER, MOBILENET_FULL_INTEGER, "--markdown")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "### Edge TPU operator-log diff"
    assert "- **Verdict:** :white_check_mark: improvement" in lines
    assert "| operator | status | A | B | change |" in lines
    assert "| `QUANTIZE` | Mapped to Edge TPU | 0 | 2 | +2 |" in lines
    assert "| `QUANTIZE` | 1 | {} | Mapped to Edge TPU |".format(OTHERWISE) in lines
    assert "| operations on Edge TPU | 70 | 72 | +2 |" in lines
    # Four tables (compiler, figures, rows, status moves), each a header, a rule, and rows
    # with as many cells as the header.
    blocks, current = [], []
    for line in lines + [""]:
        if line.startswith("|"):
            current.append(line)
        elif current:
            blocks.append(current)
            current = []
    assert [block[0] for block in blocks] == [
        "| compiler | A | B |", "| figure | A | B | change |",
        "| operator | status | A | B | change |", "| operator | count | from | to |"]
    for block in blocks:
        assert set(block[1].replace("|", " ").split()) == {"---"}
        assert all(line.count("|") == block[0].count("|") for line in block)
    code, all_rows, _ = run_main(capsys, MOBILENET_INTEGER, MOBILENET_FULL_INTEGER,
                                 "--markdown", "--all-rows")
    assert "| `CONV_2D` | Mapped to Edge TPU | 35 | 35 | 0 |" in all_rows.splitlines()
    assert "| `CONV_2D` | Mapped to Edge TPU | 35 | 35 | 0 |" not in lines


# --- inputs: JSON, directories ------------------------------------------------------------------

def write_result(directory, result):
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "compile_result.json"), "w", encoding="utf-8") as handle:
        json.dump(result.to_dict(), handle, indent=2, sort_keys=True)


def test_compile_result_json_and_directories(tmp_path, capsys):
    predicted = parse_compiler_stdout(read(FACENET_V15_STDOUT))
    predicted.predicted = True
    write_result(str(tmp_path / "predicted" / "models" / "edgetpu"), predicted)
    with open(str(tmp_path / "predicted" / "dvc.lock"), "w", encoding="utf-8") as handle:
        handle.write("schema: '2.0'\nstages:\n  compile:\n    params:\n      toolchain.yaml:\n"
                     "        edgetpu_compiler: predicted\n        tflite: 2.18.0\n")
    with open(str(tmp_path / "predicted" / "dvc.yaml"), "w", encoding="utf-8") as handle:
        handle.write("stages:\n  quantize:\n    cmd: q\n    outs: [models/x.tflite]\n"
                     "  compile:\n    cmd: c\n    outs: [models/edgetpu]\n")
    real_dir = tmp_path / "real"
    real_dir.mkdir()
    shutil.copy(FACENET_V16_PARTIAL_LOG, str(real_dir / "facenet_keras_edgetpu.log"))

    json_file = str(tmp_path / "predicted" / "models" / "edgetpu" / "compile_result.json")
    code, out, _ = run_main(capsys, json_file, str(real_dir), "--json")
    assert code == 0
    data = json.loads(out)
    assert data["a"]["source"] == json_file + " (compile result JSON file)"
    assert data["b"]["source"].startswith(str(real_dir) + " (directory: ")
    assert "facenet_keras_edgetpu.log, operation log" in data["b"]["source"]
    assert data["compiler"]["predicted"] == {"a": True, "b": False, "changed": True}

    # A work tree: the stage output of its dvc.yaml that holds a compile result is used, and
    # the toolchain comes from that stage's non-params.yaml params in its dvc.lock.
    code, out, _ = run_main(capsys, str(tmp_path / "predicted"), FACENET_V15_STDOUT, "--json")
    data = json.loads(out)
    assert "work tree: " in data["a"]["source"]
    assert "compile_result.json, compile result JSON; toolchain from dvc.lock (stage compile)" \
        in data["a"]["source"]
    assert data["a"]["toolchain"] == {"edgetpu_compiler": "predicted", "tflite": "2.18.0"}
    assert any("prediction" in note for note in data["notes"])


# --- bad arguments ------------------------------------------------------------------------------

def bad_inputs(tmp_path):
    (tmp_path / "notes.txt").write_text("just some text\n")
    (tmp_path / "binary.bin").write_bytes(b"\x00\xff\xfe" * 50)
    (tmp_path / "other.json").write_text('{"name": "not a compile result"}')
    (tmp_path / "empty").mkdir()
    (tmp_path / "two_logs").mkdir()
    for name in ("a_edgetpu.log", "b_edgetpu.log"):
        shutil.copy(FACENET_V15_LOG, str(tmp_path / "two_logs" / name))
    truncated = "".join(read(FACENET_V15_STDOUT).splitlines(True)[:6])
    (tmp_path / "truncated.txt").write_text(truncated)
    return {
        "missing": ("no-such-file-or-revision", "neither a file, a directory nor a git revision"),
        "text": (str(tmp_path / "notes.txt"), "no 'Edge TPU Compiler version' line"),
        "binary": (str(tmp_path / "binary.bin"), "is not a text file"),
        "json": (str(tmp_path / "other.json"), "is JSON but not a compile result"),
        "empty dir": (str(tmp_path / "empty"), "holds no compile_result.json"),
        "two logs": (str(tmp_path / "two_logs"), "holds several .log files"),
        "truncated": (str(tmp_path / "truncated.txt"), "incomplete"),
    }


@pytest.mark.parametrize("case", ["missing", "text", "binary", "json", "empty dir", "two logs",
                                  "truncated"])
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, case):
    argument, message = bad_inputs(tmp_path)[case]
    code, out, err = run_main(capsys, FACENET_V15_STDOUT, argument, "--repo", REPO)
    assert code == 2
    assert out == ""
    assert err.startswith("oplog-diff: error: B: ") and message in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_revision_outside_a_git_repository(tmp_path, capsys):
    code, _, err = run_main(capsys, "HEAD", FACENET_V15_STDOUT, "--repo", str(tmp_path))
    assert code == 2
    assert err.startswith("oplog-diff: error: A: 'HEAD' is neither a file nor a directory")
    assert "is not a git repository" in err and err.count("\n") == 1


def test_bad_command_line_exits_2():
    for argv in ([FACENET_V15_STDOUT], [FACENET_V15_STDOUT, FACENET_V15_STDOUT, "--json",
                                        "--markdown"]):
        with pytest.raises(SystemExit) as stopped:
            oplog_diff.main(argv)
        assert stopped.value.code == 2


# --- git revisions through DVC ------------------------------------------------------------------

def _run(command, cwd, env=None):
    done = subprocess.run(command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True, env=env)
    assert done.returncode == 0, "{} failed:\n{}".format(" ".join(command), done.stdout)
    return done.stdout


def _environment():
    env = dict(os.environ)
    env.update({"DVC_NO_ANALYTICS": "1", "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
                "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t",
                "PYTHONPATH": REPO + os.pathsep + env.get("PYTHONPATH", "")})
    return env


DVC_YAML = """stages:
  compile:
    cmd: mkdir -p models/edgetpu && cp source/compile_result.json models/edgetpu/
    deps:
      - source/compile_result.json
    params:
      - toolchain.yaml:
          - edgetpu_compiler
          - tflite
    outs:
      - models/edgetpu
"""


def _record_run(repo, env, stdout_path, compiler, tflite):
    """Write the compile result a stage would write, run `dvc repro`."""
    write_result(os.path.join(repo, "source"), parse_compiler_stdout(read(stdout_path)))
    with open(os.path.join(repo, "toolchain.yaml"), "w", encoding="utf-8") as handle:
        handle.write("edgetpu_compiler: {}\ntflite: {}\n".format(compiler, tflite))
    _run([sys.executable, "-m", "dvc", "repro", "-q"], repo, env)


@pytest.fixture(scope="module")
def revisions_repo(tmp_path_factory):
    """A git + DVC repository with two commits of models/edgetpu (tag `first`, then HEAD)
    and a third, uncommitted run in the work tree."""
    repo = str(tmp_path_factory.mktemp("oplog_repo"))
    env = _environment()
    _run(["git", "init", "-q"], repo, env)
    _run([sys.executable, "-m", "dvc", "init", "-q"], repo, env)
    with open(os.path.join(repo, "dvc.yaml"), "w", encoding="utf-8") as handle:
        handle.write(DVC_YAML)
    _record_run(repo, env, FACENET_V15_STDOUT, "15.0.340273435", "2.18.0")
    _run(["git", "add", "-A"], repo, env)
    _run(["git", "commit", "-q", "-m", "compiler 15"], repo, env)
    _run(["git", "tag", "first"], repo, env)
    _record_run(repo, env, FACENET_V16_PARTIAL_STDOUT, "16.0.384591198", "2.18.0")
    _run(["git", "add", "-A"], repo, env)
    _run(["git", "commit", "-q", "-m", "compiler 16"], repo, env)
    # Work tree differs from both commits: a checkout would show up here.
    _record_run(repo, env, FACENET_V16_REFUSED_STDOUT, "16.0.384591198", "2.19.0")
    return repo, env


def _work_tree_state(repo):
    files = {}
    for relative in ("models/edgetpu/compile_result.json", "dvc.lock", "toolchain.yaml",
                     "source/compile_result.json"):
        with open(os.path.join(repo, relative), "rb") as handle:
            files[relative] = handle.read()
    git = [subprocess.run(command, cwd=repo, stdout=subprocess.PIPE, universal_newlines=True
                          ).stdout for command in (["git", "rev-parse", "HEAD"],
                                                   ["git", "symbolic-ref", "-q", "HEAD"],
                                                   ["git", "status", "--porcelain"])]
    return files, git


def test_diff_between_two_git_revisions(revisions_repo):
    repo, env = revisions_repo
    before = _work_tree_state(repo)
    done = subprocess.run(
        [sys.executable, "-m", "edgetpu_analyzer.oplog_diff", "first", "HEAD",
         "--fail-on-regression"], cwd=repo, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, universal_newlines=True)
    assert _work_tree_state(repo) == before, "the work tree or HEAD changed"
    assert done.returncode == 1, done.stderr
    out = done.stdout
    first_commit = subprocess.run(["git", "rev-parse", "first"], cwd=repo, stdout=subprocess.PIPE,
                                  universal_newlines=True).stdout.strip()
    assert out.startswith(
        "A: git revision first ({}): models/edgetpu/compile_result.json through DVC, compile "
        "result JSON; toolchain from dvc.lock (stage compile)\n".format(first_commit[:12]))
    assert "\nB: git revision HEAD (" in out
    assert ("Verdict: regression - fewer operations mapped to the Edge TPU: 214 -> 211 (-3); "
            "off-chip memory grew: 15.06MiB -> 15.37MiB (+317.44KiB)") in out
    assert 'CONV_2D: 3 moved from "Mapped to Edge TPU" to "{}"'.format(MORE_THAN_ONE) in out
    toolchain = out[out.index("\nToolchain\n"):]
    assert "edgetpu_compiler  15.0.340273435  16.0.384591198" in toolchain
    assert "tflite" not in toolchain.split("Notes")[0]  # unchanged keys are not listed


def test_revision_against_the_work_tree(revisions_repo, capsys):
    repo, _ = revisions_repo
    before = _work_tree_state(repo)
    code, out, err = run_main(capsys, "HEAD", repo, "--repo", repo, "--json",
                              "--fail-on-regression")
    assert _work_tree_state(repo) == before
    assert code == 1, err
    data = json.loads(out)
    assert [item["rule"] for item in data["regressions"]] == ["refused"]
    assert data["toolchain"]["changes"] == [{"key": "tflite", "a": "2.18.0", "b": "2.19.0"}]
    assert data["a"]["toolchain"]["edgetpu_compiler"] == "16.0.384591198"


def test_unknown_revision_and_revision_without_compile_output(revisions_repo, capsys):
    repo, env = revisions_repo
    code, _, err = run_main(capsys, "first", "no-such-branch", "--repo", repo)
    assert code == 2 and "'no-such-branch' is neither a file, a directory nor a git revision" \
        in err
    # The very first commit of a repository without the compile output.
    empty = os.path.join(repo, "..", "oplog_empty_repo")
    os.makedirs(empty, exist_ok=True)
    _run(["git", "init", "-q"], empty, env)
    _run(["git", "commit", "-q", "--allow-empty", "-m", "nothing"], empty, env)
    code, _, err = run_main(capsys, "HEAD", FACENET_V15_STDOUT, "--repo", empty)
    assert code == 2
    assert "holds no compile_result.json, compiler_stdout.txt or .log file, and no dvc.yaml" \
        in err and err.count("\n") == 1


def test_notes_shared_by_both_results_are_listed_once():
    a = CompileResult(compiler_version="16.0.384591198", predicted=True,
                      notes=["memory is an estimate", "only in A"])
    b = CompileResult(compiler_version="16.0.384591198", predicted=True,
                      notes=["memory is an estimate", "only in B"])
    notes = diff_results(a, b).notes
    assert "A and B: memory is an estimate" in notes
    assert "A: only in A" in notes and "B: only in B" in notes
    assert not any(note in ("A: memory is an estimate", "B: memory is an estimate")
                   for note in notes)
