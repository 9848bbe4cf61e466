"""The Swapping Autoencoder: a training step, export and resume; encoding, swaps and texture arithmetic."""

from __future__ import annotations

import csv
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from embedding.checkpoints import load_swapping_autoencoder, save_swapping_autoencoder
from embedding.commands.swap import main as swap_cli
from embedding.commands.train import TrainCLI
from embedding.images import read_image
from embedding.methods.swapping import SwappingAutoencoder
from embedding.methods.swapping.codes import SwapCodes
from embedding.methods.swapping.model import random_patches
from tests.photos import FACE_BOX, PHOTOS, photos

ROOT = Path(__file__).resolve().parents[1]
TINY = {"resolution": 32, "channels": [8, 16, 16, 16], "structure_channels": 4, "texture_dim": 16,
        "patch_size": 8, "patch_channels": [8, 16]}


def tiny_training_args(root: Path, steps: int, *extra: str) -> list[str]:
    sizes = [f"--model.{k}={v}" for k, v in TINY.items()]
    return ["fit", "--config", str(ROOT / "recipes" / "train_swapping_autoencoder.yaml"), *sizes,
            "--model.d_channel_base", "256", "--model.d_channel_max", "16", "--model.patches", "2",
            "--model.references", "2", "--data.images", str(PHOTOS), "--data.resolution", "32", "--data.crop", "null",
            "--data.batch_size", "4", "--trainer.max_steps", str(steps), "--trainer.default_root_dir", str(root),
            "--trainer.enable_progress_bar", "false", "--trainer.logger", "false", "--samples.every_n_steps", "2",
            "--export.every_n_steps", "100", "--checkpoint.every_n_train_steps", "4", *extra]


def test_training_steps_have_finite_losses_export_a_loadable_model_and_resume(tmp_path):
    root = tmp_path / "train"
    cli = TrainCLI(args=tiny_training_args(root, 4))
    losses = {k: float(v) for k, v in cli.trainer.callback_metrics.items() if k.startswith("loss/")}
    assert {"loss/rec", "loss/gan_rec", "loss/gan_swap", "loss/cooccur", "loss/d", "loss/patch_d"} <= set(losses)
    assert all(math.isfinite(v) for v in losses.values()), losses
    assert list((root / "samples").glob("*.png")), "swap grids of the first images"
    ae = load_swapping_autoencoder(root / "export" / "swapping_autoencoder.pt")
    assert ae.arch.structure_size == 4 and ae.arch.texture_dim == 16
    trained = cli.model.autoencoder.eval()
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(ae(x), trained(x), atol=0.05, rtol=0)   # the export is fp16
    resumed = TrainCLI(args=tiny_training_args(root, 8, "--ckpt_path", "last"))
    assert int(resumed.model.images_seen) == 2 * int(cli.model.images_seen) == 16  # 2 iterations of 4, then 4


def test_patches_are_crops_of_an_eighth_to_a_quarter_of_the_side():
    ramp = torch.arange(64.0).expand(64, -1)                  # x coordinate in channel 0, y in channel 1
    images = torch.stack([ramp, ramp.t(), torch.zeros(64, 64)])[None].expand(3, -1, -1, -1)
    patches = random_patches(images, 20, 16, torch.Generator().manual_seed(0))
    assert patches.shape == (3, 20, 3, 16, 16)
    span = patches[:, :, 0].amax(dim=(-1, -2)) - patches[:, :, 0].amin(dim=(-1, -2))
    assert span.min() >= 8 - 1 and span.max() <= 16, "crops of 8 to 16 pixels of a 64-pixel side"
    assert torch.equal(span, patches[:, :, 1].amax(dim=(-1, -2)) - patches[:, :, 1].amin(dim=(-1, -2))), "square"


@pytest.fixture
def tiny_autoencoder(tmp_path) -> Path:
    torch.manual_seed(0)
    return save_swapping_autoencoder(SwappingAutoencoder(**TINY), tmp_path / "sae.pt")


@pytest.fixture
def faces(tmp_path) -> Path:
    folder = tmp_path / "faces"
    folder.mkdir()
    for path in photos(4):
        shutil.copy(path, folder / path.name)
    return folder


def png(path: Path) -> torch.Tensor:
    """A PNG as ``[3, H, W]`` in [-1, 1]."""
    return torch.from_numpy(np.asarray(Image.open(path), dtype=np.float32)).permute(2, 0, 1) / 127.5 - 1


def test_encode_writes_codes_reconstructions_and_metrics(tiny_autoencoder, faces, tmp_path):
    run = tmp_path / "run"
    swap_cli(["encode", str(faces), "--autoencoder", str(tiny_autoencoder), "--out", str(run)])
    stems = sorted(p.stem for p in faces.iterdir())
    assert sorted(p.stem for p in (run / "codes").glob("*.pt")) == stems
    codes = SwapCodes.load(run / "codes" / f"{stems[0]}.pt")
    assert codes.structure.shape == (4, 4, 4) and codes.texture.shape == (16,)
    ae = load_swapping_autoencoder(tiny_autoencoder)
    with torch.no_grad():
        again = ae.decode(codes.structure[None], codes.texture[None])[0].clamp(-1, 1)
    assert (again - png(run / "images" / f"{stems[0]}.png")).abs().max() <= 1 / 127.5 + 1e-4
    with open(run / "metrics.csv", newline="") as f:
        assert [r["image"] for r in csv.DictReader(f)] == stems


