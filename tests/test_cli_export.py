"""``fnas export``: files that load without the project, metadata, ONNX, clear errors."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from fnas_env.cli import main
from fnas_env.evaluators.base import Evaluation
from fnas_env.evaluators.proxy import base_architecture
from fnas_env.export import (
    DataShape,
    arch_name,
    export_architecture,
    network_config,
    parse_architecture,
)
from fnas_env.models import ProxyModelConfig, build_model, count_macs_params
from fnas_env.record import SearchRecord
from fnas_env.run import RunFolder, RunSettings
from fnas_env.spaces import get_space

HAS_ONNX = all(importlib.util.find_spec(m) is not None for m in ("onnx", "onnxscript"))
REPO = Path(__file__).resolve().parents[1]
MNAS_KWARGS = {"dataset": "digits", "width": 0.5, "target": 1.0, "epochs": 1}


def make_run(path: Path, env_id: str = "FNAS-MNAS-v0", kwargs=None, n: int = 4, seed: int = 0):
    """A run folder with ``n`` evaluated architectures (rewards rise with the index)."""
    folder = RunFolder(path)
    folder.save_settings(
        RunSettings(env_id=env_id, env_kwargs=dict(kwargs or MNAS_KWARGS), method="fnas", seed=0)
    )
    space = get_space({"FNAS-MNAS-v0": "mnas", "FNAS-NB201-v0": "nb201"}[env_id])
    record = SearchRecord(folder.record_path)
    rng = np.random.default_rng(seed)
    archs = []
    while len(archs) < n:
        arch = space.sample(rng)
        if arch not in archs:
            archs.append(arch)
    for i, arch in enumerate(archs):
        evaluation = Evaluation(
            accuracy=80.0 + i,
            latency=2.0 - 0.1 * i if i % 2 else 1.0 + 0.1 * i,
            macs=1e6,
            params=1e5,
            cost=1.0,
        )
        record.append(arch, evaluation, 0.5 + 0.1 * i, "activated")
    # a trusted entry (a prediction) with a higher reward is never exported
    record.append(archs[0], Evaluation(accuracy=99.0, trusted=True), 9.0, "trusted")
    return folder, archs


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A synthetic digits run and its top-2 export (with ONNX)."""
    path = tmp_path_factory.mktemp("run")
    folder, archs = make_run(path)
    assert main(["export", str(path), "--top", "2"]) == 0
    return folder, archs


def json_files(folder: RunFolder) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((folder.path / "export").glob("*.json"))]


def test_top2_writes_pt2_json_onnx_with_metadata(exported):
    folder, archs = exported
    out = folder.path / "export"
    best, second = archs[3], archs[2]  # rewards rise with the index
    names = [f"top1_{arch_name(best)}", f"top2_{arch_name(second)}"]
    config = network_config(folder.settings())
    assert config == ProxyModelConfig(
        width_mult=0.5, resolution=8, num_classes=10, in_channels=1, max_stride=4,
        head_channels=256,
    )  # fmt: skip
    for name, arch, reward in zip(names, (best, second), (0.8, 0.7)):
        meta = json.loads((out / f"{name}.json").read_text())
        assert (out / f"{name}.pt2").stat().st_size > 0
        assert meta["arch"] == get_space("mnas").to_string(arch) and meta["space"] == "mnas"
        assert meta["config"]["width_mult"] == 0.5 and meta["input_shape"] == [1, 1, 8, 8]
        cost = count_macs_params(build_model(arch, config), config)
        assert (meta["params"], meta["macs"]) == (cost.params, cost.macs)
        assert meta["latency_ms"] > 0 and meta["weights"] == "initialised"
        assert meta["record"]["reward"] == pytest.approx(reward)
        assert meta["record"]["kind"] == "activated"
        if HAS_ONNX:
            assert (out / f"{name}.onnx").is_file() and meta["files"]["onnx"] == f"{name}.onnx"
    assert len(list(out.glob("*.pt2"))) == 2 and not list(out.glob(".*tmp*"))


@pytest.mark.skipif(not HAS_ONNX, reason="onnx/onnxscript not installed")
def test_onnx_files_pass_the_checker(exported):
    import onnx

    folder, _ = exported
    files = sorted((folder.path / "export").glob("*.onnx"))
    assert len(files) == 2
    for file in files:
        model = onnx.load(str(file))
        onnx.checker.check_model(model)
        assert [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim][1:] == [
            1,
            8,
            8,
        ]


