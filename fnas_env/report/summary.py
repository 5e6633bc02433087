"""The whole report: figures, ``report.md``, and :func:`write_report`."""

from __future__ import annotations

import math
import os
import re
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from fnas_env.report.data import (
    DEFAULT_WINDOWS,
    ChoiceShares,
    FrontData,
    ProgressData,
    RunData,
    _unique_labels,
    choice_shares,
    front_data,
    group_runs,
    load_run,
    progress_data,
)
from fnas_env.report.figures import (
    group_colors,
    plot_choices,
    plot_front,
    plot_progress,
)

__all__ = [
    "Report",
    "write_report",
]


# ---- the whole report ----------------------------------------------------------------


@dataclass
class Report:
    """What :func:`write_report` wrote and the data it drew.

    Attributes:
        out: the output folder.
        markdown: the summary's path (``out/report.md``).
        runs: the runs read.
        progress: figure 1's data.
        front: figure 2's data.
        choices: figure 3's data per run label (runs without samples are absent).
        figures: figure (``"progress"``, ``"front"``, ``"choices:RUN LABEL"``) -> PNG path.
        notes: what was left out and why (also in the summary).
    """

    out: Path
    markdown: Path
    runs: list[RunData]
    progress: ProgressData
    front: FrontData
    choices: dict[str, ChoiceShares]
    figures: dict[str, Path]
    notes: list[str]


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-") or "run"


def _fmt(value: float | None, digits: int = 4) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    return f"{value:.{digits}g}"


def _median(values: list[float]) -> float | None:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return statistics.median(finite) if finite else None


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _row(*cells: object) -> str:
    return "| " + " | ".join(_cell(str(c)) for c in cells) + " |"


def _markdown(report: Report) -> str:
    runs = report.runs
    run_columns = (
        "run", "env", "method", "seed", "target T", "activated", "cached", "trusted",
        "replayed", "failed", "best reward", "best accuracy (%)", "best architecture",
    )  # fmt: skip
    group_columns = (
        "env", "method", "seeds", "activated", "cached", "trusted", "replayed",
        "best reward", "best accuracy (%)",
    )  # fmt: skip
    lines = [
        "# Search report",
        "",
        f"{len(runs)} run(s) in {len(group_runs(runs))} group(s) by (env id, method). "
        "Activated: really evaluated samples (they spend the budget); cached: repeats served "
        "from the record; trusted: rewarded by the critic without training; replayed: AEB "
        "replays (not new samples).",
        "",
        "## Runs",
        "",
        _row(*run_columns),
        _row("---", "---", "---", *["---:"] * 9, "---"),
    ]
    for run in runs:
        c, s = run.counters, run.settings
        arch = f"`{c.best_arch}`" if c.best_arch else "-"
        lines.append(
            _row(
                run.label,
                s.env_id,
                s.method,
                s.seed,
                _fmt(run.target),
                c.activated,
                c.cached,
                c.trusted,
                c.replayed,
                c.failed,
                _fmt(c.best_reward),
                _fmt(c.best_accuracy),
                arch,
            )  # fmt: skip
        )
    lines += ["", "## Groups (median over seeds)", "", _row(*group_columns)]
    lines.append(_row("---", "---", *["---:"] * 7))
    for (env_id, method), members in group_runs(runs).items():
        cs = [r.counters for r in members]
        medians = [
            _fmt(_median([getattr(c, name) for c in cs]))
            for name in (
                "activated",
                "cached",
                "trusted",
                "replayed",
                "best_reward",
                "best_accuracy",
            )
        ]
        lines.append(_row(env_id, method, len(members), *medians))
    lines += ["", "## Best reward and accuracy against activated samples", ""]
    if "progress" in report.figures:
        lines += ["![best reward and accuracy](progress.png)", ""]
    lines += [f"- {note}" for note in report.progress.notes]
    lines += ["", "## Accuracy against latency", ""]
    if "front" in report.figures:
        lines += [
            "Points: activated architectures; lines: each group's Pareto front; "
            "dashed: the target T.",
            "",
            "![accuracy against latency](front.png)",
            "",
        ]
    else:
        lines += ["No figure: no activated architecture has a latency.", ""]
    for env_id in report.front.skipped:
        lines.append(f"- {env_id}: the record has no latency (accuracy only), no panel")
    lines += ["", "## Choices over the search", ""]
    if not report.choices:
        lines.append("No run has sampled architectures.")
    for label, shares in report.choices.items():
        name = report.figures[f"choices:{label}"].name
        sizes = [b - a for a, b in shares.windows]
        lines += [
            f"### {label}",
            "",
            f"{shares.windows[-1][1]} sampled architectures of space {shares.space} in "
            f"{len(shares.windows)} windows of {min(sizes)}-{max(sizes)}; each panel: the share "
            "of each choice of one decision per window.",
            "",
            f"![choices of {label}]({name})",
            "",
        ]
    return "\n".join(lines).rstrip() + "\n"


def write_report(
    paths: Sequence[str | os.PathLike],
    out: str | os.PathLike,
    windows: int = DEFAULT_WINDOWS,
) -> Report:
    """Read the run folders ``paths`` and write the figures and ``report.md`` into ``out``.

    Args:
        paths: run folders (at least one, each once).
        out: the output folder (made if missing; files of an earlier report are replaced).
        windows: how many windows the choices figures cut each search into.

    Returns:
        What was written and the data each figure drew.

    Raises:
        FileNotFoundError: a path is not a run folder.
        ValueError: no path, a path given twice, a bad ``windows``, ``out`` is a file,
            or no run has an activated architecture (nothing to plot).
    """
    if not paths:
        raise ValueError("give at least one run folder")
    if isinstance(windows, bool) or not isinstance(windows, int) or windows < 1:
        raise ValueError(f"windows must be a positive int, got {windows!r}")
    folders = [Path(p) for p in paths]
    seen: dict[Path, Path] = {}
    for folder in folders:
        key = folder.resolve()
        if key in seen:
            raise ValueError(f"run folder {folder} is given twice")
        seen[key] = folder
    runs = [load_run(p, label) for p, label in zip(folders, _unique_labels(folders))]
    if not any(r.found for r in runs):
        described = ", ".join(f"{r.path} ({len(r.entries)} record entries)" for r in runs)
        which = "the run has no" if len(runs) == 1 else "none of the runs has an"
        raise ValueError(
            f"nothing to plot: {which} activated architecture yet: {described}; "
            "run or resume the search first"
        )
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out} is a file: give a folder for the report")
    out.mkdir(parents=True, exist_ok=True)
    progress = progress_data(runs)
    front = front_data(runs)
    figures: dict[str, Path] = {}
    colors = group_colors([r.group for r in runs])
    figures["progress"] = plot_progress(progress, out / "progress.png", colors)
    if front.panels:
        figures["front"] = plot_front(front, out / "front.png", colors)
    choices: dict[str, ChoiceShares] = {}
    files = {"progress.png", "front.png", "report.md"}
    for i, run in enumerate(runs):
        shares = choice_shares(run, windows)
        if shares is None:
            continue
        choices[run.label] = shares
        name = f"choices-{_slug(run.label)}.png"
        if name in files:  # two labels with one slug
            name = f"choices-{_slug(run.label)}-{i + 1}.png"
        files.add(name)
        figures[f"choices:{run.label}"] = plot_choices(shares, out / name)
    notes = list(progress.notes) + [
        f"{env_id}: no latency in the record, no accuracy/latency panel" for env_id in front.skipped
    ]
    report = Report(out, out / "report.md", runs, progress, front, choices, figures, notes)
    report.markdown.write_text(_markdown(report))
    return report
