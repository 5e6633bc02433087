"""Accel-NASBench surrogate: gradient-boosted trees fitted on upstream's data.

Accel-NASBench (Ahmad et al., 2024) trained 5,138 architectures of its MnasNet
space on ImageNet-1k with a proxified schedule and measured them on six
accelerators. The space holds about 7.8e10 architectures, so an environment needs
a surrogate: as upstream (XGBoost ensembles), we fit gradient-boosted trees
(scikit-learn's :class:`~sklearn.ensemble.HistGradientBoostingRegressor`) on the
one-hot embedding of :class:`~fnas_env.spaces.AnbSpace`, one model per target:

- ``accuracy``: ``metrics.val_top1`` (%);
- ``latency_<device>`` (ms; zcu102, vck190) or ``throughput_<device>``
  (images/s; a100, 3090, tpuv2, tpuv3): ``platform_perf``'s mean measurement;
- ``train_time``: ``metrics.train_time`` (s), reported as the evaluation's cost;
- ``macs`` and ``params`` (millions): ``model_info``.

Records with a null measurement are dropped from that target's fit only.

Cache format: one ``.npz`` file per target under ``<cache_dir>/anb/`` (``cache_dir``,
else ``$FNAS_CACHE_DIR``, else ``~/.cache/fnas``), named
``anb-v{CACHE_FORMAT}-{target}-seed{seed}-{archive sha256[:16]}-sklearn{version}.npz``.
It holds the fitted trees as flat arrays (:class:`TreeEnsemble`: ``roots``,
``feature``, ``threshold``, ``left``, ``right``, ``value``, ``is_leaf``,
``baseline``, ``depth``), ``transform`` (``identity``, or ``reciprocal``: the
trees predict ``1000 / value``), ``median`` (the target's median over upstream's data:
the device's default target), ``n_train`` and ``key`` (JSON of format, target,
seed, archive hash and scikit-learn version). Files are written atomically
(temporary file, then rename) and read with ``allow_pickle=False``: no pickle is
ever loaded. A file that cannot be read or whose key does not match is refitted
and rewritten.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import io
import json
import os
import tarfile
import tempfile
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from fnas_env.arch import Architecture
from fnas_env.evaluators.base import Evaluation, Evaluator, find_benchmark_file
from fnas_env.spaces import get_space

__all__ = [
    "AnbSurrogateEvaluator",
    "AnbDataset",
    "ANB_DEVICES",
    "ANB_FILE",
    "ANB_UPSTREAM",
    "load_anb_dataset",
    "make_regressor",
    "fit_target",
    "FittedTarget",
    "TreeEnsemble",
    "target_transform",
    "measure_target",
]

ANB_FILE = "accel-nasbench/anb_dataset_jsons.tar.gz"
ANB_UPSTREAM = (
    "https://github.com/afzalxo/Accel-NASBench (file anb_dataset/anb_dataset_jsons.tar.gz)"
)
#: device -> the measure the reward uses ("latency" lower is better, else "throughput").
ANB_DEVICES: dict[str, str] = {
    "zcu102": "latency",
    "vck190": "latency",
    "a100": "throughput",
    "3090": "throughput",
    "tpuv2": "throughput",
    "tpuv3": "throughput",
}
#: bump when the regressors' settings change, so old cache files are not reused.
CACHE_FORMAT = 2


def measure_target(device: str) -> str:
    """Target name of ``device``'s measure (``"latency_zcu102"``, ``"throughput_a100"``)."""
    if device not in ANB_DEVICES:
        raise ValueError(
            f"unknown Accel-NASBench device {device!r}; accepted devices: {list(ANB_DEVICES)} "
            "(zcu102/vck190 report latency in ms, the others throughput in images/s)"
        )
    return f"{ANB_DEVICES[device]}_{device}"


@dataclass(frozen=True)
class AnbDataset:
    """Upstream's records as arrays.

    ``features`` is the one-hot embedding (``N x D`` float32) of ``archs``;
    ``targets`` maps a target name (``accuracy``, ``train_time``, ``macs``,
    ``params``, ``latency_<device>``, ``throughput_<device>``) to ``N`` floats,
    NaN where upstream's value is null. ``sha256`` identifies the archive.
    """

    archs: tuple[Architecture, ...]
    features: np.ndarray
    targets: dict[str, np.ndarray]
    sha256: str

    def __len__(self) -> int:
        return len(self.archs)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _float(value) -> float:
    return float("nan") if value is None else float(value)


