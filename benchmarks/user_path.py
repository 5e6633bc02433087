"""The README's user path, timed: search, export, fully train, report.

Runs the README's commands as a user types them (``python -m fnas_env ...``, one
process each) on the bundled digits, in a fresh run folder, and appends one JSON
line per command (wall seconds, exit status, the load average when it started)
plus a line of what the path produced (architectures activated, best proxy
accuracy, full-training accuracy and latency) to ``--jsonl``.

    PYTHONPATH=. python benchmarks/user_path.py --jsonl benchmarks/results/records/user_path.jsonl
    PYTHONPATH=. python benchmarks/user_path.py --quick   # a smoke run of the same steps
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.parallel import append_jsonl
from fnas_env.record import read_record

ROOT = Path(__file__).resolve().parents[1]


def steps(run_dir: str, quick: bool) -> list[tuple[str, list[str]]]:
    """(name, fnas arguments) of the README's path; ``quick`` shrinks every step."""
    search = ["search", "--run-dir", run_dir, "--no-progress-bar"]
    train = ["train", run_dir, "--no-progress-bar"]
    if quick:
        search += ["--budget", "3", "--epochs", "1"]
        train += ["--epochs", "1"]
    else:
        train += ["--epochs", "30"]
    return [
        ("search", search),
        ("export", ["export", run_dir, "--top", "3"]),
        ("train", train),
        ("report", ["report", run_dir]),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jsonl", default=None, help="append results to this JSON-lines file")
    parser.add_argument("--quick", action="store_true", help="tiny budget and one epoch")
    args = parser.parse_args()
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    with tempfile.TemporaryDirectory(prefix="fnas-user-path-") as tmp:
        run_dir = str(Path(tmp) / "runs" / "digits")
        for name, fnas_args in steps(run_dir, args.quick):
            load = os.getloadavg()[0]
            start = time.perf_counter()
            result = subprocess.run(
                [sys.executable, "-m", "fnas_env", *fnas_args],
                cwd=tmp,
                env=env,
                capture_output=True,
                text=True,
            )
            row = {
                "step": name,
                "command": "fnas " + " ".join(fnas_args).replace(run_dir, "runs/digits"),
                "wall_s": round(time.perf_counter() - start, 1),
                "rc": result.returncode,
                "load_1min": round(load, 2),
                "commit": commit,
                "quick": args.quick,
            }
            print(json.dumps(row), flush=True)
            append_jsonl(args.jsonl, row)
            if result.returncode:
                sys.exit(f"{name} failed:\n{result.stderr[-3000:]}")
        summary = {"step": "outcome", "commit": commit, "quick": args.quick}
        record = list(read_record(Path(run_dir) / "record.jsonl"))
        activated = [e for e in record if e.kind == "activated"]
        summary.update(
            activated=len(activated),
            trusted=sum(e.kind == "trusted" for e in record),
            cached=sum(e.kind == "cached" for e in record),
            best_proxy_accuracy=max(e.accuracy or 0.0 for e in activated),
            mean_evaluation_s=round(sum(e.cost or 0.0 for e in activated) / len(activated), 2),
        )
        (result_file,) = Path(run_dir, "train").glob("*/result.json")
        trained = json.loads(result_file.read_text())
        summary.update({k: trained.get(k) for k in ("accuracy", "latency_ms", "params", "epochs")})
        print(json.dumps(summary), flush=True)
        append_jsonl(args.jsonl, summary)


if __name__ == "__main__":
    main()
