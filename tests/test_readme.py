"""The README's commands: every ``fnas`` line parses, and its user path runs end to end.

The user path (search an ImageFolder under a latency target, export, fully train,
report) runs here with the README's commands plus options that make it take
seconds (a tiny proxy, one epoch); the main job and the test command run in CI.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from fnas_env.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def bash_commands(text: str) -> list[str]:
    """The commands of the README's ``bash`` blocks (continuations joined, comments cut)."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        joined = re.sub(r"\\\n\s*", " ", block)
        for line in joined.splitlines():
            line = line.split(" #")[0].strip()
            if line:
                commands.extend(part.strip() for part in line.split("&&"))
    return commands


FNAS_COMMANDS = [c for c in bash_commands(README) if c.startswith(("fnas ", ".venv/bin/fnas "))]


def test_the_readme_shows_every_subcommand():
    used = {shlex.split(c)[1] for c in FNAS_COMMANDS}
    assert used == {"search", "export", "train", "report", "envs"}


@pytest.mark.parametrize("command", FNAS_COMMANDS)
def test_every_fnas_command_in_the_readme_parses(command):
    args = build_parser().parse_args(shlex.split(command)[1:])
    assert callable(args.run)


def write_image_folder(root: Path, classes: int = 3, per_class: int = 20) -> None:
    """An ImageFolder of scikit-learn's digits as 8x8 PNGs, one folder per class."""
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    for label in range(classes):
        folder = root / f"class_{label}"
        folder.mkdir(parents=True)
        images = digits.images[digits.target == label][:per_class]
        for i, image in enumerate(images):
            pixels = (image * 255 / 16).astype(np.uint8)
            Image.fromarray(pixels).convert("RGB").save(folder / f"{i:03d}.png")


def run_fnas(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    result = subprocess.run(
        [sys.executable, "-m", "fnas_env", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, f"fnas {' '.join(args)}:\n{result.stderr[-3000:]}"
    assert "Traceback" not in result.stderr
    return result


def readme_command(prefix: str) -> list[str]:
    """The README's command that starts with ``prefix``, as arguments after ``fnas``."""
    matches = [c for c in FNAS_COMMANDS if c.startswith(prefix)]
    assert matches, f"the README has no command starting with {prefix!r}"
    return shlex.split(matches[0])[1:]


def test_from_an_image_folder_to_an_exported_fully_trained_model(tmp_path):
    """The README's path: search your ImageFolder, export, train fully, report."""
    write_image_folder(tmp_path / "data" / "flowers")
    fast_search = ["--budget", "3", "--epochs", "1", "--env-kwarg", "width=0.25"]
    search = readme_command("fnas search --dataset data/flowers")
    # the README's command with a smaller budget (the last --budget wins)
    run_fnas(tmp_path, *search, *fast_search, "--no-progress-bar")
    run_dir = tmp_path / "runs" / "flowers"
    assert (run_dir / "record.jsonl").is_file()

    run_fnas(tmp_path, *readme_command("fnas export runs/flowers"))
    assert sorted((run_dir / "export").glob("*.pt2")), "fnas export wrote no module"

    train = readme_command("fnas train runs/flowers")
    result = run_fnas(tmp_path, *train, "--epochs", "1", "--width", "0.25", "--no-progress-bar")
    assert "validation accuracy" in result.stdout and "latency" in result.stdout
    (trained,) = sorted((run_dir / "train").rglob("trained_*.pt2"))
    meta = json.loads(trained.with_suffix(".json").read_text())
    assert meta["input_shape"][1:] == [3, 8, 8]  # the ImageFolder's RGB 8x8 images
    module = torch.export.load(str(trained)).module()
    logits = module(torch.zeros(meta["input_shape"]))
    assert logits.shape == (1, 3)  # the ImageFolder's three classes

    run_fnas(tmp_path, *readme_command("fnas report runs/flowers"))
    assert (run_dir / "report" / "report.md").is_file()
    assert (run_dir / "report" / "progress.png").stat().st_size > 5000


ZOO_COMMANDS = [c for c in bash_commands(README) if c.startswith("python -m rl_zoo3.train")]


@pytest.mark.parametrize("command", ZOO_COMMANDS)
def test_every_zoo_command_in_the_readme_has_our_hyperparameters(command):
    """The zoo runs themselves are in tests/test_zoo.py, with the same --conf-file."""
    import importlib

    args = shlex.split(command)
    option = {args[i]: args[i + 1] for i in range(3, len(args) - 1) if args[i].startswith("-")}
    assert option["--gym-packages"] == "fnas_env"
    module = importlib.import_module(option["--conf-file"])
    assert option["--conf-file"].endswith(option["--algo"])
    assert option["--env"] in module.hyperparams


PYTHON_BLOCKS = re.findall(r"```python\n(.*?)```", README, flags=re.S)
#: what makes the README's Python examples take seconds here (a few evaluations, a tiny
#: proxy, two Ray workers on this 2-core machine); the code is the README's
FAST_PYTHON = {
    "budget=200": "budget=6",
    "n_envs=4": "n_envs=2",
    '{"pool": "runs/pool"}': (
        '{"pool": "runs/pool", "epochs": 1, "max_train": 64, "max_val": 32, '
        '"width": 0.25, "cost_model": "macs"}'
    ),
}


def test_the_readme_has_its_python_examples():
    assert len(PYTHON_BLOCKS) == 2
    for block in PYTHON_BLOCKS:
        assert any(key in block for key in FAST_PYTHON)


@pytest.mark.parametrize("index", range(len(PYTHON_BLOCKS)))
def test_every_python_example_in_the_readme_runs(index, tmp_path, benchmark_dir):
    code = PYTHON_BLOCKS[index]
    if "ray_vec_env" in code:
        pytest.importorskip("ray", reason="Ray is the [ray] extra (installed with [dev])")
    for slow, fast in FAST_PYTHON.items():
        code = code.replace(slow, fast)
    env = dict(os.environ, PYTHONPATH=str(ROOT), FNAS_BENCHMARK_DIR=str(benchmark_dir))
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    records = list(tmp_path.rglob("record.jsonl"))
    assert len(records) == 1
    kinds = [json.loads(line)["kind"] for line in records[0].read_text().splitlines()]
    assert kinds.count("activated") >= 6
