"""Reports of a suite's results: figures (matplotlib) and ranking tables, as Markdown and HTML.

:func:`write_report` reads a results directory written by :func:`mbrl.bench.suite.run_suite`
and writes next to it:

- ``learning_curves.png``: return per MPC episode, mean and +- one std over seeds, one panel
  per env, one line per model + planner (the dashed line is the random seed episodes' mean);
- ``return_vs_plan_time.png``: last-3 mean return against mean planning milliseconds per
  step (log axis): small dots are cells (seeds), large markers with bars are means +- std;
- ``return_vs_env_steps.png``: return against real environment steps so far (sample
  efficiency), mean and +- one std over seeds, seed episodes included;
- ``report.md`` (figures linked) and ``report.html`` (figures embedded, self-contained), with
  a ranking table per env and a list of failed cells.
"""

from __future__ import annotations

import base64
import html
import json
import math
import statistics
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mbrl.bench.cells import CellSpec, read_done, read_episodes

FIGURES = {
    "learning_curves": "learning_curves.png",
    "return_vs_plan_time": "return_vs_plan_time.png",
    "return_vs_env_steps": "return_vs_env_steps.png",
}
"""The figure kinds and their file names."""


class MissingPlotDependency(ImportError):
    """matplotlib is not installed (``pip install 'mbrl[plot]'``)."""


def _pyplot() -> Any:
    try:
        import matplotlib
    except ModuleNotFoundError as err:
        raise MissingPlotDependency(
            "mbrl report draws its figures with matplotlib: pip install 'mbrl[plot]' "
            "(or pip install matplotlib)"
        ) from err
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


# --------------------------------------------------------------------------------- data
@dataclass
class VariantStats:
    """One (env, model, planner, tag) group of cells, aggregated over seeds.

    Attributes:
        env / model / planner / tag: the group; label: ``model+planner[ tag]``.
        rows: ok cells' summary rows; failed: failed cells' rows.
        curves: per ok cell, its episode objects (seed episodes first).
    """

    env: str
    model: str
    planner: str
    tag: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    failed: list[dict[str, Any]] = field(default_factory=list)
    curves: list[list[dict[str, Any]]] = field(default_factory=list)

    @property
    def label(self) -> str:
        """``model+planner`` plus the tag if any."""
        return f"{self.model}+{self.planner}" + (f" [{self.tag}]" if self.tag else "")

    def metric(self, key: str) -> tuple[float, float]:
        """Mean and sample std over ok cells of summary column ``key`` (nan when no cell)."""
        values = [float(r[key]) for r in self.rows if _finite(r.get(key))]
        if not values:
            return math.nan, math.nan
        return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def _finite(x: Any) -> bool:
    try:
        return math.isfinite(float(x))
    except (TypeError, ValueError):
        return False


@dataclass
class Results:
    """A results directory, loaded.

    Attributes:
        out_dir: the directory; name: suite name; cells: the suite's cells in order;
        variants: groups by env, in first-seen order; missing: cells without a result yet.
    """

    out_dir: Path
    name: str
    cells: list[CellSpec]
    variants: dict[str, list[VariantStats]]
    missing: list[str]


def load_results(out_dir: str | Path) -> Results:
    """Read ``suite.json`` and the per-cell files of a results directory.

    Raises:
        ValueError: ``out_dir`` holds no suite results.
    """
    out = Path(out_dir)
    suite_file = out / "suite.json"
    if suite_file.exists():
        data = json.loads(suite_file.read_text())
        name = data.get("name", out.name)
        cells = [CellSpec.from_json(c) for c in data["cells"]]
    elif (out / "cells").is_dir():
        name = out.name
        cells = []
        for path in sorted((out / "cells").glob("*.json")):
            done = json.loads(path.read_text())
            cells.append(CellSpec.from_json(done["spec"]))
    else:
        raise ValueError(
            f"{out} holds no benchmark results (expected suite.json and cells/ written by "
            "'mbrl bench --suite NAME --out DIR')"
        )
    groups: dict[tuple[str, str, str, str], VariantStats] = {}
    missing = []
    for spec in cells:
        key = (spec.env_id, spec.model, spec.planner, spec.tag)
        group = groups.setdefault(key, VariantStats(*key))
        done = read_done(out, spec.cell_id)
        if done is None:
            missing.append(spec.cell_id)
            continue
        row = done["row"]
        if row["status"] == "ok":
            group.rows.append(row)
            group.curves.append(read_episodes(out, spec.cell_id))
        else:
            group.failed.append({**row, "traceback": done.get("error") or ""})
    by_env: dict[str, list[VariantStats]] = defaultdict(list)
    for (env, *_), group in groups.items():
        by_env[env].append(group)
    if not any(g.rows or g.failed for gs in by_env.values() for g in gs):
        raise ValueError(f"{out}: no cell has finished yet; nothing to report")
    return Results(out, name, cells, dict(by_env), missing)


