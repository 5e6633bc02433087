"""``fnas envs``: the registered envs, their spaces, sizes and the data each needs."""

from __future__ import annotations

import argparse
import json
from typing import Any

EXAMPLES = """\
examples:
  fnas envs           # a table
  fnas envs --json    # the same, for scripts
"""

#: per env id: what scores an architecture and the data it needs
CATALOG: dict[str, dict[str, str]] = {
    "FNAS-MNAS-v0": {
        "evaluator": "real proxy training (+ knowledge pool), latency from a per-layer table",
        "data": "none by default (digits ships with scikit-learn); torchvision datasets "
        "under --data-root (or --download), or an ImageFolder folder",
    },
    "FNAS-NB201-v0": {
        "evaluator": "NAS-Bench-201 table lookup (cifar10, cifar100, ImageNet16-120)",
        "data": "the NAS-Bench-201 table under FNAS_BENCHMARK_DIR",
    },
    "FNAS-Macro-v0": {
        "evaluator": "NAS-Bench-Macro table lookup (CIFAR-10)",
        "data": "the NAS-Bench-Macro table under FNAS_BENCHMARK_DIR",
    },
    "FNAS-ANB-v0": {
        "evaluator": "Accel-NASBench surrogate (ImageNet accuracy, device latency/throughput)",
        "data": "the Accel-NASBench archive under FNAS_BENCHMARK_DIR",
    },
}
#: factory arguments every env takes (listed once, not per env)
COMMON = ("one_shot", "record_path", "render_mode", "cache", "benchmark_dir")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "envs",
        help="list the registered envs",
        description="The FNAS envs: search space, number of architectures, observation and "
        "action spaces, what scores an architecture, the data it needs and its options.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(run=run)


def _benchmark_files() -> dict[str, str]:
    """The benchmark file each table env reads (relative to ``FNAS_BENCHMARK_DIR``)."""
    from fnas_env.evaluators.anb import ANB_FILE
    from fnas_env.evaluators.tabular import MACRO_FILE, NB201_FILE

    return {"FNAS-NB201-v0": NB201_FILE, "FNAS-Macro-v0": MACRO_FILE, "FNAS-ANB-v0": ANB_FILE}


def describe(env_id: str) -> dict[str, Any]:
    """What ``fnas envs`` prints about ``env_id`` (no env is built, no data is read)."""

    from fnas_env import ENV_SPACES
    from fnas_env.env import nas_spaces
    from fnas_env.envs import env_options
    from fnas_env.evaluators.base import default_benchmark_dir
    from fnas_env.spaces import get_space

    info = CATALOG[env_id]
    space = get_space(ENV_SPACES[env_id])
    observation, action = nas_spaces(space)
    _, one_shot_action = nas_spaces(space, one_shot=True)
    options = [p for p in env_options(env_id) if p not in COMMON]
    data_status = "bundled"
    relative = _benchmark_files().get(env_id)
    if relative is not None:
        base = default_benchmark_dir()
        found = base is not None and (base / relative).is_file()
        data_status = f"{relative}: {'found' if found else 'missing'}"
    return {
        "id": env_id,
        "space": space.name,
        "decisions": space.num_decisions,
        "architectures": space.size,
        "observation_space": str(observation),
        "action_space": str(action),
        "one_shot_action_space": (
            f"MultiDiscrete({len(one_shot_action.nvec)} decisions of "
            f"{min(one_shot_action.nvec)}-{max(one_shot_action.nvec)} choices)"
        ),
        "evaluator": info["evaluator"],
        "data": info["data"],
        "data_status": data_status,
        "options": options,
    }


def run(args: argparse.Namespace) -> int:
    import fnas_env  # noqa: F401 - registers the ids

    rows = [describe(env_id) for env_id in CATALOG]
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    for row in rows:
        print(row["id"])
        print(
            f"  space         {row['space']}: {row['decisions']} decisions, "
            f"{row['architectures']:.4g} architectures"
        )
        print(
            f"  sequential    observation {row['observation_space']}, "
            f"action {row['action_space']} (one token per step)"
        )
        print(f"  one_shot=True action {row['one_shot_action_space']} (one architecture)")
        print(f"  evaluator     {row['evaluator']}")
        print(f"  data          {row['data']} [{row['data_status']}]")
        print(f"  options       {', '.join(row['options']) or '(none)'}")
    print(
        "every env also takes one_shot, record_path, cache and render_mode; "
        "'fnas search --env ID --env-kwarg KEY=VALUE' passes any option"
    )
    return 0
