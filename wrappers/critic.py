"""FNAS's uncertainty-aware critic (UAC): V predicts a reward, U predicts V's error.

V and U are four-layer MLPs (200 hidden units, PReLU) on an architecture's
one-hot expanded embedding. ``L_V = |V(m) - R(m)|`` and ``L_U = |U(m) - L_V|``
where U's target is V's error, detached (U learns where V is wrong, V is not
pulled towards U). The critic learns online from really evaluated
architectures and can be saved, loaded and pretrained from a search record, so
a critic trained in one search is the starting point of another (the paper's
Table 5 transfer).

Rewards are standardised internally with running statistics of every reward
the critic has learnt from (mean, standard deviation; PopArt-style: when the
statistics move, V's and U's output layers are rescaled so that predictions in
reward units do not jump). ``predict`` answers in reward units.

``ensemble=K`` (K >= 2) adds K more V networks (different initialisations,
trained on the same minibatches as V) and reports their standard deviation
as the uncertainty instead of U: disagreement of independently initialised
networks away from the training data (Lakshminarayanan et al., 2017, "Simple
and Scalable Predictive Uncertainty Estimation using Deep Ensembles"). U is
trained either way; V stays the reward.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from fnas_env.record import RecordEntry, read_record
from fnas_env.spaces import get_space

__all__ = ["UncertaintyCritic", "build_mlp"]

_FORMAT = "fnas-uac-v1"


def build_mlp(in_dim: int, hidden: int = 200, layers: int = 4) -> nn.Sequential:
    """MLP of ``layers`` linear layers (``layers - 1`` hidden, PReLU), one output."""
    if layers < 1:
        raise ValueError(f"layers must be >= 1, got {layers}")
    modules: list[nn.Module] = []
    width = in_dim
    for _ in range(layers - 1):
        modules += [nn.Linear(width, hidden), nn.PReLU()]
        width = hidden
    modules.append(nn.Linear(width, 1))
    return nn.Sequential(*modules)


class UncertaintyCritic:
    """V (reward) and U (V's error) networks with online training.

    Args:
        embedding_dim: length of the one-hot embedding (``space.embedding_dim``).
        hidden: hidden units per layer (default 200, the paper's).
        layers: linear layers per network (default 4, the paper's).
        lr: Adam learning rate of both networks (default 1e-3).
        seed: seeds the networks' initialisation and minibatch sampling (default 0);
            the global torch RNG is not touched.
        device: torch device (default ``"cpu"``; the networks are tiny).
        batch_size: minibatch size of each training step (default 64).
        steps_per_sample: minibatch steps per new sample in :meth:`update` when
            ``steps`` is not given (default 4).
        min_std: floor of the reward standard deviation used to standardise
            targets, in reward units (default 1e-3).
        ensemble: 0 (default: the paper's U is the uncertainty) or K >= 2 extra V
            networks whose standard deviation is the uncertainty (see the module
            docstring; K x the training cost of V).
        num_threads: torch intra-op threads while the critic predicts or trains
            (default 1, restored afterwards; ``None`` leaves torch's setting). The
            networks are tiny: more threads gain nothing and, on a busy machine,
            cost an order of magnitude in contention.
    """

    def __init__(
        self,
        embedding_dim: int,
        hidden: int = 200,
        layers: int = 4,
        lr: float = 1e-3,
        seed: int = 0,
        device: str | torch.device = "cpu",
        batch_size: int = 64,
        steps_per_sample: int = 4,
        min_std: float = 1e-3,
        num_threads: int | None = 1,
        ensemble: int = 0,
    ):
        if int(embedding_dim) < 1:
            raise ValueError(f"embedding_dim must be a positive int, got {embedding_dim!r}")
        if not lr > 0:
            raise ValueError(f"lr must be > 0, got {lr!r}")
        if int(ensemble) < 0 or int(ensemble) == 1:
            raise ValueError(
                f"ensemble must be 0 (U is the uncertainty) or >= 2 networks, got {ensemble!r}"
            )
        if int(batch_size) < 1 or int(steps_per_sample) < 0:
            raise ValueError(
                f"batch_size must be >= 1 and steps_per_sample >= 0, got "
                f"{batch_size!r} and {steps_per_sample!r}"
            )
        self.config: dict[str, Any] = dict(
            embedding_dim=int(embedding_dim),
            hidden=int(hidden),
            layers=int(layers),
            lr=float(lr),
            seed=int(seed),
            batch_size=int(batch_size),
            steps_per_sample=int(steps_per_sample),
            min_std=float(min_std),
            num_threads=None if num_threads is None else int(num_threads),
            ensemble=int(ensemble),
        )
        self.embedding_dim = int(embedding_dim)
        self.device = torch.device(device)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.v_net = build_mlp(self.embedding_dim, hidden, layers).to(self.device)
            self.u_net = build_mlp(self.embedding_dim, hidden, layers).to(self.device)
            self.e_nets = nn.ModuleList(
                build_mlp(self.embedding_dim, hidden, layers) for _ in range(int(ensemble))
            ).to(self.device)
        self.v_optimizer = torch.optim.Adam(self.v_net.parameters(), lr=lr)
        self.u_optimizer = torch.optim.Adam(self.u_net.parameters(), lr=lr)
        self.e_optimizer = (
            torch.optim.Adam(self.e_nets.parameters(), lr=lr) if len(self.e_nets) else None
        )
        self._rng = np.random.default_rng(seed)
        # running reward statistics (Welford): count, mean, sum of squared deviations
        self._count = 0
        self._mean = 0.0
        self._m2 = 0.0
        # used while there are too few samples (set by clear_replay to keep a transferred scale)
        self._prior_mean = 0.0
        self._prior_std = 1.0
        # rewards counted before the statistics move with the PopArt correction (clear_replay)
        self._restandardize_until = 0
        # replay of every really evaluated sample: embedding, reward
        self._x = np.zeros((0, self.embedding_dim), dtype=np.float32)
        self._r = np.zeros(0, dtype=np.float64)
        self.num_updates = 0  # minibatch steps taken

    # ---- statistics -------------------------------------------------------------
    @property
    def num_samples(self) -> int:
        """Really evaluated samples in the replay (the critic's training set)."""
        return len(self._r)

    @property
    def reward_mean(self) -> float:
        """Mean used to standardise rewards (running mean of the rewards learnt from)."""
        return self._mean if self._count else self._prior_mean

    @property
    def reward_std(self) -> float:
        """Standard deviation used to standardise rewards (the prior, 1.0, until 2 samples)."""
        std = math.sqrt(self._m2 / self._count) if self._count >= 2 else self._prior_std
        return max(std, self.config["min_std"])

    def _observe(self, rewards: np.ndarray) -> None:
        """Fold new rewards into the statistics, keeping predictions in reward units."""
        old_mean, old_std = self.reward_mean, self.reward_std
        popart = self._count >= self._restandardize_until
        for r in rewards.tolist():
            self._count += 1
            delta = r - self._mean
            self._mean += delta / self._count
            self._m2 += delta * (r - self._mean)
        new_mean, new_std = self.reward_mean, self.reward_std
        if not popart or (old_mean, old_std) == (new_mean, new_std):
            return
        with torch.no_grad():  # PopArt: y_new = (std_old y_old + mean_old - mean_new) / std_new
            for net in (self.v_net, *self.e_nets):
                net[-1].weight.mul_(old_std / new_std)
                net[-1].bias.mul_(old_std).add_(old_mean - new_mean).div_(new_std)
            u_last = self.u_net[-1]
            u_last.weight.mul_(old_std / new_std)
            u_last.bias.mul_(old_std / new_std)

    @contextmanager
    def _threads(self) -> Iterator[None]:
        wanted = self.config["num_threads"]
        before = torch.get_num_threads()
        if wanted is None or wanted == before:
            yield
            return
        torch.set_num_threads(wanted)
        try:
            yield
        finally:
            torch.set_num_threads(before)

    # ---- prediction ---------------------------------------------------------------
    def _as_batch(self, embeddings: np.ndarray) -> np.ndarray:
        x = np.asarray(embeddings, dtype=np.float32)
        if x.ndim == 1:
            x = x[None]
        if x.ndim != 2 or x.shape[1] != self.embedding_dim:
            raise ValueError(
                f"embeddings must have shape (n, {self.embedding_dim}) or "
                f"({self.embedding_dim},) (one-hot of the search space), got {x.shape}"
            )
        if not np.isfinite(x).all():
            raise ValueError("embeddings contain NaN or inf")
        return x

    def predict(self, embeddings: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """V (predicted reward) and U (predicted absolute error of V), in reward units.

        ``embeddings``: shape ``(n, embedding_dim)`` (or one embedding); returns two
        float64 arrays of shape ``(n,)``. U is clipped at 0; with ``ensemble`` it is
        the ensemble's standard deviation.
        """
        x = torch.as_tensor(self._as_batch(embeddings), device=self.device)
        with torch.no_grad(), self._threads():
            v = self.v_net(x).squeeze(-1).double().cpu().numpy()
            if len(self.e_nets):
                members = torch.stack([net(x).squeeze(-1) for net in self.e_nets])
                u = members.std(dim=0).double().cpu().numpy()
            else:
                u = self.u_net(x).squeeze(-1).double().cpu().numpy()
        std = self.reward_std
        return v * std + self.reward_mean, np.maximum(u, 0.0) * std

    # ---- training -------------------------------------------------------------------
    def update(
        self,
        embeddings: np.ndarray,
        rewards: Sequence[float] | np.ndarray,
        steps: int | None = None,
    ) -> dict[str, float]:
        """Add really evaluated samples to the replay and train on them.

        Each of the ``steps`` minibatch steps (default ``steps_per_sample`` per new
        sample) trains on the new samples plus random replayed ones. Returns the
        mean absolute error of V on the new samples before training
        (``error_before``, reward units) and the last step's losses (``loss_v``,
        ``loss_u``, standardised units).
        """
        x = self._as_batch(embeddings)
        r = np.asarray(rewards, dtype=np.float64).reshape(-1)
        if len(r) != len(x):
            raise ValueError(f"got {len(x)} embeddings but {len(r)} rewards")
        if not np.isfinite(r).all():
            raise ValueError("rewards must be finite (leave failed evaluations out)")
        if len(r) == 0:
            return {"error_before": math.nan, "loss_v": math.nan, "loss_u": math.nan}
        v_before, _ = self.predict(x)
        error_before = np.abs(v_before - r)
        self._observe(r)
        start = len(self._r)
        self._x = np.concatenate([self._x, x])
        self._r = np.concatenate([self._r, r])
        if steps is None:
            steps = self.config["steps_per_sample"] * len(r)
        losses = self._train(int(steps), new=np.arange(start, len(self._r)))
        return {"error_before": float(error_before.mean()), **losses}

    def train(self, steps: int) -> dict[str, float]:
        """``steps`` minibatch steps on the replay (e.g. more training after ``fit_record``).

        Returns the last step's losses (``loss_v``, ``loss_u``, standardised units).
        """
        if int(steps) < 0:
            raise ValueError(f"steps must be >= 0, got {steps!r}")
        return self._train(int(steps))

    def _train(self, steps: int, new: np.ndarray | None = None) -> dict[str, float]:
        losses = {"loss_v": math.nan, "loss_u": math.nan}
        n = len(self._r)
        if n == 0 or steps <= 0:
            return losses
        with self._threads():
            return self._steps(steps, new, losses)

    def _steps(
        self, steps: int, new: np.ndarray | None, losses: dict[str, float]
    ) -> dict[str, float]:
        n, batch = len(self._r), self.config["batch_size"]
        mean, std = self.reward_mean, self.reward_std
        for net in (self.v_net, self.u_net, self.e_nets):
            net.train()
        for _ in range(steps):
            if new is not None and len(new) < batch:
                extra = self._rng.integers(n, size=min(batch, n) - len(new)) if n > len(new) else []
                idx = np.concatenate([new, np.asarray(extra, dtype=np.int64)])
            else:
                idx = self._rng.choice(n, size=min(batch, n), replace=False)
            x = torch.as_tensor(self._x[idx], device=self.device)
            z = torch.as_tensor(
                (self._r[idx] - mean) / std, dtype=torch.float32, device=self.device
            )
            v = self.v_net(x).squeeze(-1)
            loss_v = (v - z).abs().mean()  # L_V = |V(m) - R(m)|
            self.v_optimizer.zero_grad(set_to_none=True)
            loss_v.backward()
            self.v_optimizer.step()
            target = (v.detach() - z).abs()  # V's error, detached
            loss_u = (self.u_net(x).squeeze(-1) - target).abs().mean()  # L_U = |U(m) - L_V|
            self.u_optimizer.zero_grad(set_to_none=True)
            loss_u.backward()
            self.u_optimizer.step()
            if self.e_optimizer is not None:  # each member: the same L1 loss as V
                loss_e = sum((net(x).squeeze(-1) - z).abs().mean() for net in self.e_nets)
                self.e_optimizer.zero_grad(set_to_none=True)
                loss_e.backward()
                self.e_optimizer.step()
            self.num_updates += 1
            losses = {"loss_v": loss_v.item(), "loss_u": loss_u.item()}
        for net in (self.v_net, self.u_net, self.e_nets):
            net.eval()
        return losses

    def losses(self) -> dict[str, float]:
        """Mean L_V and L_U over the whole replay (standardised units), without training."""
        if self.num_samples == 0:
            return {"loss_v": math.nan, "loss_u": math.nan}
        x = torch.as_tensor(self._x, device=self.device)
        z = torch.as_tensor(
            (self._r - self.reward_mean) / self.reward_std, dtype=torch.float32, device=self.device
        )
        with torch.no_grad(), self._threads():
            error = (self.v_net(x).squeeze(-1) - z).abs()
            loss_u = (self.u_net(x).squeeze(-1) - error).abs().mean()
        return {"loss_v": float(error.mean()), "loss_u": float(loss_u)}

    def fit_record(
        self,
        source: str | os.PathLike | Iterable[RecordEntry],
        steps: int | None = None,
        include_failed: bool = False,
    ) -> int:
        """Learn from the really evaluated entries of a search record.

        ``source`` is a record file (read with :func:`fnas_env.record.read_record`)
        or an iterable of :class:`~fnas_env.record.RecordEntry`. Only
        ``kind == "evaluated"`` entries are used (surrogate rewards are the
        critic's own, replays carry no new reward); failed evaluations are left
        out unless ``include_failed``. ``steps`` minibatch steps (default
        ``steps_per_sample`` per entry, at most 5,000). Returns the number of
        entries learnt from. Call it on a fresh critic to rebuild one from a
        search (resume), or on a trained one to add another search's data.
        """
        entries = read_record(source) if isinstance(source, str | os.PathLike) else source
        xs, rs = [], []
        for entry in entries:
            if entry.kind != "evaluated" or (entry.failed and not include_failed):
                continue
            space = get_space(entry.space)
            if space.embedding_dim != self.embedding_dim:
                raise ValueError(
                    f"record entry {entry.arch!r} of space {entry.space!r} has a "
                    f"{space.embedding_dim}-dim embedding; this critic takes "
                    f"{self.embedding_dim} (a critic transfers within one search space)"
                )
            xs.append(space.one_hot(entry.architecture))
            rs.append(entry.reward)
        if not xs:
            return 0
        if steps is None:
            steps = min(self.config["steps_per_sample"] * len(xs), 5000)
        x, r = np.stack(xs), np.asarray(rs, dtype=np.float64)
        self._observe(r)
        self._x = np.concatenate([self._x, x])
        self._r = np.concatenate([self._r, r])
        self._train(int(steps))
        return len(xs)

    def clear_replay(self, stats_count: int = 0, restandardize: int = 5) -> None:
        """Forget the replay (e.g. after loading a critic from another task).

        V and U keep their weights and keep learning from the new search's
        samples only. The reward statistics keep their mean and spread but count
        as ``stats_count`` samples (default 0: the new task's first rewards set
        them).

        ``restandardize``: for the new task's first this many rewards (default 5)
        the statistics move *without* the PopArt correction, so V's standardised
        output (what transfers between tasks: which architectures are better and
        by how many standard deviations) is read in the new task's reward scale
        instead of being held at the old task's values. 0 keeps predictions in the
        old task's reward units (right when only the replay, not the scale, is stale).
        """
        if int(stats_count) < 0 or int(restandardize) < 0:
            raise ValueError(
                f"stats_count and restandardize must be >= 0, got {stats_count!r} and "
                f"{restandardize!r}"
            )
        self._x = self._x[:0]
        self._r = self._r[:0]
        mean, std = self.reward_mean, self.reward_std
        self._prior_mean, self._prior_std = mean, std
        self._count = min(self._count, int(stats_count))
        self._mean = mean if self._count else 0.0
        self._m2 = std**2 * self._count
        self._restandardize_until = self._count + int(restandardize)

    # ---- persistence -----------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "format": _FORMAT,
            "config": dict(self.config),
            "v": self.v_net.state_dict(),
            "u": self.u_net.state_dict(),
            "v_optimizer": self.v_optimizer.state_dict(),
            "u_optimizer": self.u_optimizer.state_dict(),
            "ensemble": self.e_nets.state_dict(),
            "e_optimizer": None if self.e_optimizer is None else self.e_optimizer.state_dict(),
            "stats": {
                "count": int(self._count),
                "mean": float(self._mean),
                "m2": float(self._m2),
                "prior_mean": float(self._prior_mean),
                "prior_std": float(self._prior_std),
                "restandardize_until": int(self._restandardize_until),
            },
            "replay": {
                "x": torch.from_numpy(self._x.copy()),
                "r": torch.from_numpy(self._r.copy()),
            },
            "num_updates": self.num_updates,
            "rng": self._rng.bit_generator.state,
        }

    def save(self, path: str | os.PathLike) -> Path:
        """Save V, U, their optimiser states, reward statistics and replay (torch.save)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(self.state_dict(), path)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike, device: str | torch.device = "cpu") -> UncertaintyCritic:
        """A critic saved with :meth:`save` (loaded with ``weights_only=True``)."""
        state = torch.load(Path(path), map_location=device, weights_only=True)
        if not isinstance(state, dict) or state.get("format") != _FORMAT:
            raise ValueError(f"{path} is not a critic saved by UncertaintyCritic.save()")
        critic = cls(device=device, **state["config"])
        critic.v_net.load_state_dict(state["v"])
        critic.u_net.load_state_dict(state["u"])
        critic.v_optimizer.load_state_dict(state["v_optimizer"])
        critic.u_optimizer.load_state_dict(state["u_optimizer"])
        if critic.e_optimizer is not None:
            critic.e_nets.load_state_dict(state["ensemble"])
            critic.e_optimizer.load_state_dict(state["e_optimizer"])
        stats = state["stats"]
        critic._count, critic._mean, critic._m2 = (
            int(stats["count"]),
            float(stats["mean"]),
            float(stats["m2"]),
        )
        critic._prior_mean, critic._prior_std = (
            float(stats["prior_mean"]),
            float(stats["prior_std"]),
        )
        critic._restandardize_until = int(stats.get("restandardize_until", 0))
        replay = state["replay"]
        critic._x = replay["x"].numpy().astype(np.float32)
        critic._r = replay["r"].numpy().astype(np.float64)
        critic.num_updates = int(state["num_updates"])
        critic._rng.bit_generator.state = state["rng"]
        return critic

    def __repr__(self) -> str:
        return (
            f"UncertaintyCritic(embedding_dim={self.embedding_dim}, samples={self.num_samples}, "
            f"updates={self.num_updates})"
        )
