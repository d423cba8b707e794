"""Plot fidelity against calibration set size from DVC experiments.

Run a sweep first, then plot it:

    for n in 1 5 10 20 40; do dvc exp run -n calib-$n -S representative_dataset.max_samples=$n; done
    python tools/plot_calibration_sweep.py docs/calibration_sweep.png

It reads `dvc exp show --json` (the workspace, the baseline commit and every experiment),
takes the number of calibration faces each run used (reports/metrics.json) and the int8
model's fidelity to the float model (reports/fidelity.json), prints a Markdown table and
writes the plot.
"""
import argparse
import json
import subprocess
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def experiment_rows(exp_show):
    """(calibration faces, int8 cosine mean, cosine min, EER, identity accuracy), one per run."""
    runs = []
    for baseline in exp_show:
        runs.append(baseline)
        for branch in baseline.get("experiments") or []:
            runs.extend(branch.get("revs", []))
    rows = {}
    for run in runs:
        metrics = (run.get("data") or {}).get("metrics") or {}
        try:
            samples = metrics["reports/metrics.json"]["data"]["calibration_samples"]
            fidelity = metrics["reports/fidelity.json"]["data"]
        except KeyError:
            continue
        closeness = fidelity["vs_float"]["int8"]
        int8 = fidelity["variants"]["int8"]
        rows[samples] = (samples, closeness["cosine_mean"], closeness["cosine_min"], int8["eer"],
                         int8["identity_accuracy"])
    return [rows[key] for key in sorted(rows)]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", help="PNG file to write")
    args = parser.parse_args(argv)
    shown = subprocess.run(["dvc", "exp", "show", "--json"], stdout=subprocess.PIPE, check=True)
    rows = experiment_rows(json.loads(shown.stdout))
    if not rows:
        sys.exit("no experiment has both reports/metrics.json and reports/fidelity.json")
    print("| calibration faces | cosine mean | cosine min | int8 EER | int8 identity accuracy |")
    print("| --- | --- | --- | --- | --- |")
    for row in rows:
        print("| {} | {:.4f} | {:.4f} | {:.3f} | {:.2f} |".format(*row))
    samples = [row[0] for row in rows]
    figure, axis = plt.subplots(figsize=(6, 3.6), dpi=100)
    axis.plot(samples, [row[1] for row in rows], "o-", label="mean over val faces")
    axis.plot(samples, [row[2] for row in rows], "s--", label="worst val face")
    axis.set_xscale("log")
    axis.set_xticks(samples)
    axis.set_xticklabels([str(n) for n in samples])
    axis.set_xlabel("calibration faces (train split)")
    axis.set_ylabel("cosine(float, int8 embedding)")
    axis.set_title("int8 fidelity against calibration set size")
    axis.grid(True, alpha=0.3)
    axis.legend()
    figure.tight_layout()
    figure.savefig(args.output, metadata={"Software": None})
    print("wrote", args.output)


if __name__ == "__main__":
    main()
