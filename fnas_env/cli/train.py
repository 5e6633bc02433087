"""``fnas train``: train a found architecture fully, resumably, and export it."""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path
from typing import Any

from fnas_env.cli import CLIError

EPILOG = """\
The architecture: the run's best by reward (--rank N for the N-th, --by front for
the accuracy/latency front), or --arch. The dataset: the search's (FNAS-MNAS-v0:
its dataset and class subset; NAS-Bench-201: cifar10/cifar100; NAS-Bench-Macro:
cifar10), or --dataset. Without RUN, give --arch and --dataset.

The network is the search's at full width (--width 1.0): FNAS-MNAS-v0's proxy
network for the dataset's channels, classes and resolution; the benchmark's own
network for table runs. Training: SGD with Nesterov momentum and a cosine schedule
(TrainConfig), BatchNorm statistics recalibrated before the final validation.

The out folder (default RUN/train/NAME, or ./train_NAME without RUN) receives
  checkpoint.pt  after every epoch (written atomically); running the same command
                 again continues from the last completed epoch and ends with the
                 same weights and accuracy as an uninterrupted run
  weights.pt     the trained network ('fnas export RUN --weights ...')
  result.json    accuracies, latency, params, MACs, per-epoch history
  export/        the trained network as .pt2 / .onnx / .json (as 'fnas export')
The accuracy is measured on a validation split held out of the training images;
for mnist, fashion_mnist, cifar10 and cifar100 the official test split is
reported too (when its files are there).

examples:
  fnas train runs/digits                            # best architecture, 30 epochs
  fnas train runs/digits --rank 2 --epochs 50 --device cuda
  fnas train runs/digits --dataset cifar10 --data-root ~/data --download
  fnas train --arch 'mb6_k3_se0_id_x1_l+0|...' --dataset data/flowers --out flowers
  fnas train runs/nb201 --epochs 200 --batch-size 96 --learning-rate 0.1
"""

#: the dataset each table env's networks are trained on by default
TABLE_DATASETS = {"FNAS-Macro-v0": "cifar10"}


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a found architecture fully (resumable) and export it",
        description="Train an architecture of a search fully on a dataset, with "
        "checkpoints that resume, then export the trained network.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "run_dir",
        nargs="?",
        metavar="RUN",
        help="the search's run folder (optional with --arch and --dataset)",
    )
    pick = p.add_argument_group("which architecture")
    pick.add_argument("--arch", metavar="STRING", help="this architecture string")
    pick.add_argument("--rank", type=int, default=1, metavar="N", help="the run's N-th best")
    pick.add_argument(
        "--by", choices=("reward", "front"), default="reward", help="ranking (default reward)"
    )
    data = p.add_argument_group("the data")
    data.add_argument(
        "--dataset",
        metavar="NAME_OR_IMAGEFOLDER",
        help="digits, mnist, fashion_mnist, cifar10, cifar100 or an ImageFolder path "
        "(default: the search's)",
    )
    data.add_argument("--data-root", metavar="DIR", help="folder of torchvision datasets")
    data.add_argument(
        "--download", action="store_true", help="let torchvision download a missing dataset"
    )
    data.add_argument("--resolution", type=int, help="resize images to this side length")
    train = p.add_argument_group("training")
    train.add_argument("--epochs", type=int, default=30, help="epochs (default 30)")
    train.add_argument("--batch-size", type=int, default=64, help="batch size (default 64)")
    train.add_argument(
        "--learning-rate",
        "--lr",
        type=float,
        default=0.05,
        help="peak SGD learning rate (0.05)",
    )
    train.add_argument("--width", type=float, default=1.0, help="channel multiplier (1.0)")
    train.add_argument(
        "--device", default="auto", help="auto (default: cuda when available), cpu, cuda, cuda:N"
    )
    train.add_argument("--seed", type=int, help="split, initialisation, shuffling (run's seed)")
    p.add_argument("--out", metavar="DIR", help="training folder (default RUN/train/NAME)")
    p.add_argument("--no-progress-bar", action="store_true", help="no progress bar")
    p.add_argument("--no-onnx", action="store_true", help="export no ONNX file")
    p.set_defaults(run=run)


