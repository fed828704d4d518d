"""Load hand models in the MANO file layout: official MANO pickles and our npz assets.

- MANO_RIGHT.pkl / MANO_LEFT.pkl (from the MANO website) store chumpy arrays;
  chumpy does not install on current Python/numpy, so ``load_mano_pickle``
  unpickles with a stand-in class for every ``chumpy.*`` class and keeps the
  array each one wraps.
- Our npz assets (``hand_ik/assets/open_hand_*.npz``, built by
  ``tools/build_hand_asset.py``) are checked against the sha256 in their JSON
  manifest.

Both return a plain dict of numpy arrays with the keys of
``hand_model_data.REQUIRED_KEYS`` (faces as ``faces``) plus ``tip_vertex_ids``
and, when present, per-corner UVs ``vt``/``ft``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from hand_ik.hand_model_data import (
    MANO_TIP_VERTEX_IDS,
    NUM_JOINTS16,
    REQUIRED_KEYS,
)

LOG = logging.getLogger(__name__)

ASSET_DIR = Path(__file__).resolve().parent / "assets"
REBUILD_HINT = (
    "rebuild it with `python tools/build_hand_asset.py` (needs requirements/assets.txt) "
    "or restore it from git"
)
MANO_HINT = (
    "download MANO_RIGHT.pkl / MANO_LEFT.pkl from https://mano.is.tue.mpg.de (licence required)"
)

#: Mirror applied to the right model to make the left one: z -> -z in the model
#: frame (the X-Y plane through the wrist: palm normal and finger axis stay,
#: the thumb side flips).
MIRROR_DIAG = np.array([1.0, 1.0, -1.0])


class _ChumpyStandIn:
    """Stand-in for any chumpy class met while unpickling: keeps the pickled state."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._args = args

    def __setstate__(self, state: Any) -> None:
        self._state = state

    def to_numpy(self) -> np.ndarray:
        state = getattr(self, "_state", None)
        if isinstance(state, dict) and "x" in state:
            return np.asarray(state["x"])
        if isinstance(state, tuple) and state and isinstance(state[-1], dict) and "x" in state[-1]:
            return np.asarray(state[-1]["x"])
        raise ValueError(
            "a chumpy object in the pickle holds no plain array ('x'); only chumpy "
            "arrays wrapping numpy data are supported"
        )


class _ChumpyFreeUnpickler(pickle.Unpickler):
    """Unpickler mapping every ``chumpy`` class to ``_ChumpyStandIn``."""

    def find_class(self, module: str, name: str) -> Any:
        if module == "chumpy" or module.startswith("chumpy."):
            return _ChumpyStandIn
        return super().find_class(module, name)


def _to_numpy(value: Any) -> Any:
    if isinstance(value, _ChumpyStandIn):
        return value.to_numpy()
    if hasattr(value, "toarray"):  # scipy.sparse (MANO's J_regressor)
        return np.asarray(value.toarray())
    return value


def npz_sha256(path: str | Path) -> str:
    """sha256 hex digest of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_mano_pickle(path: str | Path) -> dict[str, np.ndarray]:
    """Load an official MANO pickle (or one in its layout) without chumpy.

    Args:
        path: MANO_RIGHT.pkl / MANO_LEFT.pkl.

    Returns:
        Validated model arrays (see module docstring); fingertips are smplx's
        MANO tip vertex ids.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"MANO model file not found: {path} ({MANO_HINT})")
    with open(path, "rb") as handle:
        try:
            raw = _ChumpyFreeUnpickler(handle, encoding="latin1").load()
        except (pickle.UnpicklingError, EOFError, AttributeError, ImportError) as exc:
            raise ValueError(f"{path}: not a readable MANO pickle ({exc}); {MANO_HINT}") from exc
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected a dict of arrays, got {type(raw).__name__}")
    data = {key: _to_numpy(value) for key, value in raw.items()}
    if "f" in data and "faces" not in data:
        data["faces"] = data.pop("f")
    data.setdefault("tip_vertex_ids", np.array(MANO_TIP_VERTEX_IDS))
    return validate_model_arrays(data, path)


