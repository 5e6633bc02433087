"""FNAS's uncertainty-aware critic (UAC): V predicts a reward, U predicts V's error.

V and U are four-layer MLPs (200 hidden units, PReLU) on an architecture's
one-hot expanded embedding, trained with L1 losses: ``L_V = |V(m) - R(m)|`` and
``L_U = |U(m) - e(m)|``, where ``e(m)`` is an error of V (U learns where V is
wrong; V is not pulled towards U). The critic learns online from really
evaluated architectures and can be saved, loaded and pretrained from a search
record, so a critic trained in one search is the starting point of another
(the paper's Table 5 transfer).

U's target ``e(m)`` (``u_target``):

- ``"heldout"`` (default): V's absolute error on ``m`` measured by
  :meth:`UncertaintyCritic.update` *before* the critic trains on ``m``, kept
  per sample (:attr:`UncertaintyCritic.heldout_errors`). It is V's error on an
  architecture it had not seen, the question the gate asks U about new
  architectures, so U is in the units of V's error on new architectures (mean
  U / V's MAE on held-out architectures: 1.0-1.3 on NAS-Bench-201; 1.6-2.2 on
  NAS-Bench-Macro, where V improves fast and the errors measured early
  overstate today's). Errors are kept in reward units and divided by the
  current reward standard deviation when U trains, so they follow every
  re-standardisation (the PopArt moves and
  :meth:`UncertaintyCritic.clear_replay`'s re-scaling) with no bookkeeping.
- ``"insample"`` (the paper's): V's current absolute error on ``m``, detached,
  recomputed at every step. As V fits its training samples this target shrinks
  towards 0: U comes out 4-15 times smaller than V's error on new
  architectures (mean U / V's MAE 0.07-0.26), so a threshold in reward units
  (``UncertaintyGate(threshold=...)``, ``max_uncertainty``) means little. How
  well U *ranks* new architectures by V's error is about the same with either
  target (Spearman 0.13-0.37; see ``benchmarks/results/uac_critic_quality.md``).

Rewards are standardised internally with running statistics of every reward
the critic has learnt from (mean, standard deviation; PopArt-style: when the
statistics move, V's and U's output layers are rescaled so that predictions in
reward units do not jump). ``predict`` answers in reward units. A fresh
critic's first two rewards set the statistics *without* that correction: an
untrained V has no prediction to preserve, and preserving its output (about 0
in reward units) through the first reward's mean (e.g. 60) would leave V a
bias of tens of standard deviations to unlearn at Adam's pace. On
NAS-Bench-Macro that bias cost V most of its accuracy (300 samples: MAE 0.75
with the correction from the first reward, 0.27 without).

``ensemble=K`` (K >= 2) adds K more V networks (different initialisations,
trained on the same minibatches as V) and reports their standard deviation
as the uncertainty instead of U: disagreement of independently initialised
networks away from the training data (Lakshminarayanan et al., 2017, "Simple
and Scalable Predictive Uncertainty Estimation using Deep Ensembles"). U is
trained either way; V stays the reward.

Cost: by default each new sample gets 4 minibatch steps of V and U
(``steps_per_sample=4``, ``u_every=1``); each step runs one backward pass for
all the networks it trains (their losses share no parameters, so the
gradients are those of separate passes) and fused Adam kernels, and
:meth:`UncertaintyCritic.predict` caches its last answer until the critic
changes (the gate predicts an architecture, then :meth:`UncertaintyCritic.update`
measures V's error on it). About 7-10 ms of CPU per update; 2 steps of V and 1
of U per sample (``steps_per_sample=2, u_every=2``) cost about 5 ms and give a
2-3% higher V MAE on NAS-Bench-201, none on NAS-Bench-Macro
(``benchmarks/results/uac_critic_quality.md``).
"""

from __future__ import annotations

import copy
import math
import os
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from fnas_env.record import RecordEntry, read_record
from fnas_env.spaces import get_space
from fnas_env.threads import torch_threads

__all__ = ["U_TARGETS", "UncertaintyCritic", "build_mlp"]

