"""``fnas report``: figures and summary of synthetic run folders, checked against their records."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fnas_env.cli import main
from fnas_env.evaluators.base import Evaluation
from fnas_env.record import SearchRecord
from fnas_env.report import DPI, FRONT_PANEL_SIZE, PROGRESS_SIZE, write_report
from fnas_env.run import RunFolder, RunSettings
from fnas_env.spaces import get_space

TARGET = 20.0
MIN_PNG_BYTES = 5_000


def make_run(
    path: Path,
    method: str,
    seed: int,
    n: int,
    space: str = "mnas",
    env_id: str = "FNAS-MNAS-v0",
    latency: bool = True,
) -> Path:
    """A run folder with ``n`` sampled architectures: evaluated, cached repeats, trusted
    ones, AEB replays and one failed evaluation, in a seeded order."""
    rng = np.random.default_rng(seed)
    kwargs = {"target": TARGET} if latency else {"dataset": "cifar10"}
    RunFolder(path).save_settings(RunSettings(env_id, kwargs, method, seed, budget=n))
    record = SearchRecord(path / "record.jsonl", seed=seed)
    sp = get_space(space)
    seen = []
    for i in range(n):
        if seen and i % 5 == 4:
            arch, kind = seen[int(rng.integers(len(seen)))], "cached"
        else:
            arch = sp.sample(rng)
            kind = "trusted" if i % 7 == 6 else "activated"
            if kind == "activated":
                seen.append(arch)
        accuracy = float(rng.uniform(40, 95))
        lat = float(rng.uniform(5, 40)) if latency else None
        if i == 3:  # a failed evaluation: activated, never on the front
            record.append(arch, Evaluation(accuracy=0.0, latency=lat, failed=True), 0.0, kind)
            continue
        reward = accuracy / 100 * ((lat / TARGET) ** -0.07 if lat else 1.0)
        record.append(arch, Evaluation(accuracy=accuracy, latency=lat), reward, kind)
        if i % 6 == 5:
            record.append(arch, None, reward, "replayed")
    return path


def record_lines(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "record.jsonl").read_text().splitlines()]


def running_max(values: list[float]) -> list[float]:
    out, best = [], -math.inf
    for v in values:
        best = max(best, v)
        out.append(best)
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> list[Path]:
    root = tmp_path_factory.mktemp("runs")
    return [
        make_run(root / "fnas-s0", "fnas", 0, 48),
        make_run(root / "fnas-s1", "fnas", 1, 40),
        make_run(root / "mnas-s0", "mnas", 0, 44),
    ]


@pytest.fixture(scope="module")
def report(runs, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    return write_report(runs, out, windows=6)


def test_cli_writes_pngs_and_summary(runs, tmp_path, capsys):
    out = tmp_path / "cmp"
    assert main(["report", *map(str, runs), "--out", str(out), "--windows", "5"]) == 0
    assert "report.md" in capsys.readouterr().out
    names = {"progress.png", "front.png", "report.md"} | {f"choices-{r.name}.png" for r in runs}
    assert names <= {p.name for p in out.iterdir()}
    expected = {
        "progress.png": (PROGRESS_SIZE[0] * DPI, PROGRESS_SIZE[1] * DPI),
        "front.png": (FRONT_PANEL_SIZE[0] * DPI, FRONT_PANEL_SIZE[1] * DPI),  # one env: one panel
    }
    for png in out.glob("*.png"):
        assert png.stat().st_size > MIN_PNG_BYTES, png.name
        with Image.open(png) as image:
            image.verify()
        with Image.open(png) as image:
            assert image.format == "PNG"
            if png.name in expected:
                assert image.size == tuple(round(v) for v in expected[png.name]), png.name
            else:  # 7 blocks x 6 kinds of decision: wider than tall, large enough to read
                width, height = image.size
                assert width > 1000 and 800 < height < width
    markdown = (out / "report.md").read_text()
    for name in names - {"report.md"}:
        assert f"]({name})" in markdown


def test_best_curves_are_running_max_of_activated_samples(runs, report):
    for run in runs:
        activated = [e for e in record_lines(run) if e["kind"] == "activated"]
        rewards = running_max([e["reward"] for e in activated])
        accuracies = running_max([e["accuracy"] for e in activated])
        np.testing.assert_allclose(report.progress.run_reward[run.name], rewards)
        np.testing.assert_allclose(report.progress.run_accuracy[run.name], accuracies)
    by_group = {c.group: c for c in report.progress.reward}
    assert set(by_group) == {("FNAS-MNAS-v0", "fnas"), ("FNAS-MNAS-v0", "mnas")}
    fnas = by_group[("FNAS-MNAS-v0", "fnas")]
    a, b = (report.progress.run_reward[name] for name in ("fnas-s0", "fnas-s1"))
    n = min(len(a), len(b))
    np.testing.assert_array_equal(fnas.samples, np.arange(1, n + 1))
    np.testing.assert_allclose(fnas.median, (a[:n] + b[:n]) / 2)
    np.testing.assert_allclose(fnas.low, np.minimum(a[:n], b[:n]))
    np.testing.assert_allclose(fnas.high, np.maximum(a[:n], b[:n]))
    mnas = by_group[("FNAS-MNAS-v0", "mnas")]
    np.testing.assert_allclose(mnas.median, report.progress.run_reward["mnas-s0"])
    assert mnas.runs == ("mnas-s0",) and fnas.runs == ("fnas-s0", "fnas-s1")


def test_front_is_exactly_the_non_dominated_evaluated_architectures(runs, report):
    (panel,) = report.front.panels
    assert panel.env_id == "FNAS-MNAS-v0" and panel.targets == (TARGET,)
    groups = {("FNAS-MNAS-v0", "fnas"): runs[:2], ("FNAS-MNAS-v0", "mnas"): runs[2:]}
    assert [s.group for s in panel.series] == list(groups)
    for series in panel.series:
        lines = [e for r in groups[series.group] for e in record_lines(r)]
        points = {
            (e["arch"], e["latency"], e["accuracy"])
            for e in lines
            if e["kind"] == "activated" and not e["failed"]
        }
        assert {(e.arch, e.latency, e.accuracy) for e in series.points} == points
        non_dominated = {
            p for p in points if not any(q != p and q[1] <= p[1] and q[2] >= p[2] for q in points)
        }
        assert {(e.arch, e.latency, e.accuracy) for e in series.front} == non_dominated
        latencies = [e.latency for e in series.front]
        assert latencies == sorted(latencies)


def test_choice_shares_sum_to_one_and_match_the_record(runs, report):
    for run in runs:
        shares = report.choices[run.name]
        sampled = [e["choices"] for e in record_lines(run) if e["kind"] != "replayed"]
        assert shares.space == "mnas" and len(shares.decisions) == 42
        assert len(shares.windows) == 6
        assert shares.windows[0][0] == 0 and shares.windows[-1][1] == len(sampled)
        assert all(a[1] == b[0] for a, b in zip(shares.windows, shares.windows[1:]))
        np.testing.assert_allclose(shares.shares.sum(axis=2), 1.0)
        for w, (start, stop) in enumerate(shares.windows):
            window = sampled[start:stop]
            for d, decision in enumerate(shares.decisions):
                counts = [sum(1 for c in window if c[d] == k) for k in range(decision.n)]
                assert shares.counts[d, w, : decision.n].tolist() == counts
                np.testing.assert_allclose(
                    shares.shares[d, w, : decision.n], np.array(counts) / len(window)
                )


def _table_rows(markdown: str) -> dict[str, list[str]]:
    rows = {}
    for line in markdown.splitlines():
        if line.startswith("| ") and not line.startswith("| ---"):
            cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
            rows[cells[0]] = cells
    return rows


def test_summary_lists_each_run_with_its_counts(runs, report):
    rows = _table_rows(report.markdown.read_text())
    for run in runs:
        lines = record_lines(run)
        counts = {
            k: sum(e["kind"] == k for e in lines)
            for k in ("activated", "cached", "trusted", "replayed")
        }
        evaluated = [e for e in lines if e["kind"] == "activated"]
        best = max(evaluated, key=lambda e: e["reward"])
        row = rows[run.name]
        settings = json.loads((run / "search.json").read_text())
        assert row[1:5] == ["FNAS-MNAS-v0", settings["method"], str(settings["seed"]), "20"]
        assert row[5:9] == [str(counts[k]) for k in ("activated", "cached", "trusted", "replayed")]
        assert row[9] == "1"  # the failed evaluation
        assert float(row[10]) == pytest.approx(best["reward"], rel=1e-3)
        assert float(row[11]) == pytest.approx(max(e["accuracy"] for e in evaluated), rel=1e-3)
        assert row[12].replace("\\|", "|") == f"`{best['arch']}`"
    # the group of two seeds: medians over its seeds
    (group,) = [
        line for line in report.markdown.read_text().splitlines()
        if line.startswith("| FNAS-MNAS-v0 | fnas | 2 |")
    ]  # fmt: skip
    cells = [c.strip() for c in group.split("|")[1:-1]]
    activated = [sum(e["kind"] == "activated" for e in record_lines(r)) for r in runs[:2]]
    best = [max(e["reward"] for e in record_lines(r) if e["kind"] == "activated") for r in runs[:2]]
    assert float(cells[3]) == pytest.approx(np.median(activated))
    assert float(cells[7]) == pytest.approx(np.median(best), rel=1e-3)


def test_single_run_defaults_to_run_report_and_notes_missing_latency(tmp_path, capsys):
    run = make_run(
        tmp_path / "nb", "random", 3, 30, space="nb201", env_id="FNAS-NB201-v0", latency=False
    )
    assert main(["report", str(run)]) == 0
    out = run / "report"
    files = {p.name for p in out.iterdir()}
    assert files == {"report.md", "progress.png", "choices-nb.png"}
    markdown = (out / "report.md").read_text()
    assert "FNAS-NB201-v0: the record has no latency" in markdown
    assert "front.png" not in markdown
    assert "no latency" in capsys.readouterr().out


def test_several_runs_need_out(runs, capsys):
    assert main(["report", str(runs[0]), str(runs[1])]) == 2
    err = capsys.readouterr().err
    assert err.startswith("fnas report: error:") and "--out" in err and "Traceback" not in err
    assert not (runs[0] / "report").exists()


def test_not_a_run_folder_is_a_clear_error(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    for path in (tmp_path / "empty", tmp_path / "missing"):
        assert main(["report", str(path)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("fnas report: error:")
        assert str(path) in err
    assert not (tmp_path / "empty" / "report").exists()


def test_nothing_evaluated(tmp_path, runs, capsys):
    empty = tmp_path / "fresh"
    RunFolder(empty).save_settings(RunSettings("FNAS-MNAS-v0", {"target": TARGET}, "fnas", 5))
    assert main(["report", str(empty)]) == 2
    err = capsys.readouterr().err
    assert "nothing to plot: the run has no activated architecture yet" in err and str(empty) in err
    # beside a run that has results, it is named in the summary instead of plotted
    out = tmp_path / "out"
    assert main(["report", str(empty), str(runs[2]), "--out", str(out)]) == 0
    assert (
        "fresh: no activated architecture (0 record entries), not plotted"
        in (out / "report.md").read_text()
    )


def test_bad_windows_and_repeated_run(runs, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["report", str(runs[0]), "--windows", "0"])
    assert exc.value.code == 2
    assert main(["report", str(runs[0]), str(runs[0]), "--out", str(tmp_path)]) == 2
    assert "given twice" in capsys.readouterr().err


def test_no_pyplot_state(report):
    if "matplotlib.pyplot" in sys.modules:
        import matplotlib.pyplot as plt

        assert plt.get_fignums() == []


def test_python_m_fnas_env_report(tmp_path):
    run = make_run(
        tmp_path / "macro", "evolution", 0, 24, space="nb201", env_id="FNAS-NB201-v0", latency=False
    )
    out = tmp_path / "out dir"
    proc = subprocess.run(
        [sys.executable, "-m", "fnas_env", "report", str(run), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert {"report.md", "progress.png", "choices-macro.png"} <= {p.name for p in out.iterdir()}
    assert "wrote" in proc.stdout