def load_model_npz(path: str | Path, check_manifest: bool = True) -> dict[str, np.ndarray]:
    """Load a model npz in our layout; verify it against ``<stem>.json`` when present.

    Raises:
        FileNotFoundError: missing file (message names it and how to rebuild).
        ValueError: sha256 mismatch with the manifest, or bad keys/shapes.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"hand model asset not found: {path}; {REBUILD_HINT}")
    manifest_path = path.with_suffix(".json")
    if check_manifest and manifest_path.is_file():
        expected = json.loads(manifest_path.read_text()).get("sha256")
        actual = npz_sha256(path)
        if expected != actual:
            raise ValueError(
                f"{path}: sha256 {actual[:12]}... does not match its manifest "
                f"{manifest_path.name} ({str(expected)[:12]}...): the file is corrupt or stale; "
                f"{REBUILD_HINT}"
            )
    elif check_manifest:
        LOG.info("%s has no manifest %s: not checked", path, manifest_path.name)
    with np.load(path, allow_pickle=False) as npz:
        data = {key: npz[key] for key in npz.files}
    return validate_model_arrays(data, path)


def load_model_file(path: str | Path) -> dict[str, np.ndarray]:
    """Load a MANO pickle (``.pkl``) or one of our npz assets (``.npz``)."""
    path = Path(path)
    if path.suffix == ".pkl":
        return load_mano_pickle(path)
    if path.suffix == ".npz":
        return load_model_npz(path)
    raise ValueError(f"{path}: unknown hand model file type (expected .pkl or .npz)")


def validate_model_arrays(data: dict[str, Any], source: str | Path) -> dict[str, np.ndarray]:
    """Check keys and shapes; return float64/int64 numpy arrays.

    Raises:
        ValueError: naming the file and the missing or malformed key.
    """
    hint = REBUILD_HINT if str(source).endswith(".npz") else MANO_HINT
    missing = [key for key in REQUIRED_KEYS if key not in data]
    if missing:
        raise ValueError(
            f"{source}: not a MANO-layout hand model, missing {missing} "
            f"(expected {REQUIRED_KEYS}); {hint}"
        )
    out: dict[str, np.ndarray] = {}
    for key in (*REQUIRED_KEYS, "tip_vertex_ids", "vt", "ft"):
        if key in data:
            out[key] = np.asarray(data[key])
    v = out["v_template"].shape[0]

    def check(key: str, shape: tuple) -> None:
        actual = out[key].shape
        if len(actual) != len(shape) or any(
            s is not None and a != s for a, s in zip(actual, shape, strict=False)
        ):
            raise ValueError(
                f"{source}: '{key}' has shape {actual}, expected {REQUIRED_KEYS.get(key, shape)} "
                f"with V={v}; {hint}"
            )

    check("v_template", (v, 3))
    check("shapedirs", (v, 3, None))
    check("posedirs", (v, 3, 135))
    check("J_regressor", (NUM_JOINTS16, v))
    check("weights", (v, NUM_JOINTS16))
    check("kintree_table", (2, NUM_JOINTS16))
    check("faces", (None, 3))
    check("hands_mean", (45,))
    check("hands_components", (None, 45))
    if "tip_vertex_ids" not in out:
        raise ValueError(f"{source}: missing 'tip_vertex_ids' (5,) thumb..little; {hint}")
    check("tip_vertex_ids", (5,))
    if ("vt" in out) != ("ft" in out):
        raise ValueError(f"{source}: 'vt' and 'ft' must come together; {hint}")
    if "ft" in out:
        check("vt", (None, 2))
        check("ft", (out["faces"].shape[0], 3))
    for key in ("faces", "kintree_table", "tip_vertex_ids", "ft"):
        if key in out:
            out[key] = out[key].astype(np.int64)
    for key in out:
        if out[key].dtype.kind == "f":
            out[key] = out[key].astype(np.float64)
    if out["faces"].max() >= v or out["tip_vertex_ids"].max() >= v:
        raise ValueError(f"{source}: faces or tip_vertex_ids index past V={v}; {hint}")
    return out


def mirror_model_arrays(data: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Mirror a right-hand model into a left one (or back) through the model's X-Y plane.

    Positions get ``z -> -z``; a joint rotation R becomes M R M (M = diag(1, 1, -1)),
    i.e. axis-angle (x, y, z) -> (-x, -y, z); faces and UV faces reverse winding so
    normals still point out. Weights, regressor and tip ids are unchanged.
    """
    m = MIRROR_DIAG
    rot_sign = -m  # det(M) * M for axis-angle vectors
    out = dict(data)
    out["v_template"] = data["v_template"] * m
    out["shapedirs"] = data["shapedirs"] * m[None, :, None]
    # posedirs[v, c, 9 * j + 3 * a + b] multiplies (R_j - I)_ab; R' = M R M flips
    # entry (a, b) by m_a * m_b and the offset's coordinate c by m_c.
    entry_sign = np.tile(np.outer(m, m).reshape(9), data["posedirs"].shape[2] // 9)
    out["posedirs"] = data["posedirs"] * m[None, :, None] * entry_sign[None, None, :]
    out["hands_mean"] = (data["hands_mean"].reshape(15, 3) * rot_sign).reshape(45)
    comps = data["hands_components"]
    out["hands_components"] = (comps.reshape(comps.shape[0], 15, 3) * rot_sign).reshape(comps.shape)
    out["faces"] = data["faces"][:, [0, 2, 1]]
    if "ft" in data:
        out["ft"] = data["ft"][:, [0, 2, 1]]
    return out