def ranking(variants: Sequence[VariantStats]) -> list[VariantStats]:
    """Variants with at least one ok cell, best last-3 mean return first."""
    ok = [v for v in variants if v.rows]

    def key(v: VariantStats) -> tuple[bool, float]:
        mean = v.metric("last3_mean_return")[0]
        return (math.isnan(mean), -mean if not math.isnan(mean) else 0.0)

    return sorted(ok, key=key)


# ------------------------------------------------------------------------------ figures
def _mean_std(columns: list[list[float]]) -> tuple[list[float], list[float]]:
    means, stds = [], []
    for col in columns:
        means.append(statistics.fmean(col))
        stds.append(statistics.stdev(col) if len(col) > 1 else 0.0)
    return means, stds


def _aligned(curves: list[list[dict[str, Any]]], kind: str | None, key: str) -> list[list[float]]:
    """Per episode index, the values of ``key`` across seeds (only indices every seed has)."""
    series = [[float(e[key]) for e in c if kind is None or e["kind"] == kind] for c in curves]
    n = min((len(s) for s in series), default=0)
    return [[s[i] for s in series] for i in range(n)]


def _panels(plt: Any, n: int, title: str) -> tuple[Any, list[Any]]:
    cols = min(3, n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 3.9 * rows), squeeze=False)
    flat = list(axes.flat)
    for ax in flat[n:]:
        ax.set_visible(False)
    fig.suptitle(title)
    return fig, flat[:n]


def _colors(results: Results) -> dict[str, Any]:
    labels: list[str] = []
    for variants in results.variants.values():
        for v in variants:
            if v.label not in labels:
                labels.append(v.label)
    palette = [
        "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
        "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
    ]  # fmt: skip
    return {label: palette[i % len(palette)] for i, label in enumerate(labels)}


