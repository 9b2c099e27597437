"""PNG plots of a `make bench` run: throughput bars and latency CDFs.

    plot.py RESULTS_JSON OUT_DIR
"""
import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

SUBJECTS = ["ceiling", "bridge-runtime", "redpanda-connect"]


def median(values):
    v = sorted(values)
    n = len(v)
    return (v[n // 2] + v[(n - 1) // 2]) / 2 if n else float("nan")


def throughput(results, out):
    cases = results["throughput"]
    if not cases:
        return
    keys = []
    for c in cases:
        k = (c["direction"], c["qos"], c["size"])
        if k not in keys:
            keys.append(k)
    fig, ax = plt.subplots(figsize=(11, 5))
    width = 0.27
    for i, subject in enumerate(SUBJECTS):
        meds, lo, hi = [], [], []
        for k in keys:
            rates = [s["messages_per_s"] for c in cases
                     if (c["direction"], c["qos"], c["size"]) == k and c["subject"] == subject
                     for s in c["samples"]]
            m = median(rates) if rates else 0
            meds.append(m)
            lo.append(m - min(rates) if rates else 0)
            hi.append(max(rates) - m if rates else 0)
        xs = [j + (i - 1) * width for j in range(len(keys))]
        ax.bar(xs, meds, width, yerr=[lo, hi], capsize=3, label=subject)
    ax.set_xticks(range(len(keys)))
    ax.set_xticklabels([f"{d}\nQoS {q}, {s} B" for d, q, s in keys], fontsize=8)
    ax.set_ylabel("messages per second (median, min-max)")
    ax.set_title("Throughput: draining N queued messages")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "throughput.png", dpi=110)
    plt.close(fig)


def latency(results, out):
    cases = results["latency"]
    for load in sorted({c["load"] for c in cases}):
        fig, ax = plt.subplots(figsize=(9, 5))
        for c in (c for c in cases if c["load"] == load):
            # The runs that time legs (an observer alongside, or both bare legs at once)
            # are in the "Where the time goes" table of results.md, not here.
            if not c["samples"] or not c["samples"][0]["cdf"] or "legs" in c["samples"][0]:
                continue
            xs, ys = zip(*c["samples"][0]["cdf"])
            ax.plot(xs, ys, label=f'{c["path"]} ({c["rate"]:.0f} msg/s)')
        ax.set_xscale("log")
        ax.set_xlabel("end-to-end latency, ms (log)")
        ax.set_ylabel("fraction of messages at or below")
        ax.set_title(f"Latency CDF at {load} of bridge-runtime's maximum rate (QoS 1, 100 B, first sample)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(out / f"latency-{load.replace(' %', '')}.png", dpi=110)
        plt.close(fig)


def main():
    results = json.loads(Path(sys.argv[1]).read_text())
    out = Path(sys.argv[2])
    throughput(results, out)
    latency(results, out)


if __name__ == "__main__":
    main()
