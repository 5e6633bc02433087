"""UAC as a Gymnasium wrapper: trusted architectures take the critic's reward unevaluated."""

from __future__ import annotations

import math
import warnings
from collections import deque
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.wrappers import OrderEnforcing, PassiveEnvChecker, TimeLimit
from scipy import stats

from fnas_env.evaluators.base import Evaluation

__all__ = ["UncertaintyGate", "ENCODINGS"]

#: what V and U see of an architecture: the paper's one-hot expanded embedding, or the
#: space's ``features`` (NB201 adds its cell's path encoding; other spaces: the one-hot)
ENCODINGS = ("one_hot", "features")

#: wrappers that may sit between the gate and the NAS env: the gate completes the
#: last step on ``env.unwrapped``, so a wrapper in between would not see it.
TRANSPARENT_WRAPPERS = (OrderEnforcing, PassiveEnvChecker, TimeLimit)


class UncertaintyGate(gym.Wrapper):
    """Skip the evaluation of architectures the critic is sure about (FNAS's UAC).

    ## Description

    On the last token of an episode the gate asks the critic for V (predicted
    reward) and U (predicted error of V) of the completed architecture. A
    trusted architecture (``U <= threshold``, after the warm-up, with trust
    enabled) ends the episode with V as its reward and no evaluation (recorded
    as a ``"surrogate"`` entry, ``cost=0``). Any other architecture is really
    evaluated; V's error on it is measured first and the critic then trains on
    it (``L_V = |V - R|``, ``L_U = |U - L_V|``). Intermediate tokens pass
    through unchanged.

    ## Action Space, Observation Space, Starting State, Episode End

    Those of the wrapped :class:`~fnas_env.env.NASEnv`.

    ## Rewards

    The env's reward for evaluated architectures; V's prediction for trusted
    ones. Failed evaluations keep the env's ``failed_reward`` and are not
    learnt from (a crash says little about the architecture).

    ## Threshold

    ``threshold`` is a fixed float (reward units: percentage points for
    accuracy rewards) or ``"adaptive"`` (default): the ``trusted_fraction``
    quantile of U over the last ``window`` architectures, so that about that
    fraction of architectures is trusted whatever the scale of U. U shrinks as
    the critic learns, so the window's U values are recomputed with the
    current critic whenever it has trained (else old, larger U values would
    let far more than the target fraction through). The default fraction,
    0.8, is above the paper's 50% batch rule on purpose: the rule
    (:class:`~agents.fnas_ppo.FNASRecurrentPPO`) throws away trusted samples
    beyond half of a batch and resamples until untrusted ones fill it, so with a
    gate that trusts more than half, every batch holds exactly half trusted
    samples (the paper's 2x) and the untrusted half is the most uncertain
    architectures. ``max_uncertainty`` adds an absolute ceiling to the adaptive
    threshold.

    ## When the critic is trusted at all

    Nothing is trusted until the critic has learnt from ``warmup`` really
    evaluated samples *and* its measured quality is good enough: over the last
    ``quality_window`` really evaluated samples, V's mean absolute error
    (each measured before the critic trained on that sample, so it is a
    held-out error) must be at most ``max_relative_error`` times the mean
    absolute deviation of their true rewards (what predicting the mean would
    score). The ratio is scale-free: 1.0 (the default limit) is a critic no
    better than the mean, 0.5 one whose error is half the spread of the rewards
    the search now samples. As the search narrows in on good architectures the spread shrinks,
    so the critic must get more precise to stay trusted. ``max_relative_error
    =None`` trusts on ``warmup`` alone.

    ## Repeats

    An architecture this search has already evaluated is served from the
    env's record (``NASEnv.is_cached``): its real reward at no cost, neither
    trusted nor learnt from again.

    ## Verifying would-be incumbents

    With ``verify_best`` (default True) an architecture not evaluated before whose
    V exceeds the best reward really evaluated so far is always evaluated,
    whatever its U (once there is an evaluated reward to compare with): the
    critic may skip architectures, but it never crowns one. Without the rule a
    search can converge on an architecture the critic overrates, feed the
    controller V's optimistic reward for it and never measure it, so its answer
    is unverified. Not in the paper (which does not say how its search picks
    the final architecture); ``verify_best=False`` gives the plain U rule.

    ## Arguments

    - ``env``: a NASEnv, directly or under ``OrderEnforcing``/``PassiveEnvChecker``/
      ``TimeLimit`` only (as ``gym.make`` returns it). Put ``Monitor`` and
      reward wrappers outside the gate: it completes the last step on
      ``env.unwrapped``, so inner wrappers would not see it.
    - ``critic``: an :class:`~wrappers.critic.UncertaintyCritic` (or any object
      with ``predict``, ``update`` and ``num_samples``); default: a new critic
      for the env's space. Several gates (envs of a ``DummyVecEnv``) may share one.
    - ``threshold``: a float >= 0 or ``"adaptive"`` (default).
    - ``trusted_fraction``: target fraction of trusted architectures of the
      adaptive threshold, in (0, 1) (default 0.8, see Threshold).
    - ``warmup``: really evaluated samples the critic must have learnt from
      before anything is trusted (default 20; counts ``critic.num_samples``, so a
      pretrained or loaded critic skips it).
    - ``max_relative_error``: trust only while V's recent held-out error is at
      most this fraction of the recent rewards' mean absolute deviation (default
      1.0: V must beat predicting the mean; None: no quality check). Measured on
      NB201 cifar10 (tuning seeds): V's held-out error on the samples the search
      draws is 60-100% of their spread for the first 200 samples, so 0.6 blocks
      nearly all trust and UAC learns like ``mnas``.
    - ``quality_window``: recent really evaluated samples the quality check
      uses (default 20; the check needs that many, a loaded critic included).
    - ``encoding``: ``"one_hot"`` (default, the paper's expanded embedding) or
      ``"features"`` (``space.features``: on NAS-Bench-201 the one-hot plus the
      path encoding of BANANAS; elsewhere the one-hot). The critic's
      ``embedding_dim`` must match.
    - ``update_steps``: critic minibatch steps per evaluated architecture
      (default ``None``: the critic's ``steps_per_sample``).
    - ``window``: U values the adaptive quantile looks back over (default 200).
    - ``metrics_window``: untrusted samples the correlation metrics use (default 200).
    - ``max_uncertainty``: never trust above this U, adaptive or not (default None).
    - ``trust_enabled``: initial value of :attr:`trust_enabled` (default True).
    - ``verify_best``: evaluate every architecture whose V beats the best evaluated
      reward so far (default True; see above).

    The last-step ``info`` adds ``uncertainty`` (U), ``predicted_reward`` (V)
    and ``threshold``; ``evaluated`` is False for trusted architectures.

    ## Example

    >>> import gymnasium as gym, fnas_env
    >>> from wrappers import UncertaintyGate
    >>> env = UncertaintyGate(gym.make("FNAS-Macro-v0"), warmup=20)
    >>> obs, info = env.reset(seed=0)
    """

    def __init__(
        self,
        env: gym.Env,
        critic: Any | None = None,
        threshold: float | str = "adaptive",
        trusted_fraction: float = 0.8,
        warmup: int = 20,
        update_steps: int | None = None,
        window: int = 200,
        metrics_window: int = 200,
        max_uncertainty: float | None = None,
        trust_enabled: bool = True,
        verify_best: bool = True,
        max_relative_error: float | None = 1.0,
        quality_window: int = 20,
        encoding: str = "one_hot",
    ):
        super().__init__(env)
        base = env.unwrapped
        for hook in ("pending_architecture", "evaluate", "finish", "search_space"):
            if not hasattr(base, hook):
                raise TypeError(
                    f"UncertaintyGate wraps a fnas_env NASEnv (it needs env.unwrapped.{hook}); "
                    f"got {type(base).__name__}"
                )
        inner = env
        while isinstance(inner, gym.Wrapper):
            if not isinstance(inner, TRANSPARENT_WRAPPERS):
                raise TypeError(
                    f"{type(inner).__name__} sits between UncertaintyGate and the NAS env; "
                    "the gate completes the last step on env.unwrapped, so that wrapper would "
                    "miss it. Wrap the gate instead, e.g. Monitor(UncertaintyGate(gym.make(id)))"
                    " or make_vec_env(lambda: UncertaintyGate(gym.make(id)), ...)"
                )
            inner = inner.env
        if isinstance(threshold, str):
            if threshold != "adaptive":
                raise ValueError(f"threshold must be a float >= 0 or 'adaptive', got {threshold!r}")
        elif not (isinstance(threshold, int | float) and threshold >= 0):
            raise ValueError(f"threshold must be a float >= 0 or 'adaptive', got {threshold!r}")
        if not 0.0 < trusted_fraction < 1.0:
            raise ValueError(f"trusted_fraction must be in (0, 1), got {trusted_fraction!r}")
        if int(warmup) < 0 or int(window) < 1 or int(metrics_window) < 2:
            raise ValueError(
                f"need warmup >= 0, window >= 1, metrics_window >= 2; got {warmup}, "
                f"{window}, {metrics_window}"
            )
        if encoding not in ENCODINGS:
            raise ValueError(f"encoding must be one of {ENCODINGS}, got {encoding!r}")
        self.encoding = encoding
        space = base.search_space
        width = space.embedding_dim if encoding == "one_hot" else space.feature_dim
        if critic is None:
            from wrappers.critic import UncertaintyCritic

            critic = UncertaintyCritic(width)
        for method in ("predict", "update"):
            if not callable(getattr(critic, method, None)):
                raise TypeError(
                    f"critic must have a {method}() method, got {type(critic).__name__}"
                )
        dim = getattr(critic, "embedding_dim", width)
        if dim != width:
            raise ValueError(
                f"critic takes {dim}-dim embeddings; space {base.search_space.name!r} has "
                f"{width} with encoding {encoding!r} (a critic is tied to one search space "
                "and encoding)"
            )
        if max_relative_error is not None and not max_relative_error > 0:
            raise ValueError(f"max_relative_error must be None or > 0, got {max_relative_error!r}")
        if int(quality_window) < 2:
            raise ValueError(f"quality_window must be >= 2, got {quality_window!r}")
        if update_steps is not None and int(update_steps) < 0:
            raise ValueError(f"update_steps must be None or >= 0, got {update_steps!r}")
        self.critic = critic
        self.threshold = threshold if isinstance(threshold, str) else float(threshold)
        self.trusted_fraction = float(trusted_fraction)
        self.warmup = int(warmup)
        self.update_steps = update_steps
        self.max_uncertainty = max_uncertainty
        self.trust_enabled = bool(trust_enabled)
        self.verify_best = bool(verify_best)
        self.max_relative_error = None if max_relative_error is None else float(max_relative_error)
        self.quality_window = int(quality_window)
        self.best_reward = -math.inf  # best really evaluated (non-failed) reward
        self.num_verified = 0  # evaluated because V beat best_reward (U alone would trust)
        self._evaluated: set[str] = set()  # architectures really evaluated (not failed)
        # the last `window` architectures and their U under the critic version `_u_version`
        self._recent_x: deque[np.ndarray] = deque(maxlen=int(window))
        self._recent_u: deque[float] = deque(maxlen=int(window))
        self._u_version: Any = None
        # untrusted samples: V before training, true reward, U
        self._v: deque[float] = deque(maxlen=int(metrics_window))
        self._r: deque[float] = deque(maxlen=int(metrics_window))
        self._u: deque[float] = deque(maxlen=int(metrics_window))
        self.num_trusted = 0
        self.num_evaluated = 0
        self.num_cached = 0
        self._error_sum = 0.0
        self._error_count = 0

    # ---- controls for algorithms ----------------------------------------------------
    def set_trust_enabled(self, flag: bool) -> None:
        """Allow (True) or forbid (False) trusting; ``VecEnv.env_method`` reaches it."""
        self.trust_enabled = bool(flag)

    def current_threshold(self) -> float:
        """The U threshold now (the adaptive quantile, NaN before any U was seen)."""
        if self.threshold != "adaptive":
            limit = float(self.threshold)
        elif self._recent_u:
            limit = float(np.quantile(np.asarray(self._recent_u), self.trusted_fraction))
        else:
            limit = math.nan
        if self.max_uncertainty is not None:
            limit = min(limit, float(self.max_uncertainty)) if math.isfinite(limit) else limit
        return limit

    def relative_error(self) -> float:
        """V's mean held-out error over the last ``quality_window`` really evaluated
        samples / the mean absolute deviation of their rewards (NaN: too few samples)."""
        k = self.quality_window
        if len(self._r) < k:
            return math.nan
        v = np.asarray(self._v, dtype=np.float64)[-k:]
        r = np.asarray(self._r, dtype=np.float64)[-k:]
        spread = float(np.abs(r - r.mean()).mean())
        error = float(np.abs(v - r).mean())
        return error / spread if spread > 0 else (0.0 if error == 0 else math.inf)

    def critic_ready(self) -> bool:
        """Warm-up done and (with ``max_relative_error``) the critic accurate enough."""
        if int(getattr(self.critic, "num_samples", 0)) < self.warmup:
            return False
        if self.max_relative_error is None:
            return True
        return self.relative_error() <= self.max_relative_error  # NaN: not yet measured

    # ---- Gymnasium API ---------------------------------------------------------------
    def step(self, action):
        base = self.env.unwrapped
        arch = base.pending_architecture(action)
        if arch is None:
            return self.env.step(action)
        space = base.search_space
        embedding = space.one_hot(arch) if self.encoding == "one_hot" else space.features(arch)
        v_pred, u_pred = self.critic.predict(embedding[None])
        v, u = float(v_pred[0]), float(u_pred[0])
        if getattr(base, "is_cached", None) is not None and base.is_cached(arch):
            obs, reward, terminated, truncated, info = base.finish(action, base.evaluate(arch))
            self.num_cached += 1
            info.update(uncertainty=u, predicted_reward=v, threshold=self.current_threshold())
            return obs, reward, terminated, truncated, info
        self._remember_uncertainty(embedding, u)
        limit = self.current_threshold()
        trust = self.trust_enabled and math.isfinite(v) and u <= limit and self.critic_ready()
        if (
            trust
            and self.verify_best
            and v > self.best_reward > -math.inf
            and str(arch) not in self._evaluated
        ):
            trust = False
            self.num_verified += 1
        if trust:
            evaluation = Evaluation(
                accuracy=v,
                evaluated=False,
                cost=0.0,
                extras={"predicted_reward": v, "uncertainty": u, "threshold": limit},
            )
            obs, reward, terminated, truncated, info = base.finish(action, evaluation, reward=v)
            self.num_trusted += 1
        else:
            evaluation = base.evaluate(arch)
            obs, reward, terminated, truncated, info = base.finish(action, evaluation)
            self.num_evaluated += 1
            if not info.get("failed", False):
                self.best_reward = max(self.best_reward, float(reward))
                self._evaluated.add(str(arch))
                # V's error on this sample is measured before the critic sees it
                self._v.append(v)
                self._r.append(float(reward))
                self._u.append(u)
                self._error_sum += abs(v - float(reward))
                self._error_count += 1
                self.critic.update(embedding[None], [float(reward)], steps=self.update_steps)
        info["uncertainty"] = u
        info["predicted_reward"] = v
        info["threshold"] = limit
        return obs, reward, terminated, truncated, info

    def _remember_uncertainty(self, embedding: np.ndarray, u: float) -> None:
        """Keep the window's U values those of the current critic (U shrinks as it learns)."""
        version = getattr(self.critic, "num_updates", None)
        if (
            self.threshold == "adaptive"
            and self._recent_x
            and (version is None or version != self._u_version)
        ):
            _, fresh = self.critic.predict(np.stack(self._recent_x))
            self._recent_u.clear()
            self._recent_u.extend(float(f) for f in fresh)
        self._u_version = version
        self._recent_x.append(embedding)
        self._recent_u.append(u)

    # ---- metrics ---------------------------------------------------------------------
    def metrics(self) -> dict[str, float]:
        """What the gate did and how good the critic is (NaN where undefined).

        - ``trusted_fraction``: trusted / completed architectures so far.
        - ``trusted``, ``evaluated``, ``cached``: counts of completed architectures
          (cached: repeats served from the record, in none of the other counts).
        - ``relative_error``: V's recent held-out error / the recent rewards' spread
          (the quality check, see the class docstring).
        - ``verified``: evaluated only because V beat the best evaluated reward
          (``verify_best``; U alone would have trusted them).
        - ``v_mae``: V's mean absolute error on untrusted samples, each measured
          before the critic trained on it (all so far).
        - ``v_mae_recent``: the same over the last ``metrics_window`` samples.
        - ``v_spearman``: Spearman of V with the true reward, recent untrusted samples.
        - ``u_error_pearson``, ``u_error_spearman``: correlation of U with V's
          actual error, recent untrusted samples (biased towards high U once trust
          starts: trusted samples are never checked).
        - ``threshold``: the U threshold now.
        - ``critic_updates``: the critic's minibatch steps; ``critic_samples``: its
          training-set size.
        """
        total = self.num_trusted + self.num_evaluated
        v, r, u = (np.asarray(d, dtype=np.float64) for d in (self._v, self._r, self._u))
        error = np.abs(v - r)
        return {
            "trusted_fraction": self.num_trusted / total if total else math.nan,
            "trusted": float(self.num_trusted),
            "evaluated": float(self.num_evaluated),
            "verified": float(self.num_verified),
            "cached": float(self.num_cached),
            "relative_error": self.relative_error(),
            "v_mae": self._error_sum / self._error_count if self._error_count else math.nan,
            "v_mae_recent": float(error.mean()) if len(error) else math.nan,
            "v_spearman": _correlation(stats.spearmanr, v, r),
            "u_error_pearson": _correlation(stats.pearsonr, u, error),
            "u_error_spearman": _correlation(stats.spearmanr, u, error),
            "threshold": self.current_threshold(),
            "critic_updates": float(getattr(self.critic, "num_updates", math.nan)),
            "critic_samples": float(getattr(self.critic, "num_samples", math.nan)),
        }


def _correlation(fn, a: np.ndarray, b: np.ndarray) -> float:
    """scipy correlation, NaN for fewer than 3 points or constant input."""
    if len(a) < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return math.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(fn(a, b)[0])
