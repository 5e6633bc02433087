"""``fnas export``: a search's best architectures as files that load without this project."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from fnas_env.cli import CLIError, positive_int

EPILOG = """\
Each architecture becomes three files in the out folder (default RUN/export/):
  NAME.pt2   a torch.export program (dynamic batch, inference mode); load it with
             plain torch:  torch.export.load("NAME.pt2").module()(images)
  NAME.onnx  the same network as ONNX (skipped with a note when onnx/onnxscript is
             missing or the exporter cannot handle it)
  NAME.json  architecture string, space, network config, params, MACs, batch-1 CPU
             latency measured on this machine, the search's reward and accuracy

Without --weights the network is freshly initialised (the architecture, to be
trained: see 'fnas train'); with --weights it carries the trained weights.

The network: FNAS-MNAS-v0 runs use the search's proxy network (its dataset's
channels, classes and resolution, its width); NAS-Bench-201, NAS-Bench-Macro and
Accel-NASBench runs use their benchmark's own network (see fnas_env.export).

examples:
  fnas export runs/digits                     # the best architecture by reward
  fnas export runs/digits --top 3 --by front  # 3 best on the accuracy/latency front
  fnas export runs/digits --arch 'mb6_k3_se0_id_x1_l+0|...' --width 1.0
  fnas export runs/digits --weights runs/digits/train/mnas_1a2b3c4d/weights.pt
  fnas export runs/nb201 --top 5 --no-onnx --out models/nb201
"""


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="export a search's best architectures (torch.export .pt2, ONNX, JSON)",
        description="Export the best (or top-k) architectures of a search's run folder "
        "as PyTorch programs that load without this project, ONNX files and JSON "
        "descriptions.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("run_dir", metavar="RUN", help="the search's run folder (has search.json)")
    pick = p.add_argument_group("which architectures")
    pick.add_argument(
        "--top", type=int, default=None, metavar="K", help="export the K best (default 1)"
    )
    pick.add_argument(
        "--by",
        choices=("reward", "front"),
        default="reward",
        help="rank by recorded reward (default) or take the accuracy/latency front",
    )
    pick.add_argument("--arch", metavar="STRING", help="export this architecture string instead")
    pick.add_argument(
        "--weights",
        metavar="CHECKPOINT",
        help="export trained weights (weights.pt or checkpoint.pt written by 'fnas train')",
    )
    net = p.add_argument_group("the network (default: the search's)")
    net.add_argument("--dataset", help="another dataset's channels/classes/resolution")
    net.add_argument("--width", type=_positive_float, help="channel multiplier")
    net.add_argument("--resolution", type=positive_int, help="input side length in pixels")
    p.add_argument("--out", metavar="DIR", help="output folder (default RUN/export)")
    p.add_argument("--no-onnx", action="store_true", help="write no ONNX files")
    p.set_defaults(run=run)


def _fmt(value: float | None, spec: str, unit: str = "") -> str:
    return "-" if value is None else f"{value:{spec}}{unit}"


def run(args: argparse.Namespace) -> int:
    """Export the architectures ``args`` name; prints one summary per architecture."""
    from fnas_env.export import (
        arch_name,
        export_architecture,
        find_entry,
        network_config,
        parse_architecture,
        space_of,
    )
    from fnas_env.full_training import load_weights
    from fnas_env.run import RunFolder

    folder = RunFolder(args.run_dir)
    settings = folder.settings()  # not a run folder: a clear FileNotFoundError
    space = space_of(settings)
    out = Path(args.out) if args.out else folder.path / "export"
    if args.arch and args.top is not None:
        raise CLIError("give --arch or --top, not both")
    if args.top is not None and args.top < 1:
        raise CLIError(f"--top must be a positive integer, got {args.top}")
    jobs = []  # (name, arch, entry, config, state_dict, extra)
    if args.weights:
        if args.arch or args.top is not None:
            raise CLIError(
                "--weights exports the architecture it was trained for: drop --arch/--top"
            )
        if args.dataset or args.width or args.resolution:
            raise CLIError(
                "--weights fixes the network it was trained as: drop --dataset/--width/--resolution"
            )
        weights = load_weights(args.weights)
        if weights.arch.space != space:
            raise CLIError(
                f"--weights holds a {weights.arch.space!r} network, the run searched {space!r}"
            )
        extra = {"training": {k: v for k, v in weights.meta.items() if k not in ("config",)}}
        name = f"trained_{arch_name(weights.arch)}"
        entry = find_entry(folder, weights.arch)
        jobs.append((name, weights.arch, entry, weights.config, weights.state_dict, extra))
    else:
        config = network_config(
            settings, dataset=args.dataset, width=args.width, resolution=args.resolution
        )
        if args.arch:
            arch = parse_architecture(args.arch, space)
            jobs.append((arch_name(arch), arch, find_entry(folder, arch), config, None, None))
        else:
            for rank, entry in enumerate(folder.top(args.top or 1, by=args.by), start=1):
                arch = entry.architecture
                jobs.append((f"top{rank}_{arch_name(arch)}", arch, entry, config, None, None))

    print(f"exporting {len(jobs)} architecture(s) of {folder.path} ({settings.env_id}) to {out}")
    for name, arch, entry, config, state_dict, extra in jobs:
        started = time.perf_counter()
        result = export_architecture(
            arch,
            config,
            out,
            name,
            state_dict=state_dict,
            seed=settings.seed,
            onnx=not args.no_onnx,
            record=entry,
            extra=extra,
        )
        meta = result.metadata
        record = meta["record"] or {}
        files = ", ".join(p.name for p in result.paths.values())
        print(
            f"{name}: {meta['arch']}\n"
            f"  reward {_fmt(record.get('reward'), '.4f')}"
            f"  accuracy {_fmt(record.get('accuracy'), '.2f', '%')}"
            f"  params {meta['params'] / 1e6:.3f}M  MACs {meta['macs'] / 1e6:.2f}M"
            f"  latency {_fmt(meta['latency_ms'], '.3f', ' ms')} (batch 1, CPU)"
            f"  weights {meta['weights']}\n"
            f"  wrote {files} in {time.perf_counter() - started:.1f} s"
        )
        for note in result.notes:
            print(f"  note: {note}")
    return 0