def test_swaps_keep_the_reconstruction_where_they_should(tiny_autoencoder, faces, tmp_path):
    a, b = sorted(faces.iterdir())[:2]
    run, out = tmp_path / "run", tmp_path / "out"
    swap_cli(["encode", str(faces), "--autoencoder", str(tiny_autoencoder), "--out", str(run)])
    own = png(run / "images" / f"{a.stem}.png")
    common = ["--autoencoder", str(tiny_autoencoder), "--out", str(out)]
    swap_cli(["mix", str(a), str(b), "--strength", "0", *common])
    assert (png(out / f"{a.stem}+{b.stem}.swap.png") - own).abs().max() <= 2 / 127.5, "strength 0 is A itself"
    swap_cli(["mix", str(a), str(b), *common])
    full = png(out / f"{a.stem}+{b.stem}.swap.png")
    assert (full - own).abs().mean() > 1e-3, "B's texture changes the image"
    swap_cli(["mix", str(run / "codes" / f"{a.stem}.pt"), str(b), "--mask", "left", *common])
    masked = png(out / f"{a.stem}+{b.stem}.swap.masked.png")
    assert (masked[..., 16:] - own[..., 16:]).abs().max() <= 2 / 127.5, "outside the mask: A's reconstruction"
    assert (masked[..., :16] - full[..., :16]).abs().max() <= 2 / 127.5, "inside: the swap"
    swap_cli(["grid", str(a), str(b), *common])  # the shell's list of files, as `[a, b]` would be
    assert Image.open(out / "swap_grid.png").size == (3 * 32 + 4, 3 * 32 + 4)
    swap_cli(["encode", str(a), str(b), "--autoencoder", str(tiny_autoencoder), "--out", str(tmp_path / "two")])
    assert sorted(p.stem for p in (tmp_path / "two" / "codes").iterdir()) == sorted([a.stem, b.stem])


def test_texture_direction_round_trips_and_moves_the_texture_code(tiny_autoencoder, faces, tmp_path):
    paths = sorted(faces.iterdir())
    group_a, group_b = tmp_path / "a", tmp_path / "b"
    for group, members in ((group_a, paths[:2]), (group_b, paths[2:])):
        group.mkdir()
        for p in members:
            shutil.copy(p, group / p.name)
    direction = tmp_path / "b_minus_a.pt"
    common = ["--autoencoder", str(tiny_autoencoder)]
    swap_cli(["direction", str(group_a), str(group_b), *common,
              "--out", str(direction)])
    ae = load_swapping_autoencoder(tiny_autoencoder)
    textures = {p.name: ae.encode(torch.stack([_photo(p)]))[1][0].detach() for p in paths}
    want = torch.stack([textures[p.name] for p in paths[2:]]).mean(0) - torch.stack(
        [textures[p.name] for p in paths[:2]]).mean(0)
    torch.testing.assert_close(torch.load(direction, weights_only=True)["direction"], want, atol=1e-5, rtol=0)
    swap_cli(["arithmetic", str(paths[0]), str(direction), "--strengths", "[0, 2]",
              "--out", str(tmp_path / "out")])
    strip = png(tmp_path / "out" / f"{paths[0].stem}.b_minus_a.png")
    assert strip.shape == (3, 32, 64)
    structure, texture = ae.encode(_photo(paths[0])[None])
    with torch.no_grad():
        moved = ae.decode(structure, texture + 2 * want).clamp(-1, 1)[0]
    assert (strip[..., 32:] - moved).abs().max() <= 2 / 127.5


def _photo(path: Path) -> torch.Tensor:
    return read_image(path, 32)[0]


def test_codes_of_another_autoencoder_and_bad_files_are_refused(tiny_autoencoder, faces, tmp_path, caplog):
    torch.manual_seed(1)
    other = save_swapping_autoencoder(SwappingAutoencoder(**TINY), tmp_path / "other.pt")
    for name, ae in (("one", tiny_autoencoder), ("two", other)):
        swap_cli(["encode", str(faces), "--autoencoder", str(ae), "--out", str(tmp_path / name)])
    a, b = (sorted((tmp_path / name / "codes").glob("*.pt"))[0] for name in ("one", "two"))
    with pytest.raises(SystemExit):
        swap_cli(["mix", str(a), str(b), "--out", str(tmp_path / "out")])
    assert "codes of another autoencoder" in caplog.text
    bad = tmp_path / "bad.pt"
    torch.save({"structure": torch.zeros(3)}, bad)
    with pytest.raises(SystemExit):
        swap_cli(["mix", str(a), str(bad), "--out", str(tmp_path / "out")])
    assert "bad.pt: not a Swapping Autoencoder codes file" in caplog.text
    assert not (tmp_path / "out").exists()


def test_the_shipped_autoencoder_loads_offline_and_reconstructs_each_face_as_itself():
    ae = load_swapping_autoencoder()
    faces = torch.stack([read_image(p, ae.resolution, FACE_BOX)[0] for p in photos(6)])
    with torch.no_grad():
        recon = ae(faces).clamp(-1, 1)
    mse = (recon[:, None] - faces[None]).square().mean(dim=(2, 3, 4))       # [reconstruction, photo]
    psnr = 10 * torch.log10(4 / mse)
    own = psnr.diagonal()
    others = psnr.masked_fill(torch.eye(6, dtype=torch.bool), -1.0).amax(dim=1)
    assert own.min() > 16.0 and bool((own > others + 2.0).all()), psnr
