"""Run the coverage-guided fuzzers (atheris, i.e. libFuzzer) for a bounded time and report.

Each fuzzer is a module of this package (`FUZZERS`) with

- `INSTRUMENTED`: the packages whose branches guide the fuzzer (atheris instruments them as
  they are imported, so the module imports them only inside functions),
- `SOURCES`: the files whose line coverage the report gives,
- `one_input(data)`: feeds one input to the parser; the documented error type is swallowed,
  anything else propagates and is a finding,
- `seeds()`: the seed corpus (name -> bytes), from real inputs.

`run_fuzzer` writes the seeds and the committed findings (`findings/<fuzzer>/`, inputs that
once crashed) into a corpus directory, runs `python -m tests.fuzz.<module> <corpus> ...` in a
subprocess for a bounded time, and returns the executions, libFuzzer's coverage counters, the
line coverage reached by replaying the final corpus in this process, and the crash if there was
one (libFuzzer stops at the first and writes the input to `crash-<sha1>` in the work
directory).

`make fuzz` runs them through pytest (tests/fuzz/test_fuzzers.py, marker `fuzz`). For longer
local runs: `python -m tests.fuzz.harness --seconds 600 [--workdir DIR] [fuzzer ...]`.
"""
from __future__ import annotations

import argparse
import dis
import glob
import hashlib
import importlib
import os
import re
import subprocess
import sys
import tempfile
import types
from typing import Callable, Dict, Iterable, List, NamedTuple, Optional, Sequence, Set, Tuple

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HERE = os.path.dirname(os.path.abspath(__file__))
FINDINGS = os.path.join(HERE, "findings")
FUZZERS = ("marshal_reader", "compiler_output", "tflite_model")

# libFuzzer options: a hang of 10 s in one input is a finding, as is a memory blow-up.
LIBFUZZER_OPTIONS = ("-timeout=10", "-rss_limit_mb=4096", "-print_final_stats=1")


class FuzzReport(NamedTuple):
    fuzzer: str
    seconds: int
    executions: int
    edges: int                   # libFuzzer "cov:": instrumented branches reached
    features: int                # libFuzzer "ft:"
    corpus_size: int
    line_coverage: Dict[str, Tuple[int, int]]  # file -> (lines run, executable lines)
    crash: Optional[str]         # libFuzzer's report of the first crash, None without one

    def summary(self) -> str:
        lines = ["{}: {} executions ({} s budget), coverage {} edges / {} features, corpus {} "
                 "inputs{}".format(self.fuzzer, self.executions, self.seconds, self.edges,
                                   self.features, self.corpus_size,
                                   "; CRASHED" if self.crash else "")]
        for path, (run, total) in sorted(self.line_coverage.items()):
            lines.append("  {:<52} {:4d}/{:4d} lines ({:.0%})".format(
                os.path.relpath(path, REPO), run, total, run / total if total else 0.0))
        return "\n".join(lines)


def fuzzer_module(name: str) -> types.ModuleType:
    return importlib.import_module("tests.fuzz.fuzz_" + name)


def finding_inputs(name: str) -> Dict[str, bytes]:
    """The committed inputs that once crashed this fuzzer's parser (regression inputs)."""
    found = {}
    for path in sorted(glob.glob(os.path.join(FINDINGS, name, "*"))):
        with open(path, "rb") as handle:
            found[os.path.basename(path)] = handle.read()
    return found


def write_corpus(directory: str, inputs: Iterable[bytes]) -> None:
    """One file per distinct input, named by its sha1 as libFuzzer names them."""
    os.makedirs(directory, exist_ok=True)
    for data in inputs:
        with open(os.path.join(directory, hashlib.sha1(data).hexdigest()), "wb") as handle:
            handle.write(data)


def _counter(pattern: str, text: str) -> int:
    found = re.findall(pattern, text)
    return int(found[-1]) if found else 0


def _crash_report(output: str, workdir: str) -> str:
    """From the first Python traceback (or libFuzzer error) to the end, and the saved input."""
    start = min([i for i in (output.find("=== Uncaught Python exception"),
                             output.find("==ERROR: libFuzzer"), output.find("ALARM: working"))
                 if i >= 0] or [max(0, len(output) - 4000)])
    artifacts = sorted(glob.glob(os.path.join(workdir, "crash-*")) +
                       glob.glob(os.path.join(workdir, "timeout-*")) +
                       glob.glob(os.path.join(workdir, "oom-*")))
    return output[start:start + 6000] + "\ninputs saved: {}".format(", ".join(artifacts) or "none")


