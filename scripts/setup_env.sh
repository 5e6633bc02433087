#!/usr/bin/env bash
# Create .venv with the project and its dev tools. torch/torchvision are pinned
# first (local wheels on the project machines); the package's ranges then pull
# nothing else for them.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip
.venv/bin/pip install -q torch==2.14.1 torchvision==0.29.1
.venv/bin/pip install -q -e ".[dev]"