@lru_cache(maxsize=2)
def _load(path: str, sha256: str) -> AnbDataset:
    space = get_space("anb")
    archs: list[Architecture] = []
    columns: dict[str, list[float]] = {}
    with tarfile.open(path, "r:gz") as tar:
        for member in tar:
            if not (member.isfile() and member.name.endswith(".json")):
                continue
            record = json.load(io.TextIOWrapper(tar.extractfile(member), encoding="utf-8"))
            archs.append(space.from_upstream(record["architecture"]))
            values = {
                "accuracy": record["metrics"]["val_top1"],
                "train_time": record["metrics"]["train_time"],
                "macs": record["model_info"]["macs"],
                "params": record["model_info"]["params"],
            }
            perf = record["platform_perf"]
            for device, objective in ANB_DEVICES.items():
                name = f"{objective}_{device}"
                values[name] = (perf.get(name) or {}).get(f"{objective}_mean")
            for name, value in values.items():
                columns.setdefault(name, []).append(_float(value))
    if not archs:
        raise ValueError(f"{path} holds no result_*.json records; is it upstream's archive?")
    features = np.stack([space.one_hot(a) for a in archs])
    targets = {k: np.asarray(v, dtype=np.float64) for k, v in columns.items()}
    return AnbDataset(tuple(archs), features, targets, sha256)


def load_anb_dataset(path: str | os.PathLike) -> AnbDataset:
    """Read upstream's ``anb_dataset_jsons.tar.gz`` in memory (nothing is extracted)."""
    path = Path(path)
    return _load(str(path), _sha256(path))


def make_regressor(target: str, seed: int = 0):
    """The gradient-boosted trees for ``target`` (chosen by held-out Kendall tau).

    Depth-3 trees with half the features per split; the seed picks the feature
    subsets, so different seeds give different (equally good) surrogates.
    Accuracy and device measures get 1,000 rounds, the other targets 300.
    """
    from sklearn.ensemble import HistGradientBoostingRegressor

    main = target == "accuracy" or target.startswith(("latency_", "throughput_"))
    return HistGradientBoostingRegressor(
        max_iter=1000 if main else 300,
        learning_rate=0.1 if main else 0.2,
        max_depth=3,
        max_features=0.5,
        early_stopping=False,
        random_state=seed,
    )


class TreeEnsemble:
    """A fitted tree ensemble as flat arrays, predicted with vectorised numpy.

    ``sum over trees of leaf value + baseline``; node ``i`` of the concatenated
    trees tests ``x[feature[i]] <= threshold[i]`` (left) unless ``is_leaf[i]``.
    Predicting one architecture takes microseconds (scikit-learn's predict walks
    trees one Python call each: tens of milliseconds for 1,000 trees), and the
    arrays save to ``.npz`` without pickle.
    """

    FIELDS = ("roots", "feature", "threshold", "left", "right", "value", "is_leaf")

    def __init__(self, baseline: float, depth: int, **arrays: np.ndarray):
        self.baseline = float(baseline)
        self.depth = int(depth)
        for name in self.FIELDS:
            setattr(self, name, np.asarray(arrays[name]))

    @classmethod
    def from_sklearn(cls, model) -> TreeEnsemble:
        """Flatten a fitted ``HistGradientBoostingRegressor`` (single output, numeric)."""
        trees = [p.nodes for (p,) in model._predictors]
        sizes = np.array([len(t) for t in trees])
        offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        nodes = np.concatenate(trees)
        shift = np.repeat(offsets, sizes)
        if nodes["is_categorical"].any():
            raise ValueError("categorical splits are not supported")
        return cls(
            baseline=float(np.ravel(model._baseline_prediction)[0]),
            depth=int(nodes["depth"].max()),
            roots=offsets.astype(np.int64),
            feature=nodes["feature_idx"].astype(np.int64),
            threshold=nodes["num_threshold"].astype(np.float64),
            left=(nodes["left"].astype(np.int64) + shift),
            right=(nodes["right"].astype(np.int64) + shift),
            value=nodes["value"].astype(np.float64),
            is_leaf=nodes["is_leaf"].astype(bool),
        )

    def predict(self, x: np.ndarray, chunk: int = 256) -> np.ndarray:
        """Predictions for the rows of ``x`` (``chunk`` rows at a time bound memory)."""
        x = np.asarray(x, dtype=np.float64)
        if len(x) > chunk:
            return np.concatenate([self.predict(x[i : i + chunk]) for i in range(0, len(x), chunk)])
        node = np.broadcast_to(self.roots, (len(x), len(self.roots))).copy()
        rows = np.arange(len(x))[:, None]
        for _ in range(self.depth):
            go_left = x[rows, self.feature[node]] <= self.threshold[node]
            child = np.where(go_left, self.left[node], self.right[node])
            node = np.where(self.is_leaf[node], node, child)
        return self.baseline + self.value[node].sum(axis=1)

    def arrays(self) -> dict[str, np.ndarray]:
        out = {name: getattr(self, name) for name in self.FIELDS}
        out["baseline"] = np.float64(self.baseline)
        out["depth"] = np.int64(self.depth)
        return out

    @classmethod
    def from_arrays(cls, arrays) -> TreeEnsemble:
        return cls(
            baseline=float(arrays["baseline"]),
            depth=int(arrays["depth"]),
            **{name: arrays[name] for name in cls.FIELDS},
        )


