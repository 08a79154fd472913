"""The bench's output: a table on stdout, bench/results/bench.json and
bench/results/latency.png; and bench/load.py's CPU chart, bench/results/load-cpu.png."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def fmt(value: float | None, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}f}"


def table(rows: list[dict[str, Any]]) -> str:
    """Rows: {section, label, median_ms, p95_ms, n, ratio, ratio_p95, shape_ratio}."""
    header = (
        f"{'':<4}{'measure':<58}{'median ms':>10}{'p95 ms':>9}{'n':>6}"
        f"{'x floor':>9}{'p95 x fl':>10}{'x shape':>9}"
    )
    lines = [header, "-" * len(header)]
    section = None
    for row in rows:
        if row["section"] != section:
            section = row["section"]
            if len(lines) > 2:
                lines.append("")
        lines.append(
            f"{row['section'] if row.get('first') else '':<4}{row['label']:<58}"
            f"{fmt(row['median_ms']):>10}{fmt(row['p95_ms']):>9}{row['n']:>6}"
            f"{fmt(row.get('ratio'), 2):>9}{fmt(row.get('ratio_p95'), 2):>10}"
            f"{fmt(row.get('shape_ratio'), 2):>9}"
        )
    return "\n".join(lines)


def write_json(data: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")


def plot(rows: list[dict[str, Any]], concurrency: dict[str, Any] | None, path: Path) -> None:
    """Left: median and p95 of every latency, with the floor's median as a line.
    Right: step latency by number of conversations in parallel: floor, product and the
    bare design."""
    try:
        import matplotlib
    except ImportError:
        print("matplotlib is not installed (`pip install -e '.[bench]'`): no plot drawn")
        return
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    latency_rows = [r for r in rows if r.get("plot") and r["n"]]
    panels = 2 if concurrency else 1
    fig, axes = plt.subplots(
        1,
        panels,
        figsize=(15 if panels == 2 else 10, 6.5),
        gridspec_kw={"width_ratios": [2.2, 1][:panels]},
    )
    axes = list(axes) if panels == 2 else [axes]
    ax = axes[0]
    labels = [r["short"] for r in latency_rows]
    xs = range(len(latency_rows))
    medians = [r["median_ms"] for r in latency_rows]
    p95s = [r["p95_ms"] for r in latency_rows]
    colors = ["#7f7f7f" if r.get("is_floor") else "#1f77b4" for r in latency_rows]
    ax.bar([x - 0.2 for x in xs], medians, width=0.4, color=colors, label="median")
    ax.bar([x + 0.2 for x in xs], p95s, width=0.4, color=colors, alpha=0.45, label="p95")
    floor = next((r for r in latency_rows if r.get("key") == "floor"), None)
    if floor:
        ax.axhline(floor["median_ms"], color="#d62728", linestyle="--", linewidth=1)
        ax.axhline(floor["median_ms"] * 1.3, color="#d62728", linestyle=":", linewidth=1)
        ax.text(
            len(latency_rows) - 0.5,
            floor["median_ms"] * 1.3,
            " 1.3x floor",
            color="#d62728",
            va="bottom",
            ha="right",
            fontsize=8,
        )
    ax.set_xticks(list(xs))
    ax.set_xticklabels(labels, rotation=35, ha="right", fontsize=8)
    ax.set_ylabel("ms (dark: median, light: p95; grey: floor)")
    ax.set_title("Latency per measure (floor median dashed)")
    ax.grid(axis="y", alpha=0.3)
    if concurrency:
        ax2 = axes[1]
        lines = (
            ("floor", "#7f7f7f"),
            ("product", "#1f77b4"),
            ("bare_stream", "#2ca02c"),
            ("bare", "#98df8a"),
        )
        for name, color in lines:
            if name not in concurrency:
                continue
            levels = sorted(int(k) for k in concurrency[name])
            med = [concurrency[name][str(k)]["median_ms"] for k in levels]
            p95 = [concurrency[name][str(k)]["p95_ms"] for k in levels]
            ax2.plot(levels, med, marker="o", color=color, label=f"{name} median")
            ax2.plot(levels, p95, marker="^", linestyle="--", color=color, label=f"{name} p95")
        ax2.set_xscale("log", base=2)
        ax2.set_xticks(levels)
        ax2.set_xticklabels([str(k) for k in levels])
        ax2.set_xlabel("conversations in parallel")
        ax2.set_ylabel("step latency, ms")
        ax2.set_title("Step latency by concurrency")
        ax2.grid(alpha=0.3)
        ax2.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_load_cpu(runs: list[dict[str, Any]], path: Path) -> None:
    """bench/load.py's chart: CPU ms per timed turn, one stacked bar per mode and N, a
    segment per process (the load generator hatched: it is the client, not the server)."""
    # The production stack calls the scripted model "model": one colour for both.
    alias = {"model": "scripted model"}
    per_turn = [
        {alias.get(name, name): ms for name, ms in r["cpu_ms_per_turn"].items()}
        for r in runs
        if r.get("cpu_ms_per_turn")
    ]
    runs = [r for r in runs if r.get("cpu_ms_per_turn")]
    if not runs:
        return
    try:
        import matplotlib
    except ImportError:
        print("matplotlib is not installed (`pip install -e '.[bench]'`): no plot drawn")
        return
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    skip = {"total (server side)"}
    names: list[str] = []
    for figures in per_turn:
        names += [n for n in figures if n not in skip and n not in names]
    # The load generator on top of every bar, apart from the server's processes.
    names.sort(key=lambda n: n == "load generator")
    colors = plt.get_cmap("tab20")
    fig, ax = plt.subplots(figsize=(max(7.0, 1.1 * len(runs) + 3), 6))
    xs = list(range(len(runs)))
    bottoms = [0.0] * len(runs)
    for index, name in enumerate(names):
        heights = [figures.get(name, 0.0) for figures in per_turn]
        client = name == "load generator"
        ax.bar(
            xs,
            heights,
            bottom=bottoms,
            label=name,
            color="white" if client else colors(index % 20),
            edgecolor="#555555" if client else "none",
            hatch="//" if client else None,
        )
        bottoms = [b + h for b, h in zip(bottoms, heights, strict=True)]
    for x, r in zip(xs, runs, strict=True):
        total = r["cpu_ms_per_turn"].get("total (server side)")
        if total is not None:
            ax.text(x, bottoms[x], f"{total:.1f}", ha="center", va="bottom", fontsize=8)
    ax.set_xticks(xs)
    ax.set_xticklabels([f"{r['mode']}\nN={r['users']}" for r in runs], fontsize=8)
    ax.set_ylabel("CPU ms per timed turn (number: server side)")
    ax.set_title("Load check: CPU per turn by process")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
