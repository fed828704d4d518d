"""Property-based fuzzing (hypothesis) of the file loaders: keypoint sequences and robot configs.

Any file (random arrays, wrong shapes and dtypes, NaN, wrong keys, truncated or corrupted
bytes) and any config mapping (extra keys, wrong types, bad values) gives a valid object
or a ValueError / FileNotFoundError that names the problem, never another exception.
``HYPOTHESIS_PROFILE=nightly`` runs 25x more examples.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra import numpy as hnp  # noqa: E402

from hand_ik.retarget import RetargetingConfig, load_retargeting_config  # noqa: E402
from hand_ik.retarget.config import ROBOT_CONFIG_DIR  # noqa: E402
from hand_pose_ros.io.keypoint_sequences import (  # noqa: E402
    KEYPOINT_ARRAY_KEYS,
    load_keypoint_sequence,
)

DTYPES = st.sampled_from(["<f8", "<f4", "<f2", "<i8", "|u1", "|b1", "<c16", "<U3", "|S2", "<M8[s]"])
SHAPES = st.one_of(
    st.sampled_from([(21, 3), (1, 21, 3), (5, 21, 3), (0, 21, 3), (5, 21, 2), (5, 20, 3), (63,)]),
    hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=6),
)


@st.composite
def arrays(draw) -> np.ndarray:
    """Random arrays of any dtype and shape, often of the keypoint shape, sometimes with NaN."""
    dtype, shape = np.dtype(draw(DTYPES)), draw(SHAPES)
    if dtype.kind == "f":
        values = st.floats(allow_nan=True, allow_infinity=True, width=8 * min(dtype.itemsize, 8))
        return draw(hnp.arrays(dtype, shape, elements=values))
    return draw(hnp.arrays(dtype, shape))


def _npz_bytes(named: dict[str, np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **named)
    return buffer.getvalue()


def _npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


@st.composite
def keypoint_files(draw) -> tuple[str, bytes, str | None]:
    """(suffix, file bytes, key): valid, odd, truncated and corrupted .npy / .npz files."""
    suffix = draw(st.sampled_from([".npy", ".npz", ".npz", ".txt", ""]))
    names = st.one_of(st.sampled_from(KEYPOINT_ARRAY_KEYS), st.sampled_from(["x", "arr_0"]))
    if suffix == ".npy" or (draw(st.booleans()) and suffix != ".npz"):
        data = _npy_bytes(draw(arrays()))
    else:
        data = _npz_bytes(draw(st.dictionaries(names, arrays(), max_size=3)))
    damage = draw(st.sampled_from(["none", "truncate", "flip", "random", "empty", "zip_junk"]))
    if damage == "truncate":
        data = data[: draw(st.integers(0, max(len(data) - 1, 0)))]
    elif damage == "flip" and data:
        raw = bytearray(data)
        for _ in range(draw(st.integers(1, 8))):
            raw[draw(st.integers(0, len(raw) - 1))] ^= draw(st.integers(1, 255))
        data = bytes(raw)
    elif damage == "random":
        data = draw(st.binary(max_size=300))
    elif damage == "empty":
        data = b""
    elif damage == "zip_junk":  # a valid zip whose member is not an array
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.writestr(draw(names) + ".npy", draw(st.binary(max_size=200)))
        data = buffer.getvalue()
    key = draw(st.one_of(st.none(), names, st.just("")))
    return suffix, data, key


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz_files")


@given(spec=keypoint_files())
def test_keypoint_files_load_or_give_a_clear_error(folder, spec):
    suffix, data, key = spec
    path = folder / f"take{suffix}"
    path.write_bytes(data)
    try:
        joints = load_keypoint_sequence(path, key=key)
    except ValueError as error:
        assert str(path) in str(error), error
    else:
        assert joints.dtype == np.float64 and joints.ndim == 3 and joints.shape[1:] == (21, 3)
        assert len(joints) > 0 and np.isfinite(joints).all()


def test_missing_keypoint_file_and_folder(folder):
    for path in (folder / "nope.npz", folder):
        with pytest.raises(FileNotFoundError, match="keypoint file not found"):
            load_keypoint_sequence(path)


def test_good_keypoint_files_load(folder):
    joints = np.random.default_rng(0).normal(size=(4, 21, 3))
    np.save(folder / "good.npy", joints.astype(np.float32))
    np.testing.assert_allclose(load_keypoint_sequence(folder / "good.npy"), joints, rtol=1e-6)
    np.savez(folder / "good.npz", other=np.zeros(3), keypoints=joints)
    np.testing.assert_array_equal(load_keypoint_sequence(folder / "good.npz"), joints)
    np.testing.assert_array_equal(load_keypoint_sequence(folder / "good.npz", "keypoints"), joints)


# --- robot configs ---------------------------------------------------------------------

#: A shipped config as a mapping (no URDF needed to validate it).
_BASE = yaml.safe_load((ROBOT_CONFIG_DIR / "leap.yaml").read_text())
_BASE["name"] = "leap"
_FIELDS = [*sorted(_BASE), "urdf", "intermediates", "neutral", "pinch", "locked_joints", "side"]

#: Any YAML-like value: scalars of every type, lists and mappings of them.
YAML_VALUES = st.recursive(
    st.one_of(
        st.none(), st.booleans(), st.integers(-(10**20), 10**20), st.text(max_size=8),
        st.floats(allow_nan=True, allow_infinity=True),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=8,
)


@st.composite
def config_dicts(draw) -> dict:
    """A shipped config with random fields replaced, removed or added, and nested damage."""
    data = {k: (dict(v) if isinstance(v, dict) else v) for k, v in _BASE.items()}
    for _ in range(draw(st.integers(1, 4))):
        action = draw(st.sampled_from(["replace", "remove", "add", "negative", "nested"]))
        name = draw(st.sampled_from(_FIELDS))
        if action == "replace":
            data[name] = draw(YAML_VALUES)
        elif action == "remove":
            data.pop(name, None)
        elif action == "add":
            data[draw(st.text(min_size=1, max_size=10))] = draw(YAML_VALUES)
        elif action == "negative":
            data[draw(st.sampled_from(["scale", "target_scales", "optimizer"]))] = draw(
                st.sampled_from([-1.0, 0.0, {"thumb_tip": -2.0}, {"iterations": -3}, [1, 2]])
            )
        elif isinstance(data.get(name), dict) and data[name]:
            inner = draw(st.sampled_from(sorted(data[name], key=str)))
            data[name][inner] = draw(YAML_VALUES)
    return data




@given(data=config_dicts())
def test_config_from_dict_is_valid_or_a_clear_error(data):
    try:
        config = RetargetingConfig.from_dict(data)
    except ValueError as error:  # any other exception fails the test
        assert str(error), "the error must say what is wrong"
    else:
        assert isinstance(config, RetargetingConfig)


@given(data=st.one_of(config_dicts(), YAML_VALUES),
       raw=st.one_of(st.none(), st.binary(max_size=80)))  # fmt: skip
def test_config_yaml_files_load_or_give_a_clear_error(folder, data, raw):
    path = folder / "robot.yaml"
    if raw is None:
        path.write_text(yaml.safe_dump(data))
    else:
        path.write_bytes(raw)
    try:
        load_retargeting_config(path)
    except (ValueError, FileNotFoundError) as error:  # any other exception fails the test
        assert str(error), "the error must say what is wrong"


def test_bugs_the_fuzzer_found_are_clear_errors(folder):
    """Each of these raised TypeError, AttributeError, BadZipFile or yaml errors before."""
    keypoints = np.zeros((2, 21, 3))
    (folder / "npy_as.npz").write_bytes(_npy_bytes(keypoints))  # an .npy named .npz loads
    np.testing.assert_array_equal(load_keypoint_sequence(folder / "npy_as.npz"), keypoints)
    (folder / "cut.npz").write_bytes(_npz_bytes({"joints": keypoints})[:40])
    with pytest.raises(ValueError, match=r"cut\.npz: not a readable \.npy / \.npz keypoint file"):
        load_keypoint_sequence(folder / "cut.npz")
    np.save(folder / "text.npy", np.full((21, 3), "a"))
    with pytest.raises(ValueError, match="keypoints must be real numbers, got dtype <U1"):
        load_keypoint_sequence(folder / "text.npy")
    bad = {
        "optimizer": ({"thumb_tip": 1.0}, r"optimizer: unknown keys \['thumb_tip'\]"),
        "joint_map": ({"0": {"index_mcp_abd": {}}}, r"joint_map.0.index_mcp_abd must be numbers"),
        "target_scales": (None, "target_scales must be a mapping"),
        "urdf": (["a"], "urdf must be a path"),
    }
    for name, (value, message) in bad.items():
        with pytest.raises(ValueError, match=message):
            RetargetingConfig.from_dict({**_BASE, name: value})
    with pytest.raises(ValueError, match=r"misses keys \['fingertips'\]"):
        RetargetingConfig.from_dict({k: v for k, v in _BASE.items() if k != "fingertips"})
    (folder / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ValueError, match="must be a YAML mapping, got list"):
        load_retargeting_config(folder / "list.yaml")
    (folder / "broken.yaml").write_text("fingertips: {a: [\n")
    with pytest.raises(ValueError, match="is not valid YAML"):
        load_retargeting_config(folder / "broken.yaml")
