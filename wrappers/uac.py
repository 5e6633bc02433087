"""UAC as rollout wrappers: trusted architectures take the critic's reward unevaluated.

:class:`TrustRule` holds the critic and decides, per completed architecture, whether
to trust V's reward; :class:`VecUncertaintyGate` applies it to a whole VecEnv (one
critic in the controller's process that sees every worker's evaluations; the
design for parallel searches) and :class:`UncertaintyGate` to a single Gymnasium env.
Both hand a trusted architecture's predicted evaluation to the env through its
``provide`` hook before the step, so the env never pays for it, and neither
reaches into ``env.unwrapped``.
"""

from __future__ import annotations

import heapq
import math
import warnings
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import gymnasium as gym
import numpy as np
from scipy import stats
from stable_baselines3.common.vec_env import VecEnv

from fnas_env.arch import Architecture
from fnas_env.evaluators.base import Evaluation
from wrappers.pending import VecArchitectureWrapper

__all__ = [
    "TrustRule",
    "Decision",
    "UncertaintyGate",
    "VecUncertaintyGate",
    "ENCODINGS",
    "SELECTIONS",
]

#: what V and U see of an architecture: the paper's one-hot expanded embedding, or the
#: space's ``features`` (NB201 adds its cell's path encoding; other spaces: the one-hot)
ENCODINGS = ("one_hot", "features")
#: which architectures the adaptive threshold activates: the most uncertain (the
#: paper's U rule) or the most promising by the optimistic score V + kappa * U
SELECTIONS = ("uncertainty", "ucb")


@dataclass(frozen=True)
class Decision:
    """The rule's verdict on one completed architecture (before its step is taken)."""

    arch: Architecture
    embedding: np.ndarray
    v: float  # predicted reward
    u: float  # predicted error of v
    threshold: float  # in units of the rule's score (U, or V + kappa * U)
    trust: bool
    cached: bool
    alternative: Architecture | None = None  # the neighbour evaluated in its place

    def evaluation(self) -> Evaluation:
        """The predicted evaluation a trusted architecture is scored with (no cost)."""
        extras: dict[str, Any] = {
            "predicted_reward": self.v,
            "uncertainty": self.u,
            "threshold": self.threshold,
        }
        if self.alternative is not None:
            extras["alternative"] = str(self.alternative)
        return Evaluation(accuracy=self.v, trusted=True, cost=0.0, extras=extras)

    def replaced_by(self, alternative: Decision) -> Decision:
        """This proposal trusted, ``alternative`` evaluated in its place."""
        return replace(self, trust=True, alternative=alternative.arch)