def target_transform(target: str) -> str:
    """How ``target`` is fitted: ``"reciprocal"`` for throughput, else ``"identity"``.

    Throughput is fitted as time per image (``1000 / throughput``, ms), which adds
    up over blocks as latency does: held-out Kendall tau on A100 goes from 0.946
    to 0.983 (``benchmarks/anb_surrogate.py``).
    """
    return "reciprocal" if target.startswith("throughput_") else "identity"


@dataclass(frozen=True)
class FittedTarget:
    """One fitted target: trees, how they were fitted, and the data's median."""

    target: str
    model: TreeEnsemble
    transform: str
    median: float
    n_train: int

    def predict(self, x: np.ndarray) -> np.ndarray:
        raw = self.model.predict(x)
        if self.transform == "reciprocal":
            return 1e3 / np.maximum(raw, 1e-9)
        return raw


def fit_target(
    dataset: AnbDataset, target: str, seed: int = 0, rows: np.ndarray | None = None
) -> FittedTarget:
    """Fit ``target`` on ``rows`` of ``dataset`` (all by default), skipping null values."""
    from threadpoolctl import threadpool_limits

    y = dataset.targets[target]
    rows = np.arange(len(dataset)) if rows is None else np.asarray(rows)
    rows = rows[np.isfinite(y[rows])]
    transform = target_transform(target)
    y_fit = 1e3 / y[rows] if transform == "reciprocal" else y[rows]
    # One OpenMP thread: on a loaded machine (vectorised envs, parallel jobs)
    # oversubscribed OpenMP makes the fit orders of magnitude slower. The
    # regressor is made first: threadpoolctl limits only libraries already loaded.
    regressor = make_regressor(target, seed)
    with threadpool_limits(limits=1, user_api="openmp"):
        model = regressor.fit(dataset.features[rows], y_fit)
        ensemble = TreeEnsemble.from_sklearn(model)
        check = dataset.features[rows[:256]]
        agree = np.allclose(ensemble.predict(check), model.predict(check), rtol=1e-9, atol=1e-9)
    if not agree:
        raise RuntimeError(
            "flattened trees disagree with scikit-learn "
            f"{importlib.metadata.version('scikit-learn')}'s predictions; please report it"
        )
    return FittedTarget(target, ensemble, transform, float(np.median(y[rows])), int(len(rows)))


def default_cache_dir() -> Path:
    """``$FNAS_CACHE_DIR`` or ``~/.cache/fnas``."""
    env = os.environ.get("FNAS_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "fnas"


_MEMORY: dict[tuple, FittedTarget] = {}


def _fitted(
    archive: Path, sha256: str, target: str, seed: int, cache_dir: Path | None
) -> FittedTarget:
    """Fitted ``target`` from memory, the cache folder, or a new fit (then cached)."""
    sklearn_version = importlib.metadata.version("scikit-learn")
    key = {
        "format": CACHE_FORMAT,
        "target": target,
        "seed": seed,
        "sha256": sha256,
        "sklearn": sklearn_version,
    }
    mem_key = tuple(key.values())
    if mem_key in _MEMORY:
        return _MEMORY[mem_key]
    file = None
    if cache_dir is not None:
        name = f"anb-v{CACHE_FORMAT}-{target}-seed{seed}-{sha256[:16]}-sklearn{sklearn_version}"
        file = cache_dir / "anb" / f"{name}.npz"
        if file.is_file():
            try:
                with np.load(file, allow_pickle=False) as data:
                    if json.loads(str(data["key"])) == key:
                        fitted = FittedTarget(
                            target,
                            TreeEnsemble.from_arrays(data),
                            str(data["transform"]),
                            float(data["median"]),
                            int(data["n_train"]),
                        )
                        _MEMORY[mem_key] = fitted
                        return fitted
            except (OSError, ValueError, KeyError):
                pass  # unreadable or stale: refit below and overwrite
    fitted = fit_target(_load(str(archive), sha256), target, seed)
    if file is not None:
        try:
            file.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=file.parent, prefix=".tmp-", suffix=".npz")
            with os.fdopen(fd, "wb") as f:
                np.savez(
                    f,
                    key=np.str_(json.dumps(key)),
                    transform=np.str_(fitted.transform),
                    median=np.float64(fitted.median),
                    n_train=np.int64(fitted.n_train),
                    **fitted.model.arrays(),
                )
            os.replace(tmp, file)
        except OSError as exc:
            warnings.warn(
                f"cannot write the surrogate cache {file}: {exc}", RuntimeWarning, stacklevel=3
            )
    _MEMORY[mem_key] = fitted
    return fitted


