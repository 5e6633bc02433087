"""``fnas search``: run, or resume, a search in a run folder."""

from __future__ import annotations

import argparse
from typing import Any

EXAMPLES = """\
examples:
  fnas search                                         # FNAS on FNAS-MNAS-v0, digits, 30 trainings
  fnas search --dataset data/flowers --target 5 --budget 200 --run-dir runs/flowers
                                                      # your ImageFolder, T = 5 ms
  fnas search --env FNAS-NB201-v0 --dataset cifar100 --method evolution --budget 300
  fnas search --env FNAS-ANB-v0 --env-kwarg device=vck190 --method mnas --budget 200
  fnas search --workers 4 --gpus-per-worker 0.25 --ray-address <head-ip>:6379
  fnas search --run-dir runs/flowers --budget 400     # resume that search, up to 400

A run folder that already holds a search resumes it: options you leave out are the
search's own; an option that contradicts them is an error (another search needs
another --run-dir). --budget counts activated (really evaluated) architectures over
all runs of the search; trusted architectures (rewarded by the critic), cached
repeats (served from the record) and AEB replays are free.
"""

#: what a new search uses for an option the user leaves out
DEFAULTS: dict[str, Any] = {"env": "FNAS-MNAS-v0", "method": "fnas", "budget": 30, "seed": 0}
#: CLI options that are env kwargs of the same name and define the search
SEARCH_KWARGS = ("dataset", "target", "constraint", "epochs")
#: env kwargs that change where or how it runs, not what it searches (not compared on resume)
RUNTIME_KWARGS = ("device", "data_root", "download")