def _check_numbers(args: argparse.Namespace) -> None:
    if args.epochs < 1:
        raise CLIError(f"--epochs must be at least 1, got {args.epochs}")
    if args.batch_size < 1:
        raise CLIError(f"--batch-size must be at least 1, got {args.batch_size}")
    if not (args.learning_rate > 0 and math.isfinite(args.learning_rate)):
        raise CLIError(f"--learning-rate must be a positive number, got {args.learning_rate}")
    if not (args.width > 0 and math.isfinite(args.width)):
        raise CLIError(f"--width must be a positive number, got {args.width}")
    if args.resolution is not None and args.resolution < 1:
        raise CLIError(f"--resolution must be a positive integer, got {args.resolution}")
    if args.rank < 1:
        raise CLIError(f"--rank must be a positive integer, got {args.rank}")


def _pick(args: argparse.Namespace) -> tuple[Any, Any, Any, Any, dict[str, Any]]:
    """(run folder or None, settings or None, architecture, record entry, data kwargs)."""
    from fnas_env.export import find_entry, parse_architecture, space_of
    from fnas_env.run import RunFolder

    if args.run_dir is None:
        if not (args.arch and args.dataset):
            raise CLIError("give a run folder, or --arch and --dataset")
        return None, None, parse_architecture(args.arch), None, {}
    folder = RunFolder(args.run_dir)
    settings = folder.settings()
    space = space_of(settings)
    if args.arch:
        arch = parse_architecture(args.arch, space)
        entry = find_entry(folder, arch)
    else:
        ranked = folder.top(args.rank, by=args.by)
        if len(ranked) < args.rank:
            raise CLIError(
                f"--rank {args.rank}: the run has {len(ranked)} architecture(s) ranked by {args.by}"
            )
        entry = ranked[args.rank - 1]
        arch = entry.architecture
    kwargs = settings.env_kwargs
    data: dict[str, Any] = {}
    if args.dataset is None:
        if settings.env_id == "FNAS-MNAS-v0":
            data["dataset"] = kwargs.get("dataset", "digits")
            data["classes"] = kwargs.get("classes")
            data["resolution"] = kwargs.get("resolution")
            data["root"] = kwargs.get("data_root")
        elif settings.env_id == "FNAS-NB201-v0" and kwargs.get("dataset", "cifar10") in (
            "cifar10",
            "cifar100",
        ):
            data["dataset"] = kwargs.get("dataset", "cifar10")
        elif settings.env_id in TABLE_DATASETS:
            data["dataset"] = TABLE_DATASETS[settings.env_id]
        else:
            raise CLIError(
                f"the search's dataset ({settings.env_id}: "
                f"{kwargs.get('dataset', 'ImageNet')}) is not one fnas train loads: "
                "give --dataset (a torchvision name or an ImageFolder path)"
            )
    return folder, settings, arch, entry, data


