"""Benchmark the pipeline: each stage's wall time and peak memory, and the seed's naive path.

`make bench` runs this. In a fresh copy of the repository (nothing cached), it

1. writes toolchain.yaml and runs `fetch_inputs` (the download is cached; not timed);
2. runs `dvc repro --single-item <stage>` for every other stage in dvc.yaml order, each as its
   own child process, and reads its wall time and peak resident memory from `os.wait4` (the
   largest process of the stage's process tree, which is the stage's Python);
3. times a no-op `dvc repro`, then a calibration experiment
   (`dvc exp run -S representative_dataset.max_samples=10`): its wall time, and the stages it
   reran with their own time and peak memory (the line core/entry.py logs when a stage
   finishes); then prints the models' CPU latency (tools/latency.py);
4. runs the seed article's path on the same inputs as one script (tools/seed_naive.py: load
   the h5, convert with a representative-dataset generator, nothing cached) and prints the
   ratio of its time to the pipeline's.

Figures depend on the machine and its load: the table says both. Speed is measured here, never
asserted in tests.

    python tools/bench.py [--repo DIR] [--skip-naive] [--json OUT]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, NamedTuple, Optional

import yaml

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GENERATED = ("dvc.lock", "reports", "models/quantization.json", "models/calibration_ranges.json")
# the line core/entry.py logs when a stage finishes
FINISHED = re.compile(r"^\S+ (\w+): finished in ([0-9.]+) s, peak RSS ([0-9]+) MiB$", re.M)


class Measurement(NamedTuple):
    what: str
    seconds: float
    peak_rss_mib: float
    status: int


def measure(what: str, command: List[str], cwd: str, env: Dict[str, str],
            log: Optional[str] = None) -> Measurement:
    """Run `command`; its wall time and the peak RSS of its process tree (os.wait4)."""
    out = open(log, "ab") if log else subprocess.DEVNULL
    try:
        start = time.monotonic()
        process = subprocess.Popen(command, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.monotonic() - start
    finally:
        if log:
            out.close()
    process.returncode = os.waitstatus_to_exitcode(status)
    return Measurement(what, seconds, usage.ru_maxrss / 1024.0, process.returncode)


def finished_stages(log: str, start: int) -> List[Measurement]:
    """The stages that finished after byte `start` of the log, as they reported themselves."""
    with open(log, "rb") as handle:
        handle.seek(start)
        text = handle.read().decode("utf-8", "replace")
    return [Measurement("  " + stage, float(seconds), float(mib), 0)
            for stage, seconds, mib in FINISHED.findall(text)]


def copy_repository(source: str, destination: str) -> None:
    """The project's files (tracked and untracked, not ignored) in a fresh git repository,
    without the outputs of earlier runs."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=source, stdout=subprocess.PIPE, check=True).stdout
    for relative in sorted(set(filter(None, listed.decode().split("\0")))):
        path = os.path.join(source, relative)
        if os.path.isfile(path):
            os.makedirs(os.path.dirname(os.path.join(destination, relative)), exist_ok=True)
            shutil.copy2(path, os.path.join(destination, relative))
    for generated in GENERATED:
        path = os.path.join(destination, generated)
        if os.path.isdir(path):
            shutil.rmtree(path)
        elif os.path.exists(path):
            os.remove(path)
    subprocess.run(["git", "init", "-q"], cwd=destination, check=True)
    subprocess.run(["git", "add", "-A"], cwd=destination, check=True)
    subprocess.run(["git", "-c", "user.name=bench", "-c", "user.email=bench@localhost", "commit",
                    "-q", "-m", "bench"], cwd=destination, check=True)


def stage_names(repo: str) -> List[str]:
    with open(os.path.join(repo, "dvc.yaml"), "r", encoding="utf-8") as handle:
        return list(yaml.safe_load(handle)["stages"])


def machine_line() -> str:
    load = os.getloadavg()
    return "{} {}, {} cores, load average {:.2f} / {:.2f} / {:.2f} (1/5/15 min) at start".format(
        platform.system(), platform.machine(), os.cpu_count(), *load)