def run_fuzzer(name: str, seconds: int, workdir: str,
               extra_seeds: Sequence[bytes] = ()) -> FuzzReport:
    """Fuzz one parser for `seconds` in a subprocess; see the module docstring."""
    module = fuzzer_module(name)
    corpus = os.path.join(workdir, "corpus")
    seeds = list(module.seeds().values()) + list(finding_inputs(name).values()) + list(extra_seeds)
    write_corpus(corpus, seeds)
    command = [sys.executable, "-m", module.__name__, corpus, "-max_total_time={}".format(seconds),
               "-artifact_prefix={}{}".format(workdir, os.sep)] + list(LIBFUZZER_OPTIONS) + \
        list(getattr(module, "LIBFUZZER_OPTIONS", ()))
    # Seeds are run first; the timeout is only a safety net for a fuzzer that never starts.
    done = subprocess.run(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True, errors="replace", timeout=seconds * 2 + 300)
    output = done.stdout
    executions = _counter(r"stat::number_of_executed_units:\s*(\d+)", output) or \
        _counter(r"Done (\d+) runs", output)
    crash = _crash_report(output, workdir) if done.returncode != 0 else None
    corpus_files = sorted(glob.glob(os.path.join(corpus, "*")))
    return FuzzReport(
        fuzzer=name, seconds=seconds, executions=executions,
        edges=_counter(r"cov: (\d+)", output), features=_counter(r"ft: (\d+)", output),
        corpus_size=len(corpus_files),
        line_coverage=line_coverage(module.one_input, _read_all(corpus_files), module.SOURCES),
        crash=crash)


def _read_all(paths: Sequence[str]) -> List[bytes]:
    inputs = []
    for path in paths:
        with open(path, "rb") as handle:
            inputs.append(handle.read())
    return inputs


# -- line coverage by replay (stdlib only: sys.settrace) -------------------------------------

def executable_lines(path: str) -> Set[int]:
    """Line numbers that start bytecode in any function of the file (its module code too)."""
    with open(path, "r", encoding="utf-8") as handle:
        code = compile(handle.read(), path, "exec")
    lines = set()  # type: Set[int]
    pending = [code]
    while pending:
        current = pending.pop()
        lines.update(line for _, line in dis.findlinestarts(current) if line is not None)
        pending.extend(const for const in current.co_consts if isinstance(const, types.CodeType))
    return lines


def line_coverage(one_input: Callable[[bytes], None], inputs: Sequence[bytes],
                  sources: Sequence[str]) -> Dict[str, Tuple[int, int]]:
    """Replay `inputs` through `one_input` and count the lines of `sources` that ran.

    Module-level lines count as run (they ran at import). The replay also re-checks every
    input: an exception escaping `one_input` propagates.
    """
    wanted = {os.path.abspath(path) for path in sources}
    hit = {path: set() for path in wanted}  # type: Dict[str, Set[int]]

    def tracer(frame, event, arg):
        path = frame.f_code.co_filename
        if path not in wanted:
            return None
        hit[path].add(frame.f_lineno)
        return local

    def local(frame, event, arg):
        if event == "line":
            hit[frame.f_code.co_filename].add(frame.f_lineno)
        return local

    previous = sys.gettrace()
    sys.settrace(tracer)
    try:
        for data in inputs:
            one_input(data)
    finally:
        sys.settrace(previous)
    report = {}
    for path in sorted(wanted):
        lines = executable_lines(path)
        with open(path, "r", encoding="utf-8") as handle:
            module_level = _module_level_lines(compile(handle.read(), path, "exec"))
        report[path] = (len((hit[path] | module_level) & lines), len(lines))
    return report


def _module_level_lines(code: types.CodeType) -> Set[int]:
    return {line for _, line in dis.findlinestarts(code) if line is not None}


# -- entry points ------------------------------------------------------------------------------

def fuzz_main(instrumented: Sequence[str], one_input: Callable[[bytes], None],
              mutator: Optional[Callable[[bytes, int, int], bytes]] = None) -> None:
    """The body of `python -m tests.fuzz.fuzz_<name> <libFuzzer arguments>`; `mutator`
    (data, max_size, seed) -> data replaces libFuzzer's byte-level mutations."""
    import atheris

    with atheris.instrument_imports(include=list(instrumented)):
        for package in instrumented:
            importlib.import_module(package)
    atheris.Setup(sys.argv, one_input, **({"custom_mutator": mutator} if mutator else {}))
    atheris.Fuzz()


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=30, help="time per fuzzer")
    parser.add_argument("--workdir", default=None,
                        help="corpora and crash inputs go here (default: a new temporary "
                             "directory)")
    parser.add_argument("fuzzers", nargs="*", default=list(FUZZERS), choices=FUZZERS)
    args = parser.parse_args(argv)
    workdir = args.workdir or tempfile.mkdtemp(prefix="fuzz-")
    print("corpora and crash inputs: {}".format(workdir))
    failed = False
    for name in args.fuzzers:
        report = run_fuzzer(name, args.seconds, os.path.join(workdir, name))
        print(report.summary())
        if report.crash:
            print(report.crash)
            failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
