"""EpisodeLstmPolicy: one LSTM call per episode, the outputs of sb3-contrib's loop."""

from __future__ import annotations

import pytest
import torch as th
from sb3_contrib.common.recurrent.policies import RecurrentActorCriticPolicy

from agents.policy import EpisodeLstmPolicy

LOOP = RecurrentActorCriticPolicy._process_sequence
ONCE = EpisodeLstmPolicy._process_sequence


def _inputs(n_seq: int, length: int, starts: th.Tensor):
    th.manual_seed(0)
    lstm = th.nn.LSTM(5, 7)
    features = th.randn(n_seq * length, 5)
    states = (th.randn(1, n_seq, 7), th.randn(1, n_seq, 7))
    return features, states, starts.reshape(-1), lstm


@pytest.mark.parametrize("first", [[1, 1, 1], [0, 0, 0], [1, 0, 1]])
def test_one_call_gives_the_loops_outputs_states_and_gradients(first):
    starts = th.zeros(3, 6)
    starts[:, 0] = th.tensor(first, dtype=th.float32)
    features, states, flat, lstm = _inputs(3, 6, starts)
    results = []
    for process in (LOOP, ONCE):
        lstm.zero_grad()
        output, (h, c) = process(features, states, flat, lstm)
        (output.square().sum() + h.sum()).backward()
        results.append(
            (output.detach(), h.detach(), c.detach(), [p.grad for p in lstm.parameters()])
        )
    (out_a, h_a, c_a, g_a), (out_b, h_b, c_b, g_b) = results
    assert out_a.shape == out_b.shape == (18, 7)
    assert th.equal(out_a, out_b) and th.equal(h_a, h_b) and th.equal(c_a, c_b)
    for a, b in zip(g_a, g_b, strict=True):
        assert th.allclose(a, b, rtol=1e-5, atol=1e-6)


def test_a_start_inside_a_sequence_takes_the_loop(monkeypatch):
    starts = th.zeros(2, 4)
    starts[:, 0] = 1.0
    starts[1, 2] = 1.0  # the second sequence holds the start of another episode
    features, states, flat, lstm = _inputs(2, 4, starts)
    expected, _ = LOOP(features, states, flat, lstm)
    calls: list[int] = []
    forward = lstm.forward
    monkeypatch.setattr(lstm, "forward", lambda x, s: calls.append(x.shape[0]) or forward(x, s))
    output, _ = ONCE(features, states, flat, lstm)
    assert th.equal(output, expected) and calls == [1, 1, 1, 1]
    calls.clear()
    starts[1, 2] = 0.0
    ONCE(features, states, starts.reshape(-1), lstm)
    assert calls == [4]  # whole episodes: one call over the 4 steps


def test_the_controllers_use_it():
    import gymnasium as gym

    import fnas_env  # noqa: F401
    from agents.controller import make_controller
    from agents.fnas_ppo import make_fnas_controller

    env = gym.make("FNAS-Macro-v0")
    assert isinstance(make_controller(env, seed=0).policy, EpisodeLstmPolicy)
    assert isinstance(make_fnas_controller(env, seed=0).policy, EpisodeLstmPolicy)
    plain = make_controller(env, seed=0, policy="MlpLstmPolicy").policy
    assert type(plain) is RecurrentActorCriticPolicy
