"""Search spaces: round trips, encodings, mutation, errors, documented values."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from fnas_env import Architecture
from fnas_env.spaces import SPACES, get_space
from fnas_env.spaces.mnas import BASE_STAGES

SPACE_NAMES = ["mnas", "anb", "macro", "nb201"]
#: (decisions, size, blocks) per space, from each space's documentation.
EXPECTED = {
    "mnas": (42, (4 * 2 * 2 * 3 * 3 * 3) ** 7, 7),
    "anb": (28, (3 * 2 * 3 * 2) ** 6 * (3 * 2 * 4 * 2), 7),
    "macro": (8, 3**8, 8),
    "nb201": (6, 5**6, 6),
}


@pytest.fixture(params=SPACE_NAMES)
def space(request):
    return get_space(request.param)


def _samples(space, n=200, seed=0):
    rng = np.random.default_rng(seed)
    return [space.sample(rng) for _ in range(n)]


def test_registry_has_the_four_spaces():
    assert sorted(SPACES) == sorted(SPACE_NAMES)
    with pytest.raises(ValueError, match="unknown search space 'nope'.*anb"):
        get_space("nope")


def test_sizes(space):
    decisions, size, blocks = EXPECTED[space.name]
    assert space.num_decisions == decisions
    assert space.size == size
    assert len(space.blocks) == blocks
    # every decision belongs to exactly one block
    assert sorted(i for b in space.blocks for i in b) == list(range(decisions))


def test_string_round_trip(space):
    for arch in _samples(space):
        text = space.to_string(arch)
        assert isinstance(text, str)
        assert space.from_string(text) == arch
        assert str(arch) == text
    assert space.from_string(space.example_string()).choices == (0,) * space.num_decisions


def test_one_hot_inverse_and_dimension(space):
    for arch in _samples(space, 100):
        v = space.one_hot(arch)
        assert v.shape == (space.embedding_dim,) == (sum(space.num_choices),)
        assert v.dtype == np.float32
        assert v.sum() == space.num_decisions
        assert set(np.unique(v)) <= {0.0, 1.0}
        assert space.from_one_hot(v) == arch
    with pytest.raises(ValueError, match="expected shape"):
        space.from_one_hot(np.zeros(space.embedding_dim + 1))


def test_block_embeddings(space):
    arch = _samples(space, 1)[0]
    blocks = space.block_embeddings(arch)
    assert len(blocks) == len(space.blocks)
    for b, (emb, idx) in enumerate(zip(blocks, space.blocks)):
        assert emb.index == b
        assert emb.embedding.shape == (sum(space.decisions[i].n for i in idx),)
        assert emb.embedding.sum() == len(idx)
        assert isinstance(emb.label, str) and emb.label
    # concatenated in block order they are the one-hot embedding (blocks are contiguous here)
    order = [i for b in space.blocks for i in b]
    if order == list(range(space.num_decisions)):
        np.testing.assert_array_equal(
            np.concatenate([e.embedding for e in blocks]), space.one_hot(arch)
        )


def test_mutate_changes_exactly_one_decision(space):
    rng = np.random.default_rng(1)
    for arch in _samples(space, 200):
        child = space.mutate(arch, rng)
        space.validate(child)
        assert sum(a != b for a, b in zip(arch.choices, child.choices)) == 1


def test_sample_covers_every_choice(space):
    samples = np.array([a.choices for a in _samples(space, 400)])
    for i, n in enumerate(space.num_choices):
        assert set(samples[:, i]) == set(range(n)), space.decisions[i].name


def test_to_tokens_are_choices(space):
    arch = _samples(space, 1)[0]
    assert space.to_tokens(arch) == arch.choices


@pytest.mark.parametrize("name", SPACE_NAMES)
def test_validate_errors(name):
    space = get_space(name)
    other = next(s for s in SPACE_NAMES if s != name)
    with pytest.raises(ValueError, match=f"space {other!r} given to space {name!r}"):
        space.validate(Architecture(other, (0,) * space.num_decisions))
    with pytest.raises(ValueError, match=f"has {space.num_decisions} decisions, got 3"):
        space.validate(Architecture(name, (0, 0, 0)))
    bad = [0] * space.num_decisions
    bad[1] = space.decisions[1].n
    with pytest.raises(ValueError, match=rf"decision 1 \({space.decisions[1].name}\).*got"):
        space.validate(Architecture(name, tuple(bad)))
    with pytest.raises(ValueError, match="got -1"):
        space.from_choices([-1] + [0] * (space.num_decisions - 1))
    with pytest.raises(TypeError, match="expected an Architecture"):
        space.validate((0,) * space.num_decisions)


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("mnas", "mb6_k3_se0.25_id_x1_l+0", "expects 7 blocks"),
        ("mnas", "|".join(["mb6_k7_se0.25_id_x1_l+0"] * 7), r"b0\.kernel accepts \[3, 5\]"),
        ("mnas", "|".join(["mb9_k3_se0.25_id_x1_l+0"] * 7), "b0.op accepts"),
        ("mnas", "|".join(["mb6_k3_id_x1_l+0"] * 7), "cannot parse block 0"),
        ("anb", "e6_k3_l2_se1", "expects 7 blocks"),
        ("anb", "|".join(["e5_k3_l2_se1"] * 7), r"block0_e accepts \[1, 4, 6\]"),
        ("anb", "|".join(["e6_k3_l4_se1"] * 7), r"block0_l accepts \[1, 2, 3\]"),
        ("anb", "|".join(["e6_k3_l2_se2"] * 7), "se"),
        ("macro", "0201210", "expects 8 digits"),
        ("macro", "02012103", "expects 8 digits in 0-2"),
        ("nb201", "|none~0|+|none~0|none~1|", "not a NAS-Bench-201 cell string"),
        ("nb201", "|conv~0|+|none~0|none~1|+|none~0|none~1|none~2|", "bad edge"),
        ("nb201", "|none~1|+|none~0|none~1|+|none~0|none~1|none~2|", "bad edge"),
    ],
)
def test_from_string_errors(name, text, message):
    with pytest.raises(ValueError, match=message):
        get_space(name).from_string(text)


def test_anb_layers_of_block5_go_to_four():
    space = get_space("anb")
    assert [space.decisions[4 * b + 2].choices for b in range(7)] == [(1, 2, 3)] * 5 + [
        (1, 2, 3, 4),
        (1, 2, 3),
    ]
    arch = space.from_string("|".join(["e6_k5_l3_se1"] * 5 + ["e1_k3_l4_se0", "e4_k3_l1_se0"]))
    record = space.to_upstream(arch)
    assert record["block5_l"] == 4 and record["block5_e"] == 1 and record["block0_se"] is True
    assert space.from_upstream(record) == arch


def test_mnas_base_config_is_mobilenet_v2():
    # MobileNetV2 (Sandler et al. 2018), Table 2: expansion t, channels c, repeats n, stride s
    assert BASE_STAGES == (
        (1, 16, 1, 1),
        (6, 24, 2, 2),
        (6, 32, 3, 2),
        (6, 64, 4, 2),
        (6, 96, 3, 1),
        (6, 160, 3, 2),
        (6, 320, 1, 1),
    )
    space = get_space("mnas")
    assert [d.choices for d in space.decisions[:6]] == [
        ("conv", "dwconv", "mb3", "mb6"),
        (3, 5),
        (0.0, 0.25),
        ("pool", "id", "none"),
        (0.75, 1.0, 1.25),
        (-1, 0, 1),
    ]
    base = space.from_string("|".join(["mb6_k3_se0_id_x1_l+0"] * 7))
    for b, (_, c, n, s) in enumerate(BASE_STAGES):
        cfg = space.block_config(base, b)
        assert (cfg["out_channels"], cfg["layers"], cfg["stride"]) == (c, n, s)
        assert cfg["expansion"] == 6 and cfg["op"] == "mb6" and cfg["skip"] == "id"


@pytest.mark.parametrize(
    ("block", "mult", "delta", "channels", "layers"),
    [
        (0, 0.75, -1, 16, 1),  # at least one layer, at least 8 channels (16*0.75 -> 16)
        (0, 1.25, +1, 24, 2),  # 16*1.25 = 20 rounds up to 24, distinct from x1.0
        (1, 0.75, 0, 16, 2),
        (3, 1.25, +1, 80, 5),
        (6, 0.75, -1, 240, 1),
    ],
)
def test_mnas_block_config_filters_and_layers(block, mult, delta, channels, layers):
    space = get_space("mnas")
    parts = ["mb6_k3_se0_id_x1_l+0"] * 7
    parts[block] = f"dwconv_k5_se0.25_pool_x{mult:g}_l{delta:+d}"
    cfg = space.block_config(space.from_string("|".join(parts)), block)
    assert (cfg["out_channels"], cfg["layers"]) == (channels, layers)
    assert (cfg["op"], cfg["kernel"], cfg["se"], cfg["skip"], cfg["expansion"]) == (
        "dwconv",
        5,
        0.25,
        "pool",
        1,
    )


def test_architecture_is_hashable_value():
    a = Architecture("macro", [0, 1, 2, 0, 1, 2, 0, 1])
    b = Architecture("macro", (0, 1, 2, 0, 1, 2, 0, 1))
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1
    with pytest.raises(AttributeError):
        a.choices = (0,) * 8  # type: ignore[misc]


def test_core_imports_without_torch():
    code = (
        "import sys\n"
        "import fnas_env, fnas_env.spaces, fnas_env.env, fnas_env.reward, fnas_env.record\n"
        "import fnas_env.envs, fnas_env.evaluators.tabular, fnas_env.evaluators.anb\n"
        "import fnas_env.run, fnas_env.report, fnas_env.cli\n"
        "fnas_env.cli.build_parser()  # `fnas --help` loads no torch\n"
        "import gymnasium as gym\n"
        "assert 'FNAS-NB201-v0' in gym.registry\n"
        "bad = sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.'))\n"
        "assert not bad, bad\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_nb201_features_add_the_cells_paths():
    """BANANAS's path encoding: one indicator per op sequence along an input-output path."""
    space = get_space("nb201")
    arch = space.from_string(
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|none~1|avg_pool_3x3~2|"
    )
    f = space.features(arch)
    assert f.shape == (space.feature_dim,) == (30 + 84,)
    np.testing.assert_array_equal(f[:30], space.one_hot(arch))
    # paths: 0>3 skip (index 0); 0>1>3 cut by none; 0>2>3 conv3, pool: 4 + (2 + 3 * 4) = 18;
    # 0>1>2>3 conv3, conv3, pool: 20 + (2 + 2 * 4 + 3 * 16) = 78
    assert np.flatnonzero(f[30:]).tolist() == [0, 18, 78]


def test_other_spaces_features_are_the_one_hot():
    space = get_space("macro")
    arch = space.sample(np.random.default_rng(0))
    assert space.feature_dim == space.embedding_dim
    np.testing.assert_array_equal(space.features(arch), space.one_hot(arch))


@pytest.mark.parametrize(
    "arch",
    [
        Architecture("nb201", (99, 0, 0, 0, 0, 0)),  # a choice out of range
        Architecture("nb201", (0, 0)),  # too few decisions
        Architecture("no-such-space", (0,)),
    ],
)
def test_str_of_an_invalid_architecture_says_why_instead_of_raising(arch):
    text = str(arch)
    assert text.startswith("Architecture(") and "not a valid architecture" in text
    assert f"{arch}"  # f-strings in error messages are safe too