def table(rows: List[Measurement]) -> str:
    lines = ["| step | wall time (s) | peak RSS (MiB) |", "| --- | ---: | ---: |"]
    for row in rows:
        failed = "" if row.status == 0 else " (FAILED, exit {})".format(row.status)
        lines.append("| {}{} | {:.1f} | {:.0f} |".format(row.what, failed, row.seconds,
                                                         row.peak_rss_mib))
    return "\n".join(lines)


def run(repo: str, skip_naive: bool, log: str, toolchain_command: List[str]
        ) -> Dict[str, object]:
    # dvc.yaml's commands start `python`: this interpreter's, however bench.py was started
    env = dict(os.environ, DVC_NO_ANALYTICS="1", TF_CPP_MIN_LOG_LEVEL="2",
               PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    python = sys.executable
    work = tempfile.mkdtemp(prefix="facenet-bench-")
    try:
        copy_repository(repo, work)
        machine = machine_line()
        setup = [measure("toolchain", [python] + toolchain_command, work, env, log),
                 measure("fetch_inputs", [python, "-m", "dvc", "repro", "--single-item",
                                          "fetch_inputs"], work, env, log)]
        if any(step.status for step in setup):
            raise SystemExit("bench: set-up failed, see {}".format(log))
        stages = [measure(stage, [python, "-m", "dvc", "repro", "--single-item", stage], work,
                          env, log) for stage in stage_names(work) if stage != "fetch_inputs"]
        total = Measurement("all stages after fetch_inputs", sum(s.seconds for s in stages),
                            max(s.peak_rss_mib for s in stages),
                            max(s.status for s in stages))
        noop = measure("no-op dvc repro", [python, "-m", "dvc", "repro"], work, env, log)
        before = os.path.getsize(log)
        experiment = measure(
            "dvc exp run -S representative_dataset.max_samples=10",
            [python, "-m", "dvc", "exp", "run", "-S", "representative_dataset.max_samples=10"],
            work, env, log)
        reran = finished_stages(log, before)  # none from a tree older than the log line
        rows = stages + [total, noop, experiment]
        if reran:
            rows += reran + [Measurement("  stages of the experiment, their own time",
                                         sum(s.seconds for s in reran),
                                         max(s.peak_rss_mib for s in reran), experiment.status)]
        naive = None
        if not skip_naive:
            naive = measure("seed's naive path (tools/seed_naive.py)",
                            [python, os.path.join(REPO, "tools", "seed_naive.py"), work,
                             os.path.join(work, "naive.tflite")], work, env, log)
            rows.append(naive)
        print("Machine: " + machine)
        print(table(rows))
        models = [os.path.join(work, "models", name) for name in
                  ("facenet_float.tflite", "facenet_keras.tflite")]
        existing = [path for path in models if os.path.exists(path)]
        if existing:
            print("\nCPU latency on this machine:")
            sys.stdout.flush()
            subprocess.run([python, os.path.join(REPO, "tools", "latency.py")] + existing,
                           env=env, check=False)
        if naive is not None and naive.status == 0 and total.seconds > 0:
            print("\nThe seed's naive path took {:.1f}x the pipeline's stages after fetch_inputs "
                  "({:.1f} s vs {:.1f} s).".format(naive.seconds / total.seconds, naive.seconds,
                                                   total.seconds))
        return {"machine": machine, "rows": [row._asdict() for row in rows]}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repo", default=REPO, help="the repository to benchmark")
    parser.add_argument("--skip-naive", action="store_true", help="skip the seed's naive path")
    parser.add_argument("--json", help="also write the figures to this JSON file")
    parser.add_argument("--toolchain-command", default="-m facenet_edgetpu toolchain",
                        help="python arguments that write toolchain.yaml (another for an older "
                             "tree: -m stages.toolchain)")
    parser.add_argument("--log", default=os.path.join(tempfile.gettempdir(), "facenet-bench.log"),
                        help="where the commands' output goes (default: %(default)s)")
    args = parser.parse_args(argv)
    if os.path.exists(args.log):
        os.remove(args.log)
    figures = run(os.path.abspath(args.repo), args.skip_naive, args.log,
                  args.toolchain_command.split())
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(figures, handle, indent=2, sort_keys=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