_FORMAT = "fnas-uac-v1"
#: accepted values of ``UncertaintyCritic(u_target=...)``
U_TARGETS = ("heldout", "insample")
# a fresh critic's first rewards that move the statistics without the PopArt correction
_FRESH_RESTANDARDIZE = 2


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
        learning_rate: Adam learning rate of all networks (default 1e-3).
        seed: seeds the networks' initialisation and minibatch sampling (default 0);
            the global torch RNG is not touched.
        device: torch device (default ``"cpu"``; the networks are tiny).
        batch_size: minibatch size of each training step (default 64).
        steps_per_sample: minibatch steps per new sample in :meth:`update` when
            ``steps`` is not given (default 4; see "Cost" in the module docstring).
        min_std: floor of the reward standard deviation used to standardise
            targets, in reward units (default 1e-3).
        num_threads: torch intra-op threads while the critic predicts or trains
            (default 1, restored afterwards; ``None`` leaves torch's setting). The
            networks are tiny: more threads gain nothing and, on a busy machine,
            cost an order of magnitude in contention.
        ensemble: 0 (default: U is the uncertainty) or K >= 2 extra V networks
            whose standard deviation is the uncertainty (see the module
            docstring; K x the training cost of V).
        u_target: what U learns to predict (see the module docstring):
            ``"heldout"`` (default): V's absolute error on each sample measured
            *before* the critic trained on it (:attr:`heldout_errors`), i.e. V's
            error on architectures it has not seen, which is what the gate asks U
            about; ``"insample"`` (the paper's): V's current absolute error on its
            training samples, which shrinks towards 0 as V fits them.
        u_every: U takes a minibatch step on every ``u_every``-th step of V
            (default 1: every step; 2 with ``steps_per_sample=2`` gives U one step per
            new sample). U's training is about half the cost of a step.

    Raises:
        ValueError: for a non-positive ``embedding_dim`` or ``learning_rate``, ``ensemble``
            of 1 or below 0, ``batch_size < 1``, ``steps_per_sample < 0`` or an
            unknown ``u_target``, ``u_every < 1``.
    """

    def __init__(
        self,
        embedding_dim: int,
        hidden: int = 200,
        layers: int = 4,
        learning_rate: float = 1e-3,
        seed: int = 0,
        device: str | torch.device = "cpu",
        batch_size: int = 64,
        steps_per_sample: int = 4,
        min_std: float = 1e-3,
        num_threads: int | None = 1,
        ensemble: int = 0,
        u_target: str = "heldout",
        u_every: int = 1,
    ):
        if int(embedding_dim) < 1:
            raise ValueError(f"embedding_dim must be a positive int, got {embedding_dim!r}")
        if not learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0, got {learning_rate!r}")
        if int(ensemble) < 0 or int(ensemble) == 1:
            raise ValueError(
                f"ensemble must be 0 (U is the uncertainty) or >= 2 networks, got {ensemble!r}"
            )
        if int(batch_size) < 1 or int(steps_per_sample) < 0:
            raise ValueError(
                f"batch_size must be >= 1 and steps_per_sample >= 0, got "
                f"{batch_size!r} and {steps_per_sample!r}"
            )
        if int(u_every) < 1:
            raise ValueError(
                f"u_every must be an int >= 1 (1: U trains on every step), got {u_every!r}"
            )
        if u_target not in U_TARGETS:
            raise ValueError(
                f"u_target must be 'heldout' (V's error on each sample before training on "
                f"it) or 'insample' (the paper's: V's current error on its training "
                f"samples), got {u_target!r}"
            )
        self.config: dict[str, Any] = dict(
            embedding_dim=int(embedding_dim),
            hidden=int(hidden),
            layers=int(layers),
            learning_rate=float(learning_rate),
            seed=int(seed),
            batch_size=int(batch_size),
            steps_per_sample=int(steps_per_sample),
            min_std=float(min_std),
            num_threads=None if num_threads is None else int(num_threads),
            ensemble=int(ensemble),
            u_target=str(u_target),
            u_every=int(u_every),
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
        self.v_optimizer = _adam(self.v_net.parameters(), learning_rate)
        self.u_optimizer = _adam(self.u_net.parameters(), learning_rate)
        self.e_optimizer = (
            _adam(self.e_nets.parameters(), learning_rate) if len(self.e_nets) else None
        )
        self._rng = np.random.default_rng(seed)
        # running reward statistics (Welford): count, mean, sum of squared deviations
        self._count = 0
        self._mean = 0.0
        self._m2 = 0.0
        # used while there are too few samples (set by clear_replay to keep a transferred scale)
        self._prior_mean = 0.0
        self._prior_std = 1.0
        # rewards counted before the statistics move with the PopArt correction: the first
        # two set the mean and the spread (an untrained V's outputs carry no prediction to
        # preserve); clear_replay sets it for a transferred critic
        self._restandardize_until = _FRESH_RESTANDARDIZE
        # replay of every really evaluated sample: embedding, reward, V's held-out error
        # (reward units, NaN where unknown)
        self._x = np.zeros((0, self.embedding_dim), dtype=np.float32)
        self._r = np.zeros(0, dtype=np.float64)
        self._e = np.zeros(0, dtype=np.float64)
        self.num_updates = 0  # minibatch steps taken
        # predict cache: one batch, valid while nothing that changes an answer happened
        self._generation = 0
        self._params = [*self.v_net.parameters(), *self.u_net.parameters()]
        self._params += list(self.e_nets.parameters())
        self._cache: tuple[tuple, np.ndarray, np.ndarray, np.ndarray] | None = None

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

    @property
    def heldout_errors(self) -> np.ndarray:
        """V's absolute error on each replayed sample, measured before training on it.

        Reward units, one value per sample in the order of the replay (a read-only
        copy). :meth:`update` measures it with :meth:`predict` just before it
        trains on the sample; :meth:`fit_record` estimates it by K-fold
        cross-fitting. NaN where it is unknown: samples loaded from a critic file
        that predates held-out errors, and :meth:`fit_record` entries learnt with
        ``folds=0`` or with ``u_target="insample"``.
        """
        errors = self._e.copy()
        errors.flags.writeable = False
        return errors

    def _observe(self, rewards: np.ndarray) -> None:
        """Fold new rewards into the statistics, keeping predictions in reward units."""
        self._generation += 1
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

    def _threads(self) -> AbstractContextManager[None]:
        return torch_threads(self.config["num_threads"])

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

    def _state_key(self) -> tuple:
        """Changes whenever an answer of :meth:`predict` may change."""
        return (
            self._generation,
            self.reward_mean,
            self.reward_std,
            tuple(p._version for p in self._params),  # in-place edits from outside
        )

    def predict(self, embeddings: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """V (predicted reward) and U (predicted absolute error of V), in reward units.

        ``embeddings``: shape ``(n, embedding_dim)`` (or one embedding); returns two
        float64 arrays of shape ``(n,)``. U is clipped at 0; with ``ensemble`` it is
        the ensemble's standard deviation.

        The answer for the last batch is cached until the critic trains, its
        reward statistics move or a parameter is changed in place, so the gate's
        prediction of an architecture is not recomputed when :meth:`update` then
        measures V's error on it.
        """
        x = self._as_batch(embeddings)
        key = self._state_key()
        cache = self._cache
        if cache is not None and cache[0] == key and np.array_equal(cache[1], x):
            return cache[2].copy(), cache[3].copy()
        xt = torch.from_numpy(np.ascontiguousarray(x)).to(self.device)
        with torch.inference_mode(), self._threads():
            v = self.v_net(xt)
            if len(self.e_nets):
                u = torch.cat([net(xt) for net in self.e_nets], dim=1).std(dim=1, keepdim=True)
            else:
                u = self.u_net(xt)
            out = torch.cat([v, u], dim=1).double().cpu().numpy()
        std = self.reward_std
        v_out = out[:, 0] * std + self.reward_mean
        u_out = np.maximum(out[:, 1], 0.0) * std
        self._cache = (key, x.copy(), v_out, u_out)
        return v_out.copy(), u_out.copy()

    # ---- training -------------------------------------------------------------------
    def update(
        self,
        embeddings: np.ndarray,
        rewards: Sequence[float] | np.ndarray,
        steps: int | None = None,
    ) -> dict[str, float]:
        """Add really evaluated samples to the replay and train on them.

        V's absolute error on each new sample is measured first (it becomes the
        sample's entry in :attr:`heldout_errors` and, with ``u_target="heldout"``,
        U's target for it). Then each of the ``steps`` minibatch steps (default
        ``steps_per_sample`` per new sample) trains on the new samples plus random
        replayed ones. Returns the mean absolute error of V on the new samples
        before training (``error_before``, reward units) and the last step's
        losses (``loss_v``, ``loss_u``, standardised units).
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
        self._append(x, r, error_before)
        if steps is None:
            steps = self.config["steps_per_sample"] * len(r)
        losses = self._train(int(steps), new=np.arange(len(self._r) - len(r), len(self._r)))
        return {"error_before": float(error_before.mean()), **losses}

    def _append(self, x: np.ndarray, r: np.ndarray, errors: np.ndarray) -> None:
        self._observe(r)
        self._x = np.concatenate([self._x, x])
        self._r = np.concatenate([self._r, r])
        self._e = np.concatenate([self._e, errors])

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
        self._generation += 1
        with self._threads():
            return self._steps(steps, new, losses)

    def _minibatch(self, n: int, new: np.ndarray | None) -> np.ndarray:
        """Replay indices of one minibatch: the new samples plus random replayed ones."""
        batch = self.config["batch_size"]
        if new is not None and len(new) < batch:
            if n <= len(new):
                return new
            extra = self._rng.integers(n, size=min(batch, n) - len(new))
            return np.concatenate([new, extra])
        return self._rng.choice(n, size=min(batch, n), replace=False)

    def _u_loss(
        self, u: torch.Tensor, v: torch.Tensor, z: torch.Tensor, idx: np.ndarray, std: float
    ) -> torch.Tensor | None:
        """U's L1 loss on a minibatch (None when none of its samples has a target)."""
        if self.config["u_target"] == "insample":  # L_U = |U(m) - L_V|, V's error detached
            return (u - (v.detach() - z).abs()).abs().mean()
        target = self._e[idx] / std  # V's held-out error, standardised now
        known = np.isfinite(target)
        if known.all():
            return (u - torch.from_numpy(target).to(u)).abs().mean()
        if not known.any():
            return None
        rows = torch.from_numpy(np.flatnonzero(known)).to(self.device)
        return (u[rows] - torch.from_numpy(target[known]).to(u)).abs().mean()

    def _steps(
        self, steps: int, new: np.ndarray | None, losses: dict[str, float]
    ) -> dict[str, float]:
        n = len(self._r)
        mean, std = self.reward_mean, self.reward_std
        extra = [] if self.e_optimizer is None else [self.e_optimizer]
        loss_v = loss_u = None
        u_every = self.config["u_every"]
        for _ in range(steps):
            idx = self._minibatch(n, new)
            x = torch.from_numpy(self._x[idx]).to(self.device)
            z = torch.from_numpy((self._r[idx] - mean) / std).to(self.device, torch.float32)
            v = self.v_net(x).squeeze(-1)
            loss_v = (v - z).abs().mean()  # L_V = |V(m) - R(m)|
            total, optimizers = loss_v, [self.v_optimizer, *extra]
            if self.num_updates % u_every == 0:
                loss_u = self._u_loss(self.u_net(x).squeeze(-1), v, z, idx, std)
                if loss_u is not None:  # independent gradients: one backward pass for both
                    total, optimizers = loss_v + loss_u, [*optimizers, self.u_optimizer]
            if self.e_optimizer is not None:  # each member: the same L1 loss as V
                total = total + sum((net(x).squeeze(-1) - z).abs().mean() for net in self.e_nets)
            for optimizer in optimizers:
                optimizer.zero_grad(set_to_none=True)
            total.backward()
            for optimizer in optimizers:
                optimizer.step()
            self.num_updates += 1
        if loss_v is not None:
            losses = {
                "loss_v": loss_v.item(),
                "loss_u": math.nan if loss_u is None else loss_u.item(),
            }
        return losses

    def losses(self) -> dict[str, float]:
        """Mean L_V and L_U over the whole replay (standardised units), without training.

        L_U is U's loss for its ``u_target``; with ``"heldout"`` it is averaged over
        the samples whose held-out error is known (NaN if none is).
        """
        if self.num_samples == 0:
            return {"loss_v": math.nan, "loss_u": math.nan}
        std = self.reward_std
        x = torch.from_numpy(self._x).to(self.device)
        z = torch.from_numpy((self._r - self.reward_mean) / std).to(self.device, torch.float32)
        with torch.inference_mode(), self._threads():
            v = self.v_net(x).squeeze(-1)
            loss_u = self._u_loss(self.u_net(x).squeeze(-1), v, z, np.arange(len(z)), std)
            loss_v = (v - z).abs().mean()
        return {
            "loss_v": float(loss_v),
            "loss_u": math.nan if loss_u is None else float(loss_u),
        }

    def fit_record(
        self,
        source: str | os.PathLike | Iterable[RecordEntry],
        steps: int | None = None,
        include_failed: bool = False,
        folds: int = 5,
    ) -> int:
        """Learn from the activated (really evaluated) entries of a search record.

        ``source`` is a record file (read with :func:`fnas_env.record.read_record`)
        or an iterable of :class:`~fnas_env.record.RecordEntry`. Only
        ``kind == "activated"`` entries are used (trusted rewards are the
        critic's own, replays carry no new reward); failed evaluations are left
        out unless ``include_failed``. ``steps`` minibatch steps (default
        ``steps_per_sample`` per entry, at most 5,000). Returns the number of
        entries learnt from. Call it on a fresh critic to rebuild one from a
        search (resume), or on a trained one to add another search's data.

        The entries arrive together, so V has no error measured before training
        on each of them. With ``u_target="heldout"`` they are estimated by K-fold
        cross-fitting: the entries are split into ``folds`` random folds (default
        5); for each fold a copy of V (as it is before this call) trains ``steps``
        minibatch steps on the replay and the other folds, and its absolute error
        on the fold is the fold's held-out error. This costs ``folds`` times V's
        training. ``folds=0`` skips it: the entries' held-out errors are NaN and U
        does not learn from them. With ``u_target="insample"`` no cross-fitting is
        done (U's target does not use them; :attr:`heldout_errors` is NaN).
        """
        if int(folds) < 0 or int(folds) == 1:
            raise ValueError(f"folds must be 0 (no cross-fitting) or >= 2, got {folds!r}")
        entries = read_record(source) if isinstance(source, str | os.PathLike) else source
        xs, rs = [], []
        for entry in entries:
            if entry.kind != "activated" or (entry.failed and not include_failed):
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
        x, r = np.stack(xs).astype(np.float32), np.asarray(rs, dtype=np.float64)
        errors = np.full(len(r), math.nan)
        self._observe(r)
        if self.config["u_target"] == "heldout" and int(folds) >= 2 and len(r) >= 2:
            with self._threads():
                errors = self._crossfit_errors(x, r, int(steps), int(folds))
        self._x = np.concatenate([self._x, x])
        self._r = np.concatenate([self._r, r])
        self._e = np.concatenate([self._e, errors])
        self._train(int(steps))
        return len(xs)

    def _crossfit_errors(self, x: np.ndarray, r: np.ndarray, steps: int, folds: int) -> np.ndarray:
        """Out-of-fold absolute errors of copies of V trained without each fold."""
        folds = min(folds, len(r))
        fold = self._rng.permutation(len(r)) % folds
        mean, std = self.reward_mean, self.reward_std
        x_all = np.concatenate([self._x, x])
        z_all = ((np.concatenate([self._r, r]) - mean) / std).astype(np.float32)
        old = np.arange(len(self._r))
        batch = self.config["batch_size"]
        errors = np.full(len(r), math.nan)
        for k in range(folds):
            train = np.concatenate([old, len(old) + np.flatnonzero(fold != k)])
            net = copy.deepcopy(self.v_net)
            optimizer = _adam(net.parameters(), self.config["learning_rate"])
            size = min(batch, len(train))
            for _ in range(steps):
                idx = train[self._rng.choice(len(train), size=size, replace=False)]
                xb = torch.from_numpy(x_all[idx]).to(self.device)
                loss = (net(xb).squeeze(-1) - torch.from_numpy(z_all[idx]).to(xb)).abs().mean()
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
            held = np.flatnonzero(fold == k)
            with torch.inference_mode():
                pred = net(torch.from_numpy(x[held]).to(self.device)).squeeze(-1)
            errors[held] = np.abs(pred.double().cpu().numpy() * std + mean - r[held])
        return errors

    def clear_replay(self, stats_count: int = 0, restandardize: int = 5) -> None:
        """Forget the replay and its held-out errors (e.g. after loading another task's critic).

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
        self._e = self._e[:0]
        mean, std = self.reward_mean, self.reward_std
        self._prior_mean, self._prior_std = mean, std
        self._count = min(self._count, int(stats_count))
        self._mean = mean if self._count else 0.0
        self._m2 = std**2 * self._count
        self._restandardize_until = self._count + int(restandardize)
        self._generation += 1

    # ---- persistence -----------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything :meth:`load` needs, as plain tensors, numbers and dicts."""
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
                "e": torch.from_numpy(self._e.copy()),
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
        """A critic saved with :meth:`save` (loaded with ``weights_only=True``).

        Files written before held-out errors and ``u_target`` existed load too:
        ``u_target`` takes the constructor's default (``"heldout"``) and the
        replayed samples' held-out errors are NaN (masked: U learns only from the
        samples added after loading; V learns from all).
        """
        state = torch.load(Path(path), map_location=device, weights_only=True)
        if not isinstance(state, dict) or state.get("format") != _FORMAT:
            raise ValueError(f"{path} is not a critic saved by UncertaintyCritic.save()")
        config = dict(state["config"])
        if "lr" in config:  # critic files that name the learning rate "lr"
            config["learning_rate"] = config.pop("lr")
        critic = cls(device=device, **config)
        critic.v_net.load_state_dict(state["v"])
        critic.u_net.load_state_dict(state["u"])
        _load_optimizer(critic.v_optimizer, state["v_optimizer"])
        _load_optimizer(critic.u_optimizer, state["u_optimizer"])
        if critic.e_optimizer is not None:
            critic.e_nets.load_state_dict(state["ensemble"])
            _load_optimizer(critic.e_optimizer, state["e_optimizer"])
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
        critic._x = replay["x"].cpu().numpy().astype(np.float32)
        critic._r = replay["r"].cpu().numpy().astype(np.float64)
        errors = replay.get("e")
        critic._e = (
            np.full(len(critic._r), math.nan)
            if errors is None
            else errors.cpu().numpy().astype(np.float64)
        )
        critic.num_updates = int(state["num_updates"])
        critic._rng.bit_generator.state = state["rng"]
        critic._generation += 1
        return critic

    def __repr__(self) -> str:
        return (
            f"UncertaintyCritic(embedding_dim={self.embedding_dim}, samples={self.num_samples}, "
            f"updates={self.num_updates})"
        )


def _adam(params: Iterable[nn.Parameter], lr: float) -> torch.optim.Adam:
    """Adam with the fused implementation where torch has one (same update rule, fewer kernels)."""
    params = list(params)
    try:
        return torch.optim.Adam(params, lr=lr, fused=True)
    except (RuntimeError, ValueError):  # a device or dtype without a fused kernel
        return torch.optim.Adam(params, lr=lr)


def _load_optimizer(optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    """Load an optimiser state, keeping this optimiser's implementation choice.

    ``load_state_dict`` also copies the saved ``fused``/``foreach`` flags, so a
    file saved with the unfused implementation would otherwise stay unfused.
    """
    flags = [{k: g.get(k) for k in ("fused", "foreach")} for g in optimizer.param_groups]
    optimizer.load_state_dict(state)
    for group, kept in zip(optimizer.param_groups, flags, strict=True):
        group.update(kept)
