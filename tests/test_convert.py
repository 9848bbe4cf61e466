"""``embed convert``: official files rewritten in the project's and rosinality's formats keep their outputs."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

from embedding.checkpoints import CheckpointError, load_discriminator, load_generator, save_generator
from embedding.checkpoints.convert import convert
from embedding.commands.convert import main
from tests.photos import photos
from tests.robust_run import small_fit

FIXTURES = Path(__file__).parent / "fixtures"
SNAPSHOT = FIXTURES / "nvidia" / "ada_numpy2_protocol4.pkl"
ROSINALITY = FIXTURES / "rosinality" / "converted_32.pt"


def _reference(path: Path) -> dict:
    return torch.load(path.parent / f"{path.stem}.outputs.pt", weights_only=True)


def _assert_reproduces_snapshot(g_path: Path, d_path: Path, tol: float = 1e-5) -> None:
    ref = _reference(SNAPSHOT)
    g, d = load_generator(g_path), load_discriminator(d_path)
    with torch.no_grad():
        assert (g.mapping(ref["z"], truncation_psi=0.7) - ref["ws_trunc"]).abs().max() <= tol
        noise = [n[None, None] for n in ref["noise"]]
        assert (g.synthesis(ref["ws"], noise=noise) - ref["img_noise"]).abs().max() <= tol
        assert (d(ref["d_image"]) - ref["d_score"]).abs().max() <= tol


def test_nvidia_snapshot_to_project_format(tmp_path):
    written = convert(str(SNAPSHOT), tmp_path / "ffhq.pt")
    assert [p.name for p in written] == ["ffhq.pt", "ffhq_discriminator.pt"]
    assert (tmp_path / "ffhq.json").is_file()
    _assert_reproduces_snapshot(written[0], written[1])


def test_nvidia_snapshot_to_rosinality(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="embedding"):
        (path,) = convert(str(SNAPSHOT), tmp_path / "ffhq_rosinality.pt", to="rosinality")
    data = torch.load(path, weights_only=True)
    assert set(data) == {"g_ema", "latent_avg", "d"} and "noises.noise_0" in data["g_ema"]
    assert "conv_clamp=256 is dropped" in caplog.text and "channel table" in caplog.text
    _assert_reproduces_snapshot(path, path)


def test_rosinality_round_trip_keeps_every_tensor(tmp_path):
    (path,) = convert(str(ROSINALITY), tmp_path / "again.pt", to="rosinality")
    original, again = torch.load(ROSINALITY, weights_only=True), torch.load(path, weights_only=True)
    for key in ("g_ema", "d"):
        assert set(again[key]) == set(original[key])
        for name, tensor in original[key].items():
            assert torch.equal(again[key][name], tensor), name
    assert torch.equal(again["latent_avg"], original["latent_avg"])


def test_float16_halves_the_file(tmp_path):
    full = convert(str(SNAPSHOT), tmp_path / "f32.pt")[0]
    half = convert(str(SNAPSHOT), tmp_path / "f16.pt", dtype=torch.float16)[0]
    assert half.stat().st_size < 0.7 * full.stat().st_size
    _assert_reproduces_snapshot(half, tmp_path / "f16_discriminator.pt", tol=0.05)


def test_generator_only_source_converts_without_discriminator(tmp_path, tiny_generator_file):
    written = convert(str(tiny_generator_file), tmp_path / "g.pt", to="rosinality")
    assert set(torch.load(written[0], weights_only=True)) == {"g_ema", "latent_avg"}


def test_conditional_generator_is_refused_for_rosinality(tmp_path, make_generator):
    source = save_generator(make_generator(c_dim=4), tmp_path / "cond.pt")
    with pytest.raises(ValueError, match=r"cond_rosinality\.pt.*unconditional"):
        convert(str(source), tmp_path / "cond_rosinality.pt", to="rosinality")
    assert not (tmp_path / "cond_rosinality.pt").exists()


def test_command_line(tmp_path, capsys):
    assert main([str(SNAPSHOT), str(tmp_path / "out.pt"), "--to", "rosinality"]) == 0
    assert f"wrote {tmp_path / 'out.pt'}" in capsys.readouterr().out
    missing = tmp_path / "missing.pkl"
    assert main([str(missing), str(tmp_path / "x.pt")]) == 1
    assert not (tmp_path / "x.pt").exists()


def test_a_converted_generator_fits_with_the_discriminator_written_beside_it(tmp_path):
    generator, discriminator = convert(str(SNAPSHOT), tmp_path / "conv" / "ada.pt")
    beside = load_discriminator(discriminator)
    found = load_discriminator(generator)
    assert all(torch.equal(a, b) for a, b in zip(found.state_dict().values(), beside.state_dict().values(),
                                                  strict=True))
    root = tmp_path / "run"
    small_fit(generator, photos(1)[0], root, {"WI": 1, "Mkn": 1}, model={"perceptual": "discriminator"})
    assert [p.name for p in (root / "latents").glob("*.pt")] == [f"{photos(1)[0].stem}.pt"]
    discriminator.unlink()
    with pytest.raises(CheckpointError, match=r"ada\.pt.*no discriminator was saved beside it"):
        load_discriminator(generator)
