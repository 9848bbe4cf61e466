"""Snapshots written by NVIDIA's and rosinality's own code load, and the networks reproduce their outputs.

The fixtures under ``tests/fixtures`` were made by running the official implementations
(``benchmarks/official_snapshots.py``, ``benchmarks/rosinality_checkpoints.py``; see the README
there). Tolerances are the float32 differences between two implementations of the same network.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from embedding.checkpoints import CheckpointError, load_discriminator, load_generator, nvidia

FIXTURES = Path(__file__).parent / "fixtures"
NVIDIA = sorted((FIXTURES / "nvidia").glob("*.pkl"))
ROSINALITY = sorted(p for p in (FIXTURES / "rosinality").glob("*.pt") if not p.name.endswith(".outputs.pt"))
TOL = 1e-5
MULTIARRAY = np._core.multiarray if hasattr(np, "_core") else np.core.multiarray


def _outputs(path: Path) -> dict:
    return torch.load(path.parent / f"{path.stem}.outputs.pt", weights_only=True)


def _delta(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape
    return (a - b).abs().max().item()


def test_fixtures_cover_what_real_snapshots_hold():
    """Both numpy module names, protocol 3 and 4, TF-converted and stylegan3-repo layouts are present."""
    names = {p.stem for p in NVIDIA}
    assert {"ada_numpy1_protocol3", "ada_numpy2_protocol4", "stylegan3_numpy2_protocol4",
            "legacy_numpy1_protocol3"} <= names
    blob = (FIXTURES / "nvidia" / "ada_numpy1_protocol3.pkl").read_bytes()
    assert blob[:2] == b"\x80\x03" and b"numpy.core.multiarray\nscalar" in blob
    assert b"numpy._core.multiarray" in (FIXTURES / "nvidia" / "ada_numpy2_protocol4.pkl").read_bytes()


@pytest.mark.parametrize("path", NVIDIA, ids=lambda p: p.stem)
def test_nvidia_snapshot_matches_official_outputs(path: Path):
    ref = _outputs(path)
    g, d = load_generator(path), load_discriminator(path)
    with torch.no_grad():
        assert _delta(g.mapping(ref["z"]), ref["ws"]) <= TOL
        assert _delta(g.mapping(ref["z"], truncation_psi=0.7), ref["ws_trunc"]) <= TOL
        assert _delta(g.mapping(ref["z"], truncation_psi=0.5, truncation_cutoff=2), ref["ws_cutoff"]) <= TOL
        assert _delta(g.synthesis(ref["ws"], noise_mode="const"), ref["img_const"]) <= TOL
        assert _delta(g.synthesis(ref["ws"], noise_mode="none"), ref["img_none"]) <= TOL
        noise = [n[None, None] for n in ref["noise"]]
        assert g.synthesis.layer_names == ref["noise_layers"]
        assert _delta(g.synthesis(ref["ws"], noise=noise), ref["img_noise"]) <= TOL
        assert _delta(g(ref["z"], truncation_psi=0.7), ref["img_full"]) <= TOL
        assert _delta(d(ref["d_image"]), ref["d_score"]) <= TOL
        assert _delta(d(ref["img_const"]), ref["d_score_fake"]) <= TOL
    assert (ref["img_const"] - ref["img_noise"]).abs().max() > 0.1  # the given noise matters


@pytest.mark.parametrize("path", NVIDIA[:1], ids=lambda p: p.stem)
def test_nvidia_snapshot_training_generator_differs_from_ema(path: Path):
    g, g_ema = load_generator(path, network="G"), load_generator(path)
    assert max(_delta(a, b) for a, b in zip(g.parameters(), g_ema.parameters(), strict=True)) > 0.5


@pytest.mark.parametrize("path", ROSINALITY, ids=lambda p: p.stem)
def test_rosinality_checkpoint_matches_official_outputs(path: Path):
    ref = _outputs(path)
    g, d = load_generator(path), load_discriminator(path)
    with torch.no_grad():
        assert _delta(g.mapping(ref["z"])[:, 0], ref["w"]) <= TOL
        if path.stem.startswith("converted"):  # convert_weight.py stores the mean latent
            assert _delta(g.w_avg, ref["latent_avg"]) == 0
            assert _delta(g.mapping(ref["z"], truncation_psi=0.7)[:, 0], ref["w_trunc"]) <= TOL
        else:  # a training checkpoint stores no mean: it is estimated, as rosinality's mean_latent does
            assert _delta(g.w_avg, ref["latent_avg"]) < 0.05 * ref["latent_avg"].abs().max()
        ws = ref["w"][:, None].repeat(1, g.num_ws, 1)
        assert _delta(g.synthesis(ws, noise_mode="const"), ref["img_const"]) <= TOL
        noise = [n.expand(1, 1, -1, -1) for n in ref["noise"]]
        assert _delta(g.synthesis(ws, noise=noise), ref["img_noise"]) <= TOL
        assert _delta(g.synthesis(ref["ws_mixed"], noise_mode="const"), ref["img_mixed"]) <= TOL
        assert _delta(d(ref["d_image"]), ref["d_score"]) <= TOL


# ------------------------------------------------------------------------------- numpy inside NVIDIA pickles


def _unpickle(blob: bytes, tmp_path: Path):
    return nvidia._RestrictedUnpickler(io.BytesIO(blob), tmp_path / "x.pkl").load()


@pytest.mark.parametrize("protocol", [3, 4, 5])
def test_numeric_numpy_values_are_rebuilt_as_plain_data(tmp_path, protocol):
    array = np.arange(6, dtype=">f4").reshape(2, 3)
    data = _unpickle(pickle.dumps({"gain": np.float64(0.125), "n": np.int64(-3), "flag": np.bool_(True),
                                   "a": array, "f": np.asfortranarray(array)}, protocol=protocol), tmp_path)
    assert data["gain"] == 0.125 and type(data["gain"]) is float
    assert data["n"] == -3 and data["flag"] is True
    for key in ("a", "f"):
        assert isinstance(data[key], nvidia.NumpyArray)
        np.testing.assert_array_equal(data[key].value, array)


class _Reduces:
    """Pickles as ``fn(*args)``, with an optional state for ``__setstate__``."""

    def __init__(self, fn, args: tuple, state=None) -> None:
        self.fn, self.args, self.state = fn, args, state

    def __reduce__(self):
        return (self.fn, self.args) if self.state is None else (self.fn, self.args, self.state)


@pytest.mark.parametrize(("payload", "match"), [
    (lambda: np.array([print, "x"], dtype=object), "numpy dtype 'O8'"),
    (lambda: _Reduces(MULTIARRAY.scalar, (np.dtype(object), print)), "numpy dtype 'O8'"),
    (lambda: np.zeros(2, dtype=[("a", "<f4"), ("b", "<i4")]), "numpy dtype 'V8'"),
    (lambda: np.array(["text"]), "numpy dtype 'U4'"),
    (lambda: np.ma.masked_array([1.0, 2.0]), "numpy.ma.core._mareconstruct"),
    (lambda: np.rec.array([(1, 2.0)]), "numpy.rec"),
    (lambda: _Reduces(np.load, ("/etc/passwd",)), "numpy.load"),
    (lambda: _Reduces(np.frombuffer, (b"\0" * 8,)), "frombuffer"),
], ids=["object-array", "object-scalar", "structured", "string", "masked", "record-subclass", "np.load",
        "frombuffer"])
def test_hostile_numpy_content_is_refused(tmp_path, payload, match):
    path = tmp_path / "network-snapshot.pkl"
    path.write_bytes(pickle.dumps({"G_ema": payload()}, protocol=3))
    with pytest.raises(CheckpointError, match=rf"(?s){path}.*refused to load.*({match})"):
        load_generator(path)


def test_numpy_array_with_lying_shape_is_refused(tmp_path):
    dtype_state = (3, "<", None, None, None, -1, -1, 0)
    dtype = _Reduces(np.dtype, ("f4", False, True), dtype_state)
    lying = _Reduces(MULTIARRAY._reconstruct, (np.ndarray, (0,), b"b"),
                     (1, (1000, 1000), dtype, False, b"\0" * 8))
    path = tmp_path / "network-snapshot.pkl"
    path.write_bytes(pickle.dumps({"G_ema": lying}, protocol=3))
    with pytest.raises(CheckpointError, match=rf"(?s){path}.*refused to load.*does not match its shape"):
        load_generator(path)