def _log_ticks(ax: Any) -> None:
    """Plain-number ticks at 1, 2, 5 x 10^k on a log axis (no crowded minor labels)."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())


def plot_learning_curves(results: Results, path: Path) -> None:
    """Return per MPC episode (mean +- std over seeds), one panel per env."""
    plt = _pyplot()
    colors = _colors(results)
    fig, axes = _panels(plt, len(results.variants), f"{results.name}: learning curves")
    for ax, (env, variants) in zip(axes, results.variants.items(), strict=True):
        seed_returns = []
        for v in variants:
            if not v.curves:
                continue
            seed_returns += [float(e["return"]) for c in v.curves for e in c if e["kind"] == "seed"]
            cols = _aligned(v.curves, "mpc", "return")
            if not cols:
                continue
            mean, std = _mean_std(cols)
            x = list(range(1, len(mean) + 1))
            c = colors[v.label]
            ax.plot(x, mean, marker="o", ms=3, color=c, label=f"{v.label} (n={len(v.curves)})")
            ax.fill_between(
                x, [m - s for m, s in zip(mean, std, strict=True)],
                [m + s for m, s in zip(mean, std, strict=True)], color=c, alpha=0.12,
            )  # fmt: skip
        if seed_returns:
            ax.axhline(
                statistics.fmean(seed_returns), color="k", ls="--", lw=1, label="random (seed eps)"
            )
        ax.set_title(env)
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.set_xlabel("MPC episode")
        ax.set_ylabel("return")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_return_vs_plan_time(results: Results, path: Path) -> None:
    """Last-3 mean return vs mean planning ms per step: cells as dots, variant means +- std."""
    plt = _pyplot()
    colors = _colors(results)
    fig, axes = _panels(plt, len(results.variants), f"{results.name}: return vs planning time")
    for ax, (env, variants) in zip(axes, results.variants.items(), strict=True):
        for v in variants:
            if not v.rows:
                continue
            c = colors[v.label]
            pts = [
                (float(r["mean_plan_ms"]), float(r["last3_mean_return"]))
                for r in v.rows
                if _finite(r.get("mean_plan_ms")) and _finite(r.get("last3_mean_return"))
            ]
            if not pts:
                continue
            ax.scatter([p[0] for p in pts], [p[1] for p in pts], s=12, color=c, alpha=0.45)
            (mx, sx), (my, sy) = v.metric("mean_plan_ms"), v.metric("last3_mean_return")
            ax.errorbar(mx, my, xerr=sx, yerr=sy, fmt="o", ms=7, color=c, capsize=3, label=v.label)
        ax.set_xscale("log")
        _log_ticks(ax)
        ax.set_title(env)
        ax.set_xlabel("planning time per step [ms] (log)")
        ax.set_ylabel("last-3 mean return")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_return_vs_env_steps(results: Results, path: Path) -> None:
    """Return vs real env steps so far (mean +- std over seeds), seed episodes included."""
    plt = _pyplot()
    colors = _colors(results)
    fig, axes = _panels(plt, len(results.variants), f"{results.name}: return vs env steps")
    for ax, (env, variants) in zip(axes, results.variants.items(), strict=True):
        for v in variants:
            if not v.curves:
                continue
            ret = _aligned(v.curves, None, "return")
            steps = _aligned(v.curves, None, "env_steps")
            if not ret:
                continue
            mean, std = _mean_std(ret)
            x = [statistics.fmean(s) for s in steps]
            c = colors[v.label]
            ax.plot(x, mean, marker="o", ms=3, color=c, label=v.label)
            ax.fill_between(
                x, [m - s for m, s in zip(mean, std, strict=True)],
                [m + s for m, s in zip(mean, std, strict=True)], color=c, alpha=0.12,
            )  # fmt: skip
        ax.set_title(env)
        ax.set_xlabel("real environment steps")
        ax.set_ylabel("episode return")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ------------------------------------------------------------------------------- tables
TABLE_HEADER = (
    "rank",
    "model + planner",
    "seeds ok",
    "last-3 return (mean ± std)",
    "final return",
    "plan ms/step",
    "env steps",
    "wall s",
)


def _fmt(mean: float, std: float | None = None, digits: int = 1) -> str:
    if not math.isfinite(mean):
        return "–"
    return f"{mean:.{digits}f}" + (f" ± {std:.{digits}f}" if std is not None else "")


def ranking_rows(variants: Sequence[VariantStats]) -> list[list[str]]:
    """Table rows (strings, :data:`TABLE_HEADER` columns) of one env, best first."""
    rows = []
    for i, v in enumerate(ranking(variants), start=1):
        total = len(v.rows) + len(v.failed)
        rows.append(
            [
                str(i),
                v.label,
                f"{len(v.rows)}/{total}",
                _fmt(*v.metric("last3_mean_return")),
                _fmt(v.metric("final_return")[0]),
                _fmt(v.metric("mean_plan_ms")[0]),
                _fmt(v.metric("env_steps")[0], digits=0),
                _fmt(v.metric("wall_s")[0], digits=0),
            ]
        )
    return rows


def _failed(results: Results) -> list[dict[str, Any]]:
    return [f for vs in results.variants.values() for v in vs for f in v.failed]


def _markdown(results: Results, figures: dict[str, str]) -> str:
    lines = [f"# Benchmark report: {results.name}", ""]
    n_ok = sum(len(v.rows) for vs in results.variants.values() for v in vs)
    failed = _failed(results)
    lines += [
        f"{len(results.cells)} cells: {n_ok} ok, {len(failed)} failed, "
        f"{len(results.missing)} not run yet. Returns are undiscounted episode returns; "
        "spreads are sample standard deviations over seeds.",
        "",
        "## Figures",
        "",
        "Learning curves (return per MPC episode, mean ± std over seeds; dashed: random seed "
        "episodes):",
        "",
        f"![learning curves]({figures['learning_curves']})",
        "",
        "Return vs planning time per step (dots: cells; markers: mean ± std):",
        "",
        f"![return vs planning time]({figures['return_vs_plan_time']})",
        "",
        "Return vs real environment steps (sample efficiency):",
        "",
        f"![return vs env steps]({figures['return_vs_env_steps']})",
        "",
        "## Rankings",
        "",
    ]
    for env, variants in results.variants.items():
        lines += [f"### {env}", ""]
        lines.append("| " + " | ".join(TABLE_HEADER) + " |")
        lines.append("|" + "---|" * len(TABLE_HEADER))
        rows = ranking_rows(variants)
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        if not rows:
            lines.append("| – | no finished cell | | | | | | |")
        lines.append("")
    if failed:
        lines += ["## Failed cells", "", "| cell | error |", "|---|---|"]
        lines += [f"| {f['cell_id']} | {f['error'].replace('|', '/')} |" for f in failed]
        lines += ["", "Full tracebacks are in `cells/<cell>.json`.", ""]
    if results.missing:
        lines += ["## Not run yet", "", ", ".join(results.missing), ""]
    return "\n".join(lines)


def _html(results: Results, figures: dict[str, str]) -> str:
    def img(name: str, alt: str) -> str:
        data = base64.b64encode((results.out_dir / figures[name]).read_bytes()).decode()
        return f'<p><img alt="{alt}" src="data:image/png;base64,{data}" style="max-width:100%"></p>'

    esc = html.escape
    n_ok = sum(len(v.rows) for vs in results.variants.values() for v in vs)
    failed = _failed(results)
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>Benchmark report: {esc(results.name)}</title>",
        "<style>body{font-family:sans-serif;max-width:1200px;margin:auto}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 8px}"
        "pre{background:#f6f6f6;padding:6px;overflow:auto;font-size:80%}</style></head><body>",
        f"<h1>Benchmark report: {esc(results.name)}</h1>",
        f"<p>{len(results.cells)} cells: {n_ok} ok, {len(failed)} failed, "
        f"{len(results.missing)} not run yet. Spreads are sample standard deviations over "
        "seeds.</p>",
        "<h2>Figures</h2>",
        img("learning_curves", "learning curves"),
        img("return_vs_plan_time", "return vs planning time"),
        img("return_vs_env_steps", "return vs env steps"),
        "<h2>Rankings</h2>",
    ]
    for env, variants in results.variants.items():
        parts.append(f"<h3>{esc(env)}</h3><table><tr>")
        parts += [f"<th>{esc(h)}</th>" for h in TABLE_HEADER]
        parts.append("</tr>")
        for row in ranking_rows(variants):
            parts.append("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>")
        parts.append("</table>")
    if failed:
        parts.append("<h2>Failed cells</h2>")
        for f in failed:
            parts.append(f"<h4>{esc(f['cell_id'])}</h4><pre>{esc(f['traceback'])}</pre>")
    parts.append("</body></html>")
    return "\n".join(parts)


@dataclass(frozen=True)
class ReportFiles:
    """Paths written by :func:`write_report`: ``markdown``, ``html`` and ``figures`` by kind."""

    markdown: Path
    html: Path
    figures: dict[str, Path]


def write_report(out_dir: str | Path) -> ReportFiles:
    """Draw the three figure kinds and write ``report.md`` and ``report.html`` into ``out_dir``.

    Raises:
        ValueError: no results in ``out_dir``; MissingPlotDependency: matplotlib missing.
    """
    results = load_results(out_dir)
    _pyplot()  # fail early, before writing anything, if matplotlib is missing
    out = results.out_dir
    plot_learning_curves(results, out / FIGURES["learning_curves"])
    plot_return_vs_plan_time(results, out / FIGURES["return_vs_plan_time"])
    plot_return_vs_env_steps(results, out / FIGURES["return_vs_env_steps"])
    md = out / "report.md"
    md.write_text(_markdown(results, FIGURES))
    page = out / "report.html"
    page.write_text(_html(results, FIGURES))
    return ReportFiles(md, page, {k: out / v for k, v in FIGURES.items()})


__all__ = [
    "FIGURES",
    "MissingPlotDependency",
    "ReportFiles",
    "Results",
    "VariantStats",
    "load_results",
    "plot_learning_curves",
    "plot_return_vs_env_steps",
    "plot_return_vs_plan_time",
    "ranking",
    "ranking_rows",
    "write_report",
]
