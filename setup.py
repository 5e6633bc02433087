"""FNAS: fast RL-based neural architecture search (Gymnasium + Stable-Baselines3)."""

from setuptools import find_packages, setup

setup(
    name="fnas",
    version="0.1.0",
    description="FNAS: RL-based neural architecture search with UAC, AKP and AEB, "
    "as Gymnasium environments and Stable-Baselines3 agents",
    long_description=open("README.md").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["fnas_env*", "agents*", "wrappers*"]),
    package_data={"fnas_env": ["py.typed"]},
    entry_points={"console_scripts": ["fnas = fnas_env.cli:main"]},
    install_requires=[
        "gymnasium>=1.0,<2",
        # agents/ overrides private members of RecurrentPPO, its rollout buffer and
        # VecEnv (tests/test_sb3_internals.py names them): the tested minor release only
        "stable-baselines3>=2.9,<2.10",
        "sb3-contrib>=2.9,<2.10",
        # torch/torchvision are pinned by the README/.ci install step first
        # (local wheels); these ranges are satisfied by them and pull nothing.
        "torch>=2.4",
        "torchvision>=0.19",
        "numpy>=1.24",
        "scipy>=1.10",
        "scikit-learn>=1.3",
        "tensorboard>=2.14",
        "safetensors>=0.4",
        "tqdm",
        "rich",
        "matplotlib>=3.7",  # fnas report
    ],
    extras_require={
        # parallel evaluation on Ray (fnas_env.ray_vec_env.RayVecEnv)
        "ray": ["ray>=2.9"],
        # ONNX files beside the TorchScript module (fnas export)
        "export": ["onnx>=1.16", "onnxscript>=0.2"],
        # rl-baselines3-zoo (python -m rl_zoo3.train --gym-packages fnas_env ...)
        "zoo": ["rl_zoo3>=2.4"],
        # the test suite starts a local Ray, exports ONNX and runs the zoo: the dev
        # tools include those extras
        "dev": [
            "pytest>=8",
            "ruff>=0.6",
            "ray>=2.9",
            "onnx>=1.16",
            "onnxscript>=0.2",
            "rl_zoo3>=2.4",
        ],
    },
)
