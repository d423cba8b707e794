"""tools/bench.py times the stages of a calibration experiment from the line each stage logs
when it finishes (core/entry.py): the two must agree, and the figures must be the stage's."""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_bench():
    spec = importlib.util.spec_from_file_location(
        "bench", os.path.join(REPO, "tools", "bench.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bench_reads_the_time_and_peak_memory_each_stage_logs(tmp_path):
    # a stage run here (params.yaml's runner) outside a pipeline folder (no dvc.yaml, so no
    # toolchain check) that holds 300 MiB for about half a second
    (tmp_path / "params.yaml").write_text("runner:\n  kind: local\n")
    code = textwrap.dedent("""
        import sys, time
        from facenet_edgetpu.core import entry

        def stage_main(argv):
            held = bytearray(300 * 2 ** 20)
            time.sleep(0.5)
            return held

        sys.exit(entry.run_stage("calibrate", stage_main, []))
    """)
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    done = subprocess.run([sys.executable, "-c", code], cwd=str(tmp_path), env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True)
    assert done.returncode == 0, done.stderr
    log = tmp_path / "bench.log"
    log.write_text("earlier output\n" + done.stderr)
    bench = load_bench()
    (stage,) = bench.finished_stages(str(log), len("earlier output\n"))
    assert stage.what.strip() == "calibrate"
    assert 0.5 <= stage.seconds < 30
    assert 300 <= stage.peak_rss_mib < 1000
    assert bench.finished_stages(str(log), log.stat().st_size) == []
