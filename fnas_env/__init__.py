"""FNAS: fast RL-based neural architecture search as Gymnasium environments.

Importing the package registers ``FNAS-NB201-v0``, ``FNAS-Macro-v0``,
``FNAS-ANB-v0`` and ``FNAS-MNAS-v0``; in ``SubprocVecEnv`` workers use the
``"fnas_env:FNAS-NB201-v0"`` form, which imports the package first.
"""

from __future__ import annotations

from gymnasium.envs.registration import register, registry

from fnas_env.arch import Architecture
from fnas_env.spaces import get_space

__all__ = ["Architecture", "get_space", "ENV_SPACES"]
__version__ = "0.1.0"

_ENVS = {
    "FNAS-NB201-v0": "fnas_env.envs:make_nb201_env",
    "FNAS-Macro-v0": "fnas_env.envs:make_macro_env",
    "FNAS-ANB-v0": "fnas_env.envs:make_anb_env",
    "FNAS-MNAS-v0": "fnas_env.envs:make_mnas_env",
}
#: the search space of each registered env
ENV_SPACES = {
    "FNAS-NB201-v0": "nb201",
    "FNAS-Macro-v0": "macro",
    "FNAS-ANB-v0": "anb",
    "FNAS-MNAS-v0": "mnas",
}
for _id, _entry in _ENVS.items():
    if _id not in registry:
        register(id=_id, entry_point=_entry, disable_env_checker=False)
