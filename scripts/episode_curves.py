"""Per-episode returns of ``mbrl run --out`` directories, as one figure.

    python scripts/episode_curves.py --title "Acrobot-v1, no preset, --explore auto" \
        --run "seed 0=results/explore/auto_s0" --run "seed 1=results/explore/auto_s1" \
        --hline "random=-200" --hline "reference (energy pumping)=-84.3" \
        --out docs/figures/acrobot_explore.png

Each ``--run LABEL=DIR`` is one line over its MPC episodes (seed episodes are left out; an
episode the run marked ``exploring`` is drawn with a filled marker). Each ``--hline
LABEL=VALUE`` is a dashed horizontal line (random actions, a reference controller).
``--smooth K`` draws the running mean of the last ``K`` episodes instead of each return.
Labels that share the text before their first comma (``"PlaNet, seed 0"``, ``"PlaNet, seed
1"``) share a colour and differ in line style. The numbers plotted are printed too.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def _pair(text: str, what: str) -> tuple[str, str]:
    label, sep, value = text.partition("=")
    if not sep or not label or not value:
        raise argparse.ArgumentTypeError(f"{what} must be LABEL=VALUE, got {text!r}")
    return label, value


def mpc_episodes(run_dir: Path) -> list[dict]:
    """The non-seed episode records of ``run_dir/metrics.jsonl``, in order."""
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        raise SystemExit(f"{run_dir}: no metrics.jsonl (not an `mbrl run --out` directory)")
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in rows if r.get("kind") != "seed"]


def main() -> None:
    """Draw and save the figure."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", action="append", required=True, metavar="LABEL=DIR")
    parser.add_argument("--hline", action="append", default=[], metavar="LABEL=VALUE")
    parser.add_argument("--title", default="")
    parser.add_argument("--smooth", type=int, default=1, metavar="K", help="running mean of K")
    parser.add_argument("--out", required=True, help="PNG path")
    args = parser.parse_args()
    fig, ax = plt.subplots(figsize=(7, 4))
    longest = 1
    colours: dict[str, str] = {}
    members: dict[str, int] = {}
    styles = ("-", "--", ":", "-.")
    for item in args.run:
        label, path = _pair(item, "--run")
        episodes = mpc_episodes(Path(path))
        xs = list(range(1, len(episodes) + 1))
        longest = max(longest, len(xs))
        raw = [e["return"] for e in episodes]
        k = max(1, args.smooth)
        ys = [sum(raw[max(0, i - k + 1) : i + 1]) / len(raw[max(0, i - k + 1) : i + 1])
              for i in range(len(raw))]  # fmt: skip
        group = label.split(",")[0]
        colour = colours.setdefault(group, f"C{len(colours)}")
        style = styles[members.get(group, 0) % len(styles)]
        members[group] = members.get(group, 0) + 1
        (line,) = ax.plot(xs, ys, style, color=colour, label=label)
        explored = [(x, y) for x, y, e in zip(xs, ys, episodes, strict=True) if e.get("exploring")]
        if explored:
            ax.plot(*zip(*explored, strict=True), "o", color=line.get_color(), ms=4)
        print(f"{label}: {' '.join(f'{y:.0f}' for y in ys)}")
    for item in args.hline:
        label, value = _pair(item, "--hline")
        ax.axhline(float(value), ls="--", lw=1, color="grey")
        ax.annotate(
            label, (longest, float(value)), fontsize=8, color="grey", ha="right", va="bottom"
        )
    ax.set_xlabel("MPC episode")
    ax.set_ylabel("return" if args.smooth <= 1 else f"return, running mean of {args.smooth}")
    if args.title:
        ax.set_title(args.title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