def run(args: argparse.Namespace) -> int:
    """Train the architecture ``args`` name; prints progress and the results."""
    _check_numbers(args)
    from fnas_env.export import arch_name, network_config
    from fnas_env.full_training import CHECKPOINT_FILE, train_architecture
    from fnas_env.spaces import get_space
    from fnas_env.training import (
        DatasetNotFound,
        TrainConfig,
        has_test_split,
        load_dataset,
        load_test_split,
        read_checkpoint,
        resolve_device,
    )

    device = resolve_device(args.device)  # a bad device fails before anything is loaded
    folder, settings, arch, entry, data_kwargs = _pick(args)
    dataset = args.dataset or data_kwargs.get("dataset")
    root = args.data_root or data_kwargs.get("root")
    resolution = args.resolution or data_kwargs.get("resolution")
    seed = args.seed if args.seed is not None else (settings.seed if settings else 0)
    try:
        data = load_dataset(
            dataset,
            root=root,
            download=args.download,
            resolution=resolution,
            classes=data_kwargs.get("classes"),
            seed=seed,
        )
    except (FileNotFoundError, PermissionError):
        raise
    except OSError as err:  # an unreadable image file, a failed download
        raise CLIError(f"cannot read dataset {str(dataset)!r}: {err}") from None
    test_split, test_note = None, f"{data.name} has no official test split"
    if has_test_split(dataset):
        try:
            test_split = load_test_split(dataset, data, root=root, download=args.download)
            test_note = ""
        except DatasetNotFound as err:
            test_note = f"no test split: {err}"
    config = network_config(settings, space=arch.space, data=data, width=args.width)
    train_config = TrainConfig(
        epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.learning_rate, seed=seed
    )
    name = arch_name(arch)
    if args.out:
        out = Path(args.out)
    elif folder is not None:
        out = folder.path / "train" / name
    else:
        out = Path(f"train_{name}")

    text = get_space(arch.space).to_string(arch)
    print(f"training {text}")
    print(
        f"  on {data.name} ({data.num_train} training, {data.num_val} validation images, "
        f"{data.num_classes} classes, {data.resolution}x{data.resolution}), "
        f"width {config.width_mult}, {args.epochs} epochs, batch {args.batch_size}, "
        f"learning rate {args.learning_rate}, {device}, into {out}"
    )
    checkpoint = out / CHECKPOINT_FILE
    done = 0
    if checkpoint.is_file():
        done = int(read_checkpoint(checkpoint)["state"]["epoch"])
        print(f"  resuming from {checkpoint}: {done} epoch(s) done")

    bar: Any = None
    on_step = on_epoch = None
    if not args.no_progress_bar:
        from tqdm.auto import tqdm

        def on_step(step: int, total: int) -> None:
            nonlocal bar
            if bar is None:
                bar = tqdm(
                    total=total,
                    initial=step - 1,
                    unit="step",
                    desc=f"epoch {min(done + 1, args.epochs)}/{args.epochs}",
                    dynamic_ncols=True,
                )
            bar.update(1)

        def on_epoch(stats: Any) -> None:
            if bar is not None:
                bar.set_description(f"epoch {min(stats.epoch + 1, stats.epochs)}/{stats.epochs}")
                accuracy = "-" if stats.accuracy is None else f"{stats.accuracy:.2f}%"
                bar.set_postfix(loss=f"{stats.loss:.4f}", val_acc=accuracy)

    started = time.perf_counter()
    try:
        outcome = train_architecture(
            arch,
            data,
            config,
            out,
            train_config=train_config,
            device=str(device),
            test_split=test_split,
            record=entry,
            run=str(folder.path) if folder is not None else None,
            onnx=not args.no_onnx,
            on_epoch=on_epoch,
            on_step=on_step,
        )
    finally:
        if bar is not None:
            bar.close()
    result = outcome.result
    print(
        f"trained {len(result.history)} epoch(s)"
        + (f" (resumed after {result.resumed_epoch})" if result.resumed_epoch else "")
        + f" in {time.perf_counter() - started:.1f} s; final training loss {result.final_loss:.4f}"
    )
    print(
        f"validation accuracy {outcome.accuracy:.2f}% ({data.num_val} images held out of "
        "the training split)"
    )
    if outcome.test_accuracy is not None:
        print(f"test accuracy {outcome.test_accuracy:.2f}% (official test split)")
    elif test_note:
        print(f"  note: {test_note}; the validation accuracy is the held-out figure")
    meta = outcome.export.metadata
    latency = "-" if outcome.latency is None else f"{outcome.latency:.3f} ms"
    print(
        f"latency {latency} (batch 1, CPU, this machine); params {meta['params'] / 1e6:.3f}M, "
        f"MACs {meta['macs'] / 1e6:.2f}M"
    )
    print(f"wrote {outcome.paths['result']}, {outcome.paths['weights']}")
    print(
        "exported " + ", ".join(str(p) for k, p in outcome.paths.items() if k.startswith("export_"))
    )
    for note in outcome.export.notes:
        print(f"  note: {note}")
    return 0