class TrustRule:
    """Whether to trust the critic's reward for an architecture (FNAS's UAC), and learning.

    For every completed architecture :meth:`decide` asks the critic for V
    (predicted reward) and U (predicted error of V); once the step is taken,
    :meth:`observe` reads what happened from the step's ``info``: an activated
    (really evaluated) architecture's reward trains the critic (``L_V = |V - R|``,
    ``L_U = |U - L_V|``; V's error on it is measured first), a trusted one is
    counted. Failed evaluations are not learnt from (a crash says little about
    the architecture). The rule holds no env: the wrappers
    (:class:`VecUncertaintyGate`, :class:`UncertaintyGate`) apply it.

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
    architectures. ``max_uncertainty`` adds an absolute ceiling on U.

    ## Selection (beyond the paper)

    ``selection="uncertainty"`` (default) is the paper's rule: the threshold is
    on U, so the activated architectures are the most uncertain ones.
    ``selection="ucb"`` puts the threshold on the optimistic score
    ``V + kappa * U`` instead: the activated ones are the most *promising* of
    the sampled architectures (an upper confidence bound, as acquisition
    functions of predictor-based NAS such as BANANAS do), the rest are trusted.
    With ``trusted_fraction=0.9`` the controller's proposals are screened ten
    to one; the batch rule's ``max_trusted_fraction`` still bounds how many
    trusted samples PPO learns from.

    ## Screening the incumbents' neighbours (beyond the paper)

    With ``incumbents=k > 0``, whenever the rule would activate one of the
    controller's proposals, it also scores every architecture one decision away
    from the ``k`` best really evaluated ones (those not evaluated yet). If the
    best of them scores higher than the proposal, :meth:`alternative` returns it:
    the gate evaluates that neighbour instead (an evaluation outside the
    controller's episodes, recorded as activated, that trains the critic) and
    trusts the proposal. Local search around the incumbent is what lets
    regularized evolution reach a table's top quickly; here the critic chooses
    which neighbour to pay for, and the controller keeps proposing from the
    rest of the space. ``incumbents=0`` (default) is the plain rule.

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
    whatever its U (once there is an activated reward to compare with): the
    critic may skip architectures, but it never crowns one. Without the rule a
    search can converge on an architecture the critic overrates, feed the
    controller V's optimistic reward for it and never measure it, so its answer
    is unverified. Not in the paper (which does not say how its search picks
    the final architecture); ``verify_best=False`` gives the plain U rule.

    ## Arguments

    - ``space``: the search space of the architectures.
    - ``critic``: an :class:`~wrappers.critic.UncertaintyCritic` (or any object with
      ``predict``, ``update`` and ``num_samples``); default: a new critic for the
      space and encoding.
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
    - ``update_steps``: critic minibatch steps per activated architecture
      (default ``None``: the critic's ``steps_per_sample``).
    - ``window``: U values the adaptive quantile looks back over (default 200).
    - ``metrics_window``: untrusted samples the correlation metrics use (default 200).
    - ``max_uncertainty``: never trust above this U, adaptive or not (default None).
    - ``selection``: ``"uncertainty"`` (default, the paper's) or ``"ucb"`` (see
      Selection).
    - ``kappa``: weight of U in the ``"ucb"`` score (default 1.0; U is the size
      of V's error, so 1.0 is one typical error of optimism).
    - ``incumbents``: best activated architectures whose one-decision neighbours are
      screened against each proposal the rule would activate (default 0: none; see
      Screening the incumbents' neighbours).
    - ``trust_enabled``: initial value of :attr:`trust_enabled` (default True).
    - ``verify_best``: evaluate every architecture whose V beats the best activated
      reward so far (default True; see above).
    """

    def __init__(
        self,
        space: Any,
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
        selection: str = "uncertainty",
        kappa: float = 1.0,
        incumbents: int = 0,
    ):
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
        if selection not in SELECTIONS:
            raise ValueError(f"selection must be one of {SELECTIONS}, got {selection!r}")
        if not (isinstance(kappa, int | float) and math.isfinite(kappa) and kappa >= 0):
            raise ValueError(f"kappa must be a finite number >= 0, got {kappa!r}")
        if not (isinstance(incumbents, int) and incumbents >= 0):
            raise ValueError(f"incumbents must be an int >= 0, got {incumbents!r}")
        self.space = space
        self.incumbents = incumbents
        self.encoding = encoding
        self.selection = selection
        self.kappa = float(kappa)
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
                f"critic takes {dim}-dim embeddings; space {space.name!r} has "
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
        # really evaluated (not failed) architectures and their rewards
        self._activated: dict[Architecture, float] = {}
        self.num_alternatives = 0  # neighbours evaluated in place of a proposal
        # the last `window` architectures and their scores under the critic version
        # `_score_version`
        self._recent_x: deque[np.ndarray] = deque(maxlen=int(window))
        self._recent_score: deque[float] = deque(maxlen=int(window))
        self._score_version: Any = None
        # untrusted samples: V before training, true reward, U
        self._v: deque[float] = deque(maxlen=int(metrics_window))
        self._r: deque[float] = deque(maxlen=int(metrics_window))
        self._u: deque[float] = deque(maxlen=int(metrics_window))
        self.num_trusted = 0
        self.num_activated = 0
        self.num_cached = 0
        self._error_sum = 0.0
        self._error_count = 0

    # ---- controls -------------------------------------------------------------------
    def set_trust_enabled(self, flag: bool) -> None:
        """Allow (True) or forbid (False) trusting (the controller's resampling bound)."""
        self.trust_enabled = bool(flag)

    def embed(self, arch: Architecture) -> np.ndarray:
        """What V and U see of ``arch`` (the ``encoding``)."""
        if self.encoding == "one_hot":
            return self.space.one_hot(arch)
        return self.space.features(arch)

    def score(self, v: np.ndarray | float, u: np.ndarray | float) -> np.ndarray | float:
        """What the threshold is on: U (``"uncertainty"``) or V + kappa * U (``"ucb"``)."""
        return u if self.selection == "uncertainty" else v + self.kappa * u

    def current_threshold(self) -> float:
        """The score threshold now (the adaptive quantile, NaN before any score was
        seen); with ``selection="uncertainty"`` also capped at ``max_uncertainty``."""
        if self.threshold != "adaptive":
            limit = float(self.threshold)
        elif self._recent_score:
            limit = float(np.quantile(np.asarray(self._recent_score), self.trusted_fraction))
        else:
            limit = math.nan
        if self.max_uncertainty is not None and self.selection == "uncertainty":
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

    # ---- the rule -------------------------------------------------------------------
    def decide(self, arch: Architecture, cached: bool = False) -> Decision:
        """Trust ``arch`` (score it with V, unevaluated) or not; ``cached``: a repeat the
        env serves from its record for free (never trusted, never learnt from again)."""
        embedding = self.embed(arch)
        v_pred, u_pred = self.critic.predict(embedding[None])
        v, u = float(v_pred[0]), float(u_pred[0])
        if cached:
            return Decision(arch, embedding, v, u, self.current_threshold(), False, True)
        score = float(self.score(v, u))
        self._remember_score(embedding, score)
        limit = self.current_threshold()
        trust = self.trust_enabled and math.isfinite(v) and score <= limit and self.critic_ready()
        if trust and self.max_uncertainty is not None:
            trust = u <= self.max_uncertainty
        if trust and self.verify_best and v > self.best_reward > -math.inf:
            if arch not in self._activated:
                trust = False
                self.num_verified += 1
        return Decision(arch, embedding, v, u, limit, trust, False)

    def neighbours(self, arch: Architecture) -> list[Architecture]:
        """Every architecture one decision away from ``arch`` (each other choice of each)."""
        out = []
        for i, n in enumerate(self.space.num_choices):
            for c in range(n):
                if c != arch.choices[i]:
                    choices = list(arch.choices)
                    choices[i] = c
                    out.append(Architecture(arch.space, tuple(choices)))
        return out

    def alternative(self, decision: Decision) -> Decision | None:
        """A neighbour of the incumbents to evaluate instead of ``decision``'s proposal.

        None unless ``incumbents > 0``, the proposal is to be activated (not trusted,
        not a repeat), trusting is enabled, the critic is ready and the best-scoring
        unevaluated neighbour of the ``incumbents`` best activated architectures
        scores higher than the proposal (see the class docstring).
        """
        if (
            self.incumbents == 0
            or decision.trust
            or decision.cached
            or not self.trust_enabled
            or not self.critic_ready()
        ):
            return None
        best = heapq.nlargest(self.incumbents, self._activated, key=self._activated.__getitem__)
        candidates = {
            n
            for arch in best
            for n in self.neighbours(arch)
            if n not in self._activated and n != decision.arch
        }
        if not candidates:
            return None
        archs = sorted(candidates, key=lambda a: a.choices)  # deterministic order
        x = np.stack([self.embed(a) for a in archs])
        v, u = (np.asarray(a, dtype=np.float64) for a in self.critic.predict(x))
        scores = np.asarray(self.score(v, u), dtype=np.float64)
        scores[~np.isfinite(scores)] = -np.inf
        i = int(np.argmax(scores))
        if not scores[i] > float(self.score(decision.v, decision.u)):
            return None
        self.num_alternatives += 1
        return Decision(archs[i], x[i], float(v[i]), float(u[i]), decision.threshold, False, False)

    def screen(
        self,
        decision: Decision,
        evaluate_aside: Callable[[Architecture], tuple[float, dict[str, Any]]],
    ) -> Decision:
        """``decision``, or, where :meth:`alternative` finds a better-scoring neighbour,
        the proposal trusted after ``evaluate_aside(neighbour) -> (reward, info)`` has
        evaluated and recorded the neighbour (which the critic learns from)."""
        alternative = self.alternative(decision)
        if alternative is None:
            return decision
        reward, info = evaluate_aside(alternative.arch)
        self.observe(alternative, info, reward)
        return decision.replaced_by(alternative)

    def observe(self, decision: Decision, info: dict[str, Any], reward: float) -> None:
        """Count the step's outcome (its ``info``) and learn from a real evaluation.

        Adds ``uncertainty``, ``predicted_reward`` and ``threshold`` to ``info`` (and
        ``aside_activated=1`` and ``alternative`` for a proposal replaced by a neighbour).
        """
        info.update(
            uncertainty=decision.u, predicted_reward=decision.v, threshold=decision.threshold
        )
        if decision.alternative is not None:  # a neighbour was evaluated in its place
            info.update(aside_activated=1, alternative=self.space.to_string(decision.alternative))
        if info.get("cached", False):
            self.num_cached += 1
            return
        if info.get("trusted", False):
            self.num_trusted += 1
            return
        self.num_activated += 1
        if info.get("failed", False):
            return
        reward = float(info.get("reward", reward))
        self.best_reward = max(self.best_reward, reward)
        self._activated[decision.arch] = reward
        # V's error on this sample was measured before the critic sees it
        self._v.append(decision.v)
        self._r.append(reward)
        self._u.append(decision.u)
        self._error_sum += abs(decision.v - reward)
        self._error_count += 1
        self.critic.update(decision.embedding[None], [reward], steps=self.update_steps)

    def _remember_score(self, embedding: np.ndarray, score: float) -> None:
        """Keep the window's scores those of the current critic (U shrinks as it learns)."""
        version = getattr(self.critic, "num_updates", None)
        if (
            self.threshold == "adaptive"
            and self._recent_x
            and (version is None or version != self._score_version)
        ):
            v, u = self.critic.predict(np.stack(self._recent_x))
            self._recent_score.clear()
            self._recent_score.extend(float(f) for f in self.score(np.asarray(v), np.asarray(u)))
        self._score_version = version
        self._recent_x.append(embedding)
        self._recent_score.append(score)

    # ---- metrics ---------------------------------------------------------------------
    def metrics(self) -> dict[str, float]:
        """What the gate did and how good the critic is (NaN where undefined).

        - ``trusted_fraction``: trusted / completed architectures so far.
        - ``trusted``, ``activated``, ``cached``: counts of completed architectures
          (trusted: rewarded by the critic; activated: really evaluated; cached:
          repeats served from the record, in none of the other counts).
        - ``relative_error``: V's recent held-out error / the recent rewards' spread
          (the quality check, see the class docstring).
        - ``verified``: activated only because V beat the best activated reward
          (``verify_best``; U alone would have trusted them).
        - ``alternatives``: incumbents' neighbours evaluated in place of a proposal
          (``incumbents``).
        - ``v_mae``: V's mean absolute error on untrusted samples, each measured
          before the critic trained on it (all so far).
        - ``v_mae_recent``: the same over the last ``metrics_window`` samples.
        - ``v_spearman``: Spearman of V with the true reward, recent untrusted samples.
        - ``u_error_pearson``, ``u_error_spearman``: correlation of U with V's
          actual error, recent untrusted samples (biased towards high U once trust
          starts: trusted samples are never checked).
        - ``threshold``: the score threshold now (U, or V + kappa * U with ``"ucb"``).
        - ``critic_updates``: the critic's minibatch steps; ``critic_samples``: its
          training-set size.
        """
        total = self.num_trusted + self.num_activated
        v, r, u = (np.asarray(d, dtype=np.float64) for d in (self._v, self._r, self._u))
        error = np.abs(v - r)
        return {
            "trusted_fraction": self.num_trusted / total if total else math.nan,
            "trusted": float(self.num_trusted),
            "activated": float(self.num_activated),
            "verified": float(self.num_verified),
            "alternatives": float(self.num_alternatives),
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


class UncertaintyGate(gym.Wrapper):
    """UAC on a single NAS env: skip the evaluation of architectures the critic is sure about.

    ## Description

    On the last token of an episode the gate asks its :class:`TrustRule` about the
    completed architecture. A trusted one is handed to the env, through the env's
    ``provide`` hook, as a trusted :class:`~fnas_env.evaluators.base.Evaluation`
    scored with V: the env records it as ``"trusted"`` (``cost=0``) and trains
    nothing. Any other architecture is activated (really evaluated) and the critic
    learns from it. With the rule's ``incumbents``, a neighbour of the best
    architectures may be evaluated (through the env's ``evaluate`` and ``score``)
    in place of a proposal, which is then trusted. Intermediate tokens pass through
    unchanged. The hooks are reached with ``get_wrapper_attr``, and the step itself
    goes through every wrapper below the gate, so any wrapper may sit in between.

    For a VecEnv (several workers, one critic) use :class:`VecUncertaintyGate`; this
    wrapper is the single-env convenience. Several gates may share one critic.

    ## Action Space, Observation Space, Starting State, Episode End

    Those of the wrapped :class:`~fnas_env.env.NASEnv`.

    ## Rewards

    The env's reward for activated architectures; V's prediction for trusted ones.

    ## Arguments

    - ``env``: a NASEnv, wrapped or not (it needs ``pending_architecture``,
      ``is_cached`` and ``provide``).
    - ``critic``: the rule's critic (default: a new one for the env's space).
    - ``**settings``: any other :class:`TrustRule` argument (``threshold``,
      ``trusted_fraction``, ``warmup``, ``max_relative_error``, ``encoding``, ...).

    The last-step ``info`` adds ``uncertainty`` (U), ``predicted_reward`` (V)
    and ``threshold``; ``trusted`` is True (``activated`` False) for trusted
    architectures; a proposal replaced by a neighbour adds ``aside_activated=1``
    and ``alternative`` (the neighbour's string).

    ## Example

    >>> import gymnasium as gym, fnas_env
    >>> from wrappers import UncertaintyGate
    >>> env = UncertaintyGate(gym.make("FNAS-Macro-v0"), warmup=20)
    >>> obs, info = env.reset(seed=0)
    """

    def __init__(self, env: gym.Env, critic: Any | None = None, **settings: Any):
        super().__init__(env)
        for hook in ("pending_architecture", "is_cached", "provide", "search_space"):
            if not _has_wrapper_attr(env, hook):
                raise TypeError(
                    f"UncertaintyGate wraps a fnas_env NASEnv (it needs its {hook!r}); "
                    f"got {type(env.unwrapped).__name__}"
                )
        self.rule = TrustRule(env.get_wrapper_attr("search_space"), critic, **settings)

    @property
    def critic(self) -> Any:
        return self.rule.critic

    @property
    def trust_enabled(self) -> bool:
        return self.rule.trust_enabled

    @property
    def best_reward(self) -> float:
        return self.rule.best_reward

    def set_trust_enabled(self, flag: bool) -> None:
        """Allow (True) or forbid (False) trusting; ``VecEnv.env_method`` reaches it."""
        self.rule.set_trust_enabled(flag)

    def current_threshold(self) -> float:
        return self.rule.current_threshold()

    def metrics(self) -> dict[str, float]:
        """:meth:`TrustRule.metrics`."""
        return self.rule.metrics()

    def step(self, action):
        arch = self.env.get_wrapper_attr("pending_architecture")(action)
        if arch is None:
            return self.env.step(action)
        decision = self.rule.decide(arch, cached=self.env.get_wrapper_attr("is_cached")(arch))
        decision = self.rule.screen(decision, self._evaluate_aside)
        if decision.trust:
            self.env.get_wrapper_attr("provide")(decision.evaluation(), reward=decision.v)
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.rule.observe(decision, info, float(reward))
        return obs, reward, terminated, truncated, info

    def _evaluate_aside(self, arch: Architecture) -> tuple[float, dict[str, Any]]:
        """Evaluate ``arch`` outside the episode and record it in the env's record."""
        evaluation = self.env.get_wrapper_attr("evaluate")(arch)
        return self.env.get_wrapper_attr("score")(arch, evaluation)


class VecUncertaintyGate(VecArchitectureWrapper):
    """UAC for a VecEnv: one critic in the controller's process, every worker's evaluations.

    ## Description

    Before the actions go to the workers, the gate works out which architecture
    each env's action completes (:class:`~wrappers.pending.PendingArchitectures`)
    and asks its :class:`TrustRule` about each. A trusted architecture is handed to
    its env as the critic's evaluation (``env_method("provide", ...)``), so the
    worker completes it at once without training; the others are evaluated by the
    workers in parallel. When the step returns, every real evaluation, from any
    worker, trains the one critic. A neighbour of the incumbents the rule picks in
    place of a proposal (``incumbents``) is evaluated at once on the env that
    completes the proposal, and recorded in the search's record. Works over
    ``DummyVecEnv``, ``SubprocVecEnv`` and
    :class:`~fnas_env.ray_vec_env.RayVecEnv` alike; it reaches the workers only
    through the VecEnv API. Repeats are asked of a
    :class:`~wrappers.record.VecSearchRecord` below the gate when there is one (the
    search's one record), else of the env that completes them (``is_cached``).

    ## Arguments

    - ``venv``: a VecEnv of NAS envs (optionally under a ``VecSearchRecord``).
    - ``critic``: the rule's critic (default: a new one for the envs' space).
    - ``**settings``: any other :class:`TrustRule` argument.

    Each last-step ``info`` adds ``uncertainty``, ``predicted_reward`` and
    ``threshold``; ``trusted`` is True (``activated`` False) for trusted
    architectures; a proposal replaced by a neighbour adds ``aside_activated=1``
    and ``alternative``.

    ## Example

    >>> from stable_baselines3.common.env_util import make_vec_env
    >>> venv = VecUncertaintyGate(VecSearchRecord(make_vec_env("FNAS-Macro-v0", n_envs=4)))
    >>> model = make_fnas_controller(venv, seed=0)
    """

    def __init__(self, venv: VecEnv, critic: Any | None = None, **settings: Any):
        super().__init__(venv)
        self.rule = TrustRule(self.search_space, critic, **settings)
        self._decisions: list[Decision | None] = [None] * self.num_envs
        from stable_baselines3.common.vec_env import unwrap_vec_wrapper

        from wrappers.record import VecSearchRecord

        self._record = unwrap_vec_wrapper(venv, VecSearchRecord)

    @property
    def critic(self) -> Any:
        return self.rule.critic

    def set_trust_enabled(self, flag: bool) -> None:
        """Allow (True) or forbid (False) trusting (the controller's resampling bound)."""
        self.rule.set_trust_enabled(flag)

    def metrics(self) -> dict[str, float]:
        """:meth:`TrustRule.metrics`."""
        return self.rule.metrics()

    def _is_cached(self, index: int, arch: Architecture) -> bool:
        if self._record is not None:
            return self._record.is_cached(arch)
        return bool(self.venv.env_method("is_cached", arch, indices=[index])[0])

    def before_completion(self, index: int, arch: Architecture) -> None:
        decision = self.rule.decide(arch, cached=self._is_cached(index, arch))
        decision = self.rule.screen(decision, lambda arch: self._evaluate_aside(index, arch))
        if decision.trust:
            self.venv.env_method(
                "provide", decision.evaluation(), reward=decision.v, indices=[index]
            )
        self._decisions[index] = decision

    def _evaluate_aside(self, index: int, arch: Architecture) -> tuple[float, dict[str, Any]]:
        """Evaluate ``arch`` on env ``index`` outside an episode and record it (in the
        search's one record when there is one, else in that env's)."""
        if self._record is not None:
            return self._record.evaluate_aside(index, arch)
        evaluation = self.venv.env_method("evaluate", arch, indices=[index])[0]
        return self.venv.env_method("score", arch, evaluation, indices=[index])[0]

    def after_completion(
        self, index: int, arch: Architecture, info: dict[str, Any], reward: float
    ) -> None:
        decision = self._decisions[index]
        if decision is not None:
            self.rule.observe(decision, info, reward)


def _has_wrapper_attr(env: gym.Env, name: str) -> bool:
    try:
        env.get_wrapper_attr(name)
    except AttributeError:
        return False
    return True


def _correlation(fn, a: np.ndarray, b: np.ndarray) -> float:
    """scipy correlation, NaN for fewer than 3 points or constant input."""
    if len(a) < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return math.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(fn(a, b)[0])