class AnbSurrogateEvaluator(Evaluator):
    """Accel-NASBench surrogate for one device (space ``anb``).

    Predicts ImageNet top-1 accuracy (%), the device's latency (ms, zcu102 and
    vck190) or throughput (images/s, a100, 3090, tpuv2, tpuv3), MACs and params
    (millions), and upstream's training time (s, as ``cost``: the proxy training
    the benchmark's answer stands for). Its evaluations are real results (not
    ``trusted``): the benchmark's stand-in for a trained result counts as an
    activated sample.

    Args:
        device: accelerator, one of ``ANB_DEVICES`` (default ``"zcu102"``).
        benchmark_dir: folder holding ``accel-nasbench/anb_dataset_jsons.tar.gz``
            (default ``$FNAS_BENCHMARK_DIR`` or ``../shared/benchmarks``).
        seed: seed of the fitted trees (default 0); equal seeds give equal
            predictions.
        cache_dir: folder for fitted models (default ``$FNAS_CACHE_DIR`` or
            ``~/.cache/fnas``); the first fit takes seconds, later loads
            milliseconds. Cached files are unpickled: see the module docstring.

    Attributes:
        objective: ``"latency"`` or ``"throughput"``.
        default_target: median measured latency/throughput of the device over
            upstream's architectures.
    """

    space_name = "anb"

    def __init__(
        self,
        device: str = "zcu102",
        benchmark_dir: str | os.PathLike | None = None,
        seed: int = 0,
        cache_dir: str | os.PathLike | None = None,
    ):
        self.measure = measure_target(device)
        self.device = device
        self.objective = ANB_DEVICES[device]
        self.seed = int(seed)
        archive = find_benchmark_file(ANB_FILE, benchmark_dir, ANB_UPSTREAM)
        sha256 = _sha256(archive)
        cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self._fitted = {
            t: _fitted(archive, sha256, t, self.seed, cache)
            for t in ("accuracy", self.measure, "train_time", "macs", "params")
        }
        self.default_target = self._fitted[self.measure].median
        # Predictions are clipped to a positive floor (the reward divides by them).
        self._floor = 1e-3 * self.default_target
        self._cache: dict[tuple[int, ...], Evaluation] = {}

    def _evaluate(self, arch: Architecture) -> Evaluation:
        hit = self._cache.get(arch.choices)
        if hit is None:
            hit = self.evaluate_many([arch])[0]
        return hit

    def evaluate_many(self, archs: Iterable[Architecture]) -> list[Evaluation]:
        """Evaluate many architectures in one batched prediction (faster per item)."""
        archs = [self.space.validate(a) for a in archs]
        if not archs:
            return []
        x = np.stack([self.space.one_hot(a) for a in archs])
        pred = {t: f.predict(x) for t, f in self._fitted.items()}
        out = []
        for i, arch in enumerate(archs):
            measure = max(float(pred[self.measure][i]), self._floor)
            evaluation = Evaluation(
                accuracy=float(np.clip(pred["accuracy"][i], 0.0, 100.0)),
                latency=measure if self.objective == "latency" else None,
                throughput=measure if self.objective == "throughput" else None,
                macs=max(float(pred["macs"][i]), 0.0),
                params=max(float(pred["params"][i]), 0.0),
                cost=max(float(pred["train_time"][i]), 0.0),
                extras={"device": self.device, "surrogate_seed": self.seed},
            )
            if len(self._cache) < 1_000_000:
                self._cache[arch.choices] = evaluation
            out.append(evaluation)
        return out

    def predict(self, archs: Sequence[Architecture], target: str = "accuracy") -> np.ndarray:
        """Raw predictions of one fitted target (``accuracy``, the measure, ...)."""
        if target not in self._fitted:
            raise ValueError(f"target must be one of {list(self._fitted)}, got {target!r}")
        x = np.stack([self.space.one_hot(self.space.validate(a)) for a in archs])
        return self._fitted[target].predict(x)

    def __repr__(self) -> str:
        return f"AnbSurrogateEvaluator(device={self.device!r}, seed={self.seed})"