def add_parser(sub: argparse._SubParsersAction) -> None:
    from agents.methods import METHODS

    p = sub.add_parser(
        "search",
        help="run or resume a search",
        description="Search architectures with FNAS or a baseline; everything lands in "
        "--run-dir (record.jsonl, search.json, tb/, pool/, critic.pt, aeb/).",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--env", help="env id (default FNAS-MNAS-v0; 'fnas envs' lists them)")
    p.add_argument(
        "--method",
        choices=list(METHODS),
        help="search method (default fnas): "
        + "; ".join(f"{name}: {what}" for name, what in METHODS.items()),
    )
    p.add_argument("--budget", type=int, help="activated architectures in all (default 30)")
    p.add_argument("--seed", type=int, help="seed of the search (default 0)")
    p.add_argument("--run-dir", help="run folder (default runs/<env>-<method>-seed<seed>)")
    env = p.add_argument_group("the env (FNAS-MNAS-v0 trains every candidate on --dataset)")
    env.add_argument("--dataset", help="digits (default), mnist, cifar10, ... or an ImageFolder")
    env.add_argument(
        "--target",
        help="latency target T: a positive number (ms), 'base' (MobileNetV2's latency, "
        "default on FNAS-MNAS-v0) or 'none' (accuracy only)",
    )
    env.add_argument("--constraint", choices=("soft", "hard"), help="reward form (default soft)")
    env.add_argument("--epochs", type=int, help="proxy-training epochs (default 3)")
    env.add_argument("--device", help="where candidates train: auto (default), cpu, cuda, cuda:N")
    env.add_argument("--data-root", help="folder of torchvision datasets")
    env.add_argument("--download", action="store_true", help="let torchvision download data")
    env.add_argument(
        "--env-kwarg",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any other gym.make option, value as JSON or text (repeatable)",
    )
    fnas = p.add_argument_group("FNAS modules and scale")
    fnas.add_argument("--pool", help="knowledge pool folder (default <run-dir>/pool; 'none': off)")
    fnas.add_argument(
        "--transfer-critic", help="critic.pt of a search on another task to start UAC from"
    )
    fnas.add_argument(
        "--uac-warmup", type=int, help="evaluations before UAC trusts (default: the gate's, 20)"
    )
    fnas.add_argument("--workers", type=int, default=1, help="architectures trained at once (Ray)")
    fnas.add_argument("--ray-address", help="Ray cluster to join (default: RAY_ADDRESS or local)")
    fnas.add_argument("--gpus-per-worker", type=float, default=0.0, help="GPUs per Ray worker")
    p.add_argument(
        "--progress-bar", action=argparse.BooleanOptionalAction, default=True, help="progress bar"
    )
    p.set_defaults(run=run)


def settings_from_args(args: argparse.Namespace) -> tuple[Any, Any, dict[str, Any]]:
    """The run folder, the search's settings and the runtime env kwargs the arguments ask for.

    Options left out take the run folder's search (when it has one), else :data:`DEFAULTS`.
    """
    from agents.runner import check_target, parse_env_kwarg
    from fnas_env.run import RunFolder, RunSettings

    asked_kwargs: dict[str, Any] = {}
    for name in SEARCH_KWARGS:
        value = getattr(args, name)
        if value is not None:
            asked_kwargs[name] = value
    for text in args.env_kwarg:
        key, value = parse_env_kwarg(text)
        asked_kwargs[key] = value
    if "target" in asked_kwargs:
        asked_kwargs["target"] = check_target(asked_kwargs["target"])
    if asked_kwargs.get("epochs") is not None and asked_kwargs["epochs"] < 1:
        raise ValueError(f"--epochs must be at least 1, got {asked_kwargs['epochs']}")
    runtime = {"device": args.device, "data_root": args.data_root}
    runtime = {k: v for k, v in runtime.items() if v is not None}
    if args.download:
        runtime["download"] = True
    for key in RUNTIME_KWARGS:  # --env-kwarg device=... is a runtime option too
        if key in asked_kwargs:
            runtime[key] = asked_kwargs.pop(key)

    asked = {"env": args.env, "method": args.method, "budget": args.budget, "seed": args.seed}
    if args.run_dir is None:
        filled = {k: v if v is not None else DEFAULTS[k] for k, v in asked.items()}
        short = filled["env"].removeprefix("FNAS-").removesuffix("-v0").lower()
        args.run_dir = f"runs/{short}-{filled['method']}-seed{filled['seed']}"
    run = RunFolder(args.run_dir)
    stored = run.settings() if run.has_settings() else None
    if stored is not None:
        base = {"env": stored.env_id, "method": stored.method, "seed": stored.seed}
        base["budget"] = stored.budget or DEFAULTS["budget"]
        env_kwargs = dict(stored.env_kwargs) if args.env in (None, stored.env_id) else {}
    else:
        base, env_kwargs = dict(DEFAULTS), {}
    chosen = {k: v if v is not None else base[k] for k, v in asked.items()}
    env_kwargs.update(asked_kwargs)

    options = dict(stored.options) if stored is not None else {}
    if args.pool is not None:
        options["pool"] = None if args.pool.lower() == "none" else args.pool
    if args.transfer_critic is not None:
        options["transfer_critic"] = args.transfer_critic
    if args.uac_warmup is not None:
        options["uac_warmup"] = args.uac_warmup
    settings = RunSettings(
        env_id=chosen["env"],
        env_kwargs=env_kwargs,
        method=chosen["method"],
        seed=chosen["seed"],
        budget=chosen["budget"],
        options=options,
    )
    return run, settings, runtime


def run(args: argparse.Namespace) -> int:
    import torch

    from agents.runner import check_search, run_in_folder, summary_lines

    run_folder, settings, runtime = settings_from_args(args)
    check_search(settings, args.workers, runtime)
    run_folder.check_same_search(settings)  # before anything is built or printed
    torch.set_num_threads(1)  # proxy networks and a 100-unit LSTM: one thread is fastest
    print(
        f"fnas search: {settings.env_id}, method {settings.method}, budget {settings.budget} "
        f"activated architectures, seed {settings.seed}, {args.workers} worker(s)"
    )
    print(f"run folder: {run_folder.path} (TensorBoard: tensorboard --logdir {run_folder.tb_dir})")
    outcome = run_in_folder(
        run_folder,
        settings,
        workers=args.workers,
        ray_address=args.ray_address,
        gpus_per_worker=args.gpus_per_worker,
        runtime_kwargs=runtime,
        progress_bar=args.progress_bar,
    )
    unit = None
    if outcome.settings.env_id == "FNAS-MNAS-v0":
        unit = "MMACs" if outcome.settings.env_kwargs.get("cost_model") == "macs" else "ms"
    for line in summary_lines(outcome, unit):
        print(line)
    print(f"next: fnas export {run_folder.path}   fnas report {run_folder.path}")
    return 0
