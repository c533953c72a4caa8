"""Turn a Hydra multirun folder of evaluations into a study table (markdown, CSV) and a plot per metric.

    python -m x2ct.studies.aggregate outputs/eval/multiruns/<sweep> --by data.lateral_angle --out results/
    python -m x2ct.studies.aggregate outputs/train/multiruns/<sweep> --by model.loss.projection model.loss.adversarial

Each job folder holds ``.hydra/overrides.yaml`` and either ``metrics.json`` + ``summary.json`` (an ``x2ct-eval``
job) or ``eval/metrics.json`` + ``eval/summary.json`` (an ``x2ct-train`` job with ``evaluation.enabled=true``).
The table has one row per metric and one column per value of the swept keys: ``mean [CI low, CI high]``.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from x2ct.metrics import LEGACY_METRIC_NAMES
from x2ct.utils.atomic import atomic_output, atomic_write_text

RESULT_LOCATIONS = (".", "eval")  # where a job's metrics.json / summary.json may be
PLOT_COLUMNS = 4
PANEL_INCHES = (3.2, 2.6)
PLOT_DPI = 100


@dataclass
class JobResult:
    """One job of the sweep: its swept values and the summary (mean, ci_low, ci_high, n) of every metric."""

    folder: Path
    values: dict[str, str]
    summary: dict[str, dict[str, float]]


def read_overrides(job_dir: Path) -> dict[str, str]:
    """``key=value`` overrides of a Hydra job (from .hydra/overrides.yaml), keys without a leading ``+``/``++``."""
    items = yaml.safe_load((job_dir / ".hydra" / "overrides.yaml").read_text()) or []
    overrides = {}
    for item in items:
        key, _, value = str(item).partition("=")
        overrides[key.lstrip("+")] = value
    return overrides


def find_jobs(sweep_dirs: Sequence[Path]) -> list[JobResult]:
    """Every job folder below ``sweep_dirs`` that has evaluation results; FileNotFoundError if there is none."""
    jobs = []
    for sweep_dir in sweep_dirs:
        if not sweep_dir.is_dir():
            raise FileNotFoundError(f"multirun folder {sweep_dir} does not exist")
        for overrides_file in sorted(sweep_dir.rglob(".hydra/overrides.yaml")):
            job_dir = overrides_file.parent.parent
            for location in RESULT_LOCATIONS:
                summary_file = job_dir / location / "summary.json"
                if summary_file.is_file():
                    summary = json.loads(summary_file.read_text())["metrics"]
                    jobs.append(JobResult(folder=job_dir, values=read_overrides(job_dir), summary=summary))
                    break
    if not jobs:
        raise FileNotFoundError(f"no job with summary.json (or eval/summary.json) under {list(map(str, sweep_dirs))}")
    return jobs


def varying_keys(jobs: Sequence[JobResult]) -> list[str]:
    """Override keys whose value differs between jobs."""
    keys = sorted({key for job in jobs for key in job.values})
    return [key for key in keys if len({job.values.get(key) for job in jobs}) > 1]


def _sort_key(value: str) -> tuple[int, float | str]:
    try:
        return (0, float(value))
    except ValueError:
        return (1, value)


def column_label(job: JobResult, keys: Sequence[str]) -> str:
    return ", ".join(f"{key.split('.')[-1]}={job.values.get(key, '-')}" for key in keys)


def ordered_metrics(jobs: Sequence[JobResult], wanted: Sequence[str] | None) -> list[str]:
    available = list(jobs[0].summary)
    if wanted:
        missing = [name for name in wanted if name not in available]
        if missing:
            raise KeyError(f"metrics {missing} are not in the results; available: {available}")
        return list(wanted)
    legacy = [name for name in LEGACY_METRIC_NAMES if name in available]
    return legacy + [name for name in available if name not in legacy]


def aggregate(
    sweep_dirs: Sequence[Path],
    by: Sequence[str] | None,
    out_dir: Path,
    title: str,
    metrics: Sequence[str] | None = None,
) -> Path:
    """Write ``table.md``, ``results.csv`` and ``plot.png`` for the sweep into ``out_dir``; returns the table path."""
    jobs = find_jobs(sweep_dirs)
    keys = list(by) if by else varying_keys(jobs)
    if not keys:
        raise ValueError("the jobs do not differ in any override: nothing to compare (pass --by)")
    jobs = sorted(jobs, key=lambda job: [_sort_key(job.values.get(key, "")) for key in keys])
    names = ordered_metrics(jobs, metrics)
    labels = [column_label(job, keys) for job in jobs]

    lines = [
        f"## {title}",
        "",
        f"{len(jobs)} jobs; cells: mean [95% CI] over the evaluated cases.",
        "",
        "| metric | " + " | ".join(labels) + " |",
        "|---|" + "---|" * len(jobs),
    ]
    for name in names:
        cells = [_cell(job.summary.get(name)) for job in jobs]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    n_cases = sorted({int(job.summary[names[0]]["n"]) for job in jobs})
    lines += ["", f"Cases per job: {', '.join(map(str, n_cases))}."]
    out_dir.mkdir(parents=True, exist_ok=True)
    table_path = out_dir / "table.md"
    atomic_write_text(table_path, "\n".join(lines) + "\n")

    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([*keys, "metric", "mean", "ci_low", "ci_high", "n", "job"])
    for job in jobs:
        for name in names:
            stats = job.summary.get(name, {})
            writer.writerow(
                [
                    *(job.values.get(k, "") for k in keys),
                    name,
                    stats.get("mean"),
                    stats.get("ci_low"),
                    stats.get("ci_high"),
                    stats.get("n"),
                    str(job.folder),
                ]
            )
    atomic_write_text(out_dir / "results.csv", buffer.getvalue())
    plot_metrics(jobs, keys, names, out_dir / "plot.png", title)
    return table_path


def _cell(stats: dict[str, float] | None) -> str:
    if not stats:
        return "-"
    return f"{stats['mean']:.4g} [{stats['ci_low']:.4g}, {stats['ci_high']:.4g}]"


def plot_metrics(jobs: Sequence[JobResult], keys: Sequence[str], names: Sequence[str], path: Path, title: str) -> None:
    """One panel per metric: mean with CI bars against the swept value (numeric axis when a single numeric key)."""
    numeric = len(keys) == 1 and all(_sort_key(job.values.get(keys[0], ""))[0] == 0 for job in jobs)
    xs = [float(job.values[keys[0]]) for job in jobs] if numeric else list(range(len(jobs)))
    rows = -(-len(names) // PLOT_COLUMNS)
    fig = Figure(figsize=(PANEL_INCHES[0] * PLOT_COLUMNS, PANEL_INCHES[1] * rows))  # no pyplot, no backend switch
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, PLOT_COLUMNS, squeeze=False)
    for ax, name in zip(axes.flat, names, strict=False):
        means = [job.summary[name]["mean"] for job in jobs]
        low = [m - job.summary[name]["ci_low"] for m, job in zip(means, jobs, strict=True)]
        high = [job.summary[name]["ci_high"] - m for m, job in zip(means, jobs, strict=True)]
        ax.errorbar(xs, means, yerr=[low, high], marker="o", capsize=3)
        ax.set_title(name, fontsize=9)
        ax.tick_params(labelsize=7)
        if numeric:
            ax.set_xlabel(keys[0], fontsize=7)
        else:
            ax.set_xticks(xs, [column_label(job, keys) for job in jobs], rotation=45, ha="right", fontsize=6)
    for ax in list(axes.flat)[len(names) :]:
        ax.axis("off")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=PLOT_DPI, format="png")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sweep_dirs", type=Path, nargs="+", help="Hydra multirun folder(s)")
    parser.add_argument("--by", nargs="*", default=None, help="override keys to compare (default: those that vary)")
    parser.add_argument("--out", type=Path, required=True, help="folder for table.md, results.csv, plot.png")
    parser.add_argument("--title", default="x2ct study")
    parser.add_argument("--metrics", nargs="*", default=None, help="metrics to show (default: all)")
    args = parser.parse_args(argv)
    table = aggregate(args.sweep_dirs, args.by, args.out, args.title, args.metrics)
    print(table.read_text())
    print(f"written: {table}, {args.out / 'results.csv'}, {args.out / 'plot.png'}")


if __name__ == "__main__":
    main()