def test_pt2_loads_without_the_project_and_matches_the_model(exported, tmp_path):
    folder, archs = exported
    out = folder.path / "export"
    config = network_config(folder.settings())
    x = torch.randn(3, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    torch.save(x, tmp_path / "x.pt")
    files = [out / f"top1_{arch_name(archs[3])}.pt2", out / f"top2_{arch_name(archs[2])}.pt2"]
    script = textwrap.dedent(
        f"""
        import importlib.abc, os, sys

        class Block(importlib.abc.MetaPathFinder):  # this project is not importable here
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("fnas_env", "agents", "wrappers"):
                    raise ImportError(f"blocked: {{name}}")
                return None

        sys.meta_path.insert(0, Block())
        sys.path = [p for p in sys.path if os.path.realpath(p or ".") != {str(REPO)!r}]
        try:
            import fnas_env  # noqa: F401
            sys.exit("fnas_env is importable")
        except ImportError:
            pass
        import torch
        x = torch.load({str(tmp_path / "x.pt")!r})
        for i, f in enumerate({[str(f) for f in files]!r}):
            module = torch.export.load(f).module()
            torch.save(module(x), {str(tmp_path)!r} + f"/y{{i}}.pt")
            torch.save(module(x[:1]), {str(tmp_path)!r} + f"/y{{i}}_1.pt")
        assert not any(m.startswith("fnas_env") for m in sys.modules)
        """
    )
    done = subprocess.run(
        [sys.executable, "-I", "-c", script], cwd=tmp_path, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    for i, arch in enumerate((archs[3], archs[2])):
        torch.manual_seed(folder.settings().seed)  # the export's fresh initialisation
        model = build_model(arch, config).eval()
        with torch.no_grad():
            expected = model(x)
        assert torch.allclose(torch.load(tmp_path / f"y{i}.pt"), expected, atol=1e-5)
        assert torch.allclose(torch.load(tmp_path / f"y{i}_1.pt"), expected[:1], atol=1e-5)


def test_front_and_arch_selection(tmp_path):
    folder, archs = make_run(tmp_path / "run")
    out = tmp_path / "front"
    assert main(["export", str(folder.path), "--top", "5", "--by", "front", "--no-onnx",
                 "--out", str(out)]) == 0  # fmt: skip
    exported = {json.loads(p.read_text())["arch"] for p in out.glob("*.json")}
    front = {e.arch for e in folder.top(5, by="front")}
    assert exported == front and len(front) < 4
    assert not list(out.glob("*.onnx"))

    base = base_architecture()
    text = get_space("mnas").to_string(base)
    out = tmp_path / "one"
    args = ["export", str(folder.path), "--arch", text, "--width", "1.0", "--resolution", "16"]
    assert main(args + ["--no-onnx", "--out", str(out)]) == 0
    meta = json.loads((out / f"{arch_name(base)}.json").read_text())
    assert meta["arch"] == text and meta["record"] is None  # never evaluated by the search
    assert meta["config"]["width_mult"] == 1.0 and meta["config"]["resolution"] == 16
    assert meta["config"]["max_stride"] == 8  # the proxy rule: half the resolution


def test_table_env_networks_and_overrides(tmp_path):
    nb201 = RunSettings(env_id="FNAS-NB201-v0", env_kwargs={"dataset": "cifar100"})
    config = network_config(nb201)
    assert (config.nb201_cells, config.nb201_channels, config.resolution) == (5, 16, 32)
    assert (config.num_classes, config.in_channels) == (100, 3)
    config = network_config(
        RunSettings(env_id="FNAS-NB201-v0", env_kwargs={"dataset": "ImageNet16-120"})
    )
    assert (config.resolution, config.num_classes) == (16, 120)
    macro = network_config(RunSettings(env_id="FNAS-Macro-v0"))
    assert macro == ProxyModelConfig(resolution=32, num_classes=10)
    assert network_config(RunSettings(env_id="FNAS-ANB-v0")) == ProxyModelConfig()
    # overrides: another dataset's shape, width; the mnas proxy rule follows them
    mnas = network_config(RunSettings(env_id="FNAS-MNAS-v0"), dataset="cifar10", width=1.0)
    assert (mnas.in_channels, mnas.resolution, mnas.max_stride, mnas.width_mult) == (3, 32, 16, 1.0)
    shaped = network_config(space="mnas", data=DataShape(3, 12, 4))
    assert (shaped.in_channels, shaped.resolution, shaped.num_classes) == (3, 12, 4)
    classes = RunSettings(env_id="FNAS-MNAS-v0", env_kwargs={"classes": [0, 1, 2]})
    assert network_config(classes).num_classes == 3
    with pytest.raises(ValueError, match="unknown dataset"):
        network_config(nb201, dataset="nosuchset")
    # an NB201 run exports its benchmark network
    folder, archs = make_run(tmp_path / "nb", "FNAS-NB201-v0", {"dataset": "cifar10"}, n=2)
    assert main(["export", str(folder.path), "--no-onnx"]) == 0
    meta = json.loads(next((folder.path / "export").glob("*.json")).read_text())
    assert meta["space"] == "nb201" and meta["config"]["nb201_cells"] == 5
    assert meta["arch"] == get_space("nb201").to_string(archs[1])


def test_onnx_missing_or_failing_is_a_note_not_a_crash(tmp_path, monkeypatch):
    arch, config = base_architecture(), ProxyModelConfig.digits()
    monkeypatch.setitem(sys.modules, "onnxscript", None)  # import fails
    result = export_architecture(arch, config, tmp_path, "a", measure_latency=False)
    assert set(result.paths) == {"pt2", "json"} and "ONNX skipped" in result.notes[0]
    assert "not installed" in result.notes[0] and result.metadata["latency_ms"] is None
    if HAS_ONNX:
        monkeypatch.delitem(sys.modules, "onnxscript")

        def broken(*args, **kwargs):
            raise RuntimeError("unsupported op\nmore detail")

        monkeypatch.setattr(torch.onnx, "export", broken)
        result = export_architecture(arch, config, tmp_path, "b", measure_latency=False)
        assert "onnx" not in result.paths and "exporter failed" in result.notes[0]
        assert "unsupported op" in result.notes[0] and not list(tmp_path.glob("*.onnx"))


def error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def test_empty_record_is_a_clear_error(tmp_path, capsys):
    RunFolder(tmp_path).save_settings(RunSettings(env_id="FNAS-MNAS-v0", env_kwargs=MNAS_KWARGS))
    assert main(["export", str(tmp_path)]) == 2
    line = error_line(capsys)
    assert line.startswith("fnas export: error:") and "no activated architecture" in line
    assert not (tmp_path / "export").exists()


def test_not_a_run_folder_and_bad_arguments(tmp_path, capsys):
    assert main(["export", str(tmp_path)]) == 2
    assert "not a search run folder" in error_line(capsys)
    assert main(["export", str(tmp_path / "missing")]) == 2
    assert "not a search run folder" in error_line(capsys)

    folder, _ = make_run(tmp_path / "run", n=1)
    assert main(["export", str(folder.path), "--arch", "conv_k3|nonsense"]) == 2
    assert "not an architecture of the 'mnas' space" in error_line(capsys)
    assert main(["export", str(folder.path), "--arch", "x", "--top", "2"]) == 2
    assert "not both" in error_line(capsys)
    for bad in ("0", "-1"):
        assert main(["export", str(folder.path), "--top", bad]) == 2
        assert f"--top must be a positive integer, got {bad}" in error_line(capsys)
    with pytest.raises(SystemExit) as exc:  # not a number: argparse's usage error
        main(["export", str(folder.path), "--top", "two"])
    assert exc.value.code == 2 and "--top" in capsys.readouterr().err
    assert main(["export", str(folder.path), "--weights", "w.pt", "--width", "2"]) == 2
    assert "--weights fixes the network" in error_line(capsys)
    assert main(["export", str(folder.path), "--weights", str(tmp_path / "none.pt")]) == 2
    assert "does not exist" in error_line(capsys)
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    assert main(["export", str(folder.path), "--weights", str(tmp_path / "junk.pt")]) == 2
    assert "not a weights file" in error_line(capsys)


def test_parse_architecture_finds_the_space():
    text = get_space("nb201").example_string()
    assert parse_architecture(text).space == "nb201"
    with pytest.raises(ValueError, match="no search space"):
        parse_architecture("not an architecture")


def test_module_entry_point_exit_status_without_traceback(tmp_path):
    RunFolder(tmp_path).save_settings(RunSettings(env_id="FNAS-MNAS-v0", env_kwargs=MNAS_KWARGS))
    done = subprocess.run(
        [sys.executable, "-m", "fnas_env", "export", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert "fnas export: error:" in done.stderr and "no activated architecture" in done.stderr
