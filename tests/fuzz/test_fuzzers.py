"""Run each coverage-guided fuzzer (tests/fuzz/harness.py) for a bounded time: any exception
other than the parser's documented error fails the test, with the traceback and the input.

Marker `fuzz` (`make fuzz`); FUZZ_SECONDS sets the time per fuzzer (default 30). The executions,
libFuzzer's coverage counters and the line coverage the corpus reaches are printed. atheris
missing: skipped with a reason, but a failure in CI (CI=true).
"""
import os

import pytest

from tests.fuzz import harness

pytestmark = pytest.mark.fuzz

SECONDS = int(os.environ.get("FUZZ_SECONDS", "30"))


@pytest.fixture(scope="module")
def atheris_present():
    try:
        import atheris  # noqa: F401
    except ImportError:
        if os.environ.get("CI") == "true":
            pytest.fail("atheris is missing (it is in requirements/dev.lock): the fuzzers must "
                        "run in CI")
        pytest.skip("atheris is not installed (pip install -r requirements/dev.lock)")


@pytest.mark.parametrize("fuzzer", harness.FUZZERS)
def test_fuzzer_finds_nothing(fuzzer, atheris_present, tmp_path, capsys):
    report = harness.run_fuzzer(fuzzer, SECONDS, str(tmp_path))
    with capsys.disabled():
        print("\n" + report.summary())
    assert report.crash is None, "fuzzer {} found an input its parser does not handle:\n{}" \
        .format(fuzzer, report.crash)
    assert report.executions > 100 and report.edges > 0, report.summary()
    # the seeds alone reach most of each parser; a broken harness would reach little
    run = sum(lines for lines, _ in report.line_coverage.values())
    total = sum(lines for _, lines in report.line_coverage.values())
    assert run / total > 0.5, report.summary()
