"""Plots the latency distributions of one scripts/bench run as a PNG (CDFs, log-scaled time).

Usage: plot.py RESULTS_JSON RUN_DIR OUT_PNG

Reads the per-job samples kcron-bench-collect wrote under RUN_DIR/<scenario>/samples/ (one
integer per line, milliseconds) and draws one panel per question: submit -> result for the relay
ceilings and kcron end to end; fire lag at a steady rate; the burst due at one instant.
"""

import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def samples(run_dir, scenario, name):
    path = os.path.join(run_dir, scenario, "samples", name + ".txt")
    if not os.path.exists(path):
        return []
    with open(path) as handle:
        return sorted(max(1, int(line)) for line in handle if line.strip())


def cdf(axis, values, label):
    if not values:
        return
    count = len(values)
    axis.plot(values, [(index + 1) / count for index in range(count)], label=f"{label} (n={count})")


def main():
    results_path, run_dir, out_png = sys.argv[1:4]
    with open(results_path) as handle:
        results = json.load(handle)
    machine = results.get("machine", {})
    settings = results.get("settings", {})

    figure, axes = plt.subplots(1, 3, figsize=(18, 5.5))
    panels = [
        (
            axes[0],
            "submit -> result committed (immediate jobs)",
            [
                ("relay-plain", "results_visible_lag_ms", "relay plain"),
                ("relay-txn", "results_visible_lag_ms", "relay txn"),
                ("e2e", "results_visible_lag_ms", "kcron"),
            ],
        ),
        (
            axes[1],
            f"fire lag at {settings.get('lag_rate', '?')} due jobs/s",
            [
                ("fire-lag", "exec_fired_lag_ms", "exec fired - due"),
                ("fire-lag", "exec_visible_lag_ms", "exec committed - due"),
                ("fire-lag", "results_started_lag_ms", "worker started - due"),
            ],
        ),
        (
            axes[2],
            f"burst of {settings.get('burst', '?')} jobs due at one instant",
            [
                ("burst", "exec_visible_lag_ms", "exec committed - due"),
                ("burst", "results_started_lag_ms", "worker started - due"),
            ],
        ),
    ]
    for axis, title, lines in panels:
        for scenario, name, label in lines:
            cdf(axis, samples(run_dir, scenario, name), label)
        axis.set_title(title)
        axis.set_xscale("log")
        axis.set_xlabel("milliseconds (log)")
        axis.set_ylabel("fraction of jobs")
        axis.grid(True, which="both", alpha=0.3)
        if axis.get_legend_handles_labels()[0]:
            axis.legend(loc="lower right", fontsize="small")
    figure.suptitle(
        f"kcron bench {results.get('run', '')} - {machine.get('cores', '?')} cores, "
        f"load average before {machine.get('loadavg_before', '?')}"
    )
    figure.tight_layout()
    figure.savefig(out_png, dpi=110)


if __name__ == "__main__":
    main()
