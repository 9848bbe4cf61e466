"""The embedding engine: phases move the right variables, images are independent, reconstruction works."""

from __future__ import annotations

import pytest
import torch
from lightning import Trainer
from torch.utils.data import DataLoader

from callbacks import EmbeddingMetrics, ResultWriter
from datamodules.embedding import collate
from embedding.checkpoints import save_generator
from embedding.fitting.run_folder import RunFolder
from embedding.fitting.sampler import GroupRepeatSampler
from embedding.latents import render_latents
from embedding.methods.image2stylegan.module import EmbeddingModule
from embedding.methods.image2stylegan.phases import Phase, mkn, mst, wi
from embedding.metrics import psnr


def make_items(images: torch.Tensor, masks: torch.Tensor | None = None) -> list[dict]:
    masks = torch.ones_like(images[:, :1]) if masks is None else masks
    return [{"stem": f"img{i}", "index": i, "image": images[i], "mask": masks[i]} for i in range(len(images))]


def fit(module: EmbeddingModule, items: list[dict], root, batch_size: int = 1) -> EmbeddingModule:
    """Run the module over ``items`` in groups of ``batch_size`` with the run's core callbacks."""
    sampler = GroupRepeatSampler(len(items), batch_size, module.steps_per_group)
    loader = DataLoader(items, batch_sampler=sampler, collate_fn=collate)
    trainer = Trainer(max_epochs=1, logger=False, enable_progress_bar=False, enable_checkpointing=False,
                      enable_model_summary=False, default_root_dir=root,
                      callbacks=[EmbeddingMetrics(), ResultWriter()])
    trainer.fit(module, loader)
    return module


@pytest.fixture
def targets(tiny_generator) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
    return rendered_targets(tiny_generator)


def rendered_targets(tiny_generator) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
    """Two images the generator itself renders from known W+ codes and noise maps."""
    g = torch.Generator().manual_seed(7)
    synthesis = tiny_generator.synthesis
    w = tiny_generator.w_avg + 0.5 * torch.randn(2, tiny_generator.num_ws, tiny_generator.w_dim, generator=g)
    noise = synthesis.random_noise(2, generator=g)
    with torch.no_grad():
        return synthesis(w, noise=noise).clamp(-1, 1), w, noise


def module(generator_file, phases: list[Phase], **kwargs) -> EmbeddingModule:
    return EmbeddingModule(generator=str(generator_file), phases=phases, vgg_weights="random", **kwargs)


def test_w_phase_moves_only_allowed_rows_and_noise_phase_only_allowed_maps(tiny_generator_file, targets, tmp_path):
    images, _, _ = targets
    phases = [Phase("WI", steps=5, optimize="w", lr=0.05, mse1=1e-5, w_rows=[0, 2]),
              Phase("Mkn", steps=5, optimize="noise", lr=0.5, mse1=1e-5, noise_maps=[1])]
    m = module(tiny_generator_file, phases[:1])
    fit(m, make_items(images[:1]), tmp_path / "a")
    moved = (m.w_plus.detach() - m.w_start).abs().amax(dim=-1)[0]
    assert moved[[0, 2]].min() > 0
    assert moved[[1, *range(3, len(moved))]].max() == 0

    m2 = module(tiny_generator_file, phases)
    fit(m2, make_items(images[:1]), tmp_path / "b")
    stored = torch.load(RunFolder(tmp_path / "b").latents_path("img0"), weights_only=True)
    start = m2._initial_noise("img0", m2.stream("img0"))
    changed = [not torch.equal(n, s) for n, s in zip(stored["noise"], start, strict=True)]
    assert changed == [i == 1 for i in range(len(start))]
    w_after_wi = torch.load(RunFolder(tmp_path / "a").latents_path("img0"), weights_only=True)["w_plus"]
    assert torch.allclose(stored["w_plus"], w_after_wi), "W+ must not move in the noise phase"


def test_group_fit_equals_one_by_one(tiny_generator_file, targets, tmp_path):
    images, _, _ = targets
    phases = [Phase("WI", steps=8, lr=0.05, mse1=1e-5, percept=1e-5), Phase("Mkn", steps=4, optimize="noise",
                                                                            lr=0.5, mse1=1e-5)]
    together = fit(module(tiny_generator_file, phases), make_items(images), tmp_path / "together", batch_size=2)
    assert together.w_plus.shape[0] == 2
    for root, i in ((tmp_path / "one0", 0), (tmp_path / "one1", 1)):
        items = make_items(images)[i : i + 1]
        fit(module(tiny_generator_file, phases), items, root)
        alone = torch.load(RunFolder(root).latents_path(f"img{i}"), weights_only=True)
        joint = torch.load(RunFolder(tmp_path / "together").latents_path(f"img{i}"), weights_only=True)
        assert torch.allclose(alone["w_plus"], joint["w_plus"], atol=1e-5)
        for a, b in zip(alone["noise"], joint["noise"], strict=True):
            # Adam divides by the gradient's size, so reduction-order noise in near-zero gradients
            # (batched and single convolutions sum in different orders) moves a few elements by
            # up to ~1e-3; the maps agree everywhere else.
            assert (a - b).abs().mean() < 1e-4 and (a - b).abs().max() < 1e-2
        render_alone, render_joint = render_latents(root / "latents" / f"img{i}.pt"), \
            render_latents(tmp_path / "together" / "latents" / f"img{i}.pt")
        assert torch.allclose(render_alone, render_joint, atol=2e-3), "within a quarter of an 8-bit level"


def test_reconstruction_of_generated_images_reaches_30_db_and_noise_phase_helps(tiny_generator, tmp_path):
    with torch.no_grad():  # noise as weak as in trained generators, so W+ carries most of the image
        for block in tiny_generator.synthesis.blocks():
            for layer in block.conv_layers():
                layer.noise_strength.mul_(0.2)
    generator_file = save_generator(tiny_generator, tmp_path / "g.pt")
    images, _, _ = rendered_targets(tiny_generator)
    phases = [Phase("WI", steps=200, lr=0.05, mse1=1e-5), Phase("Mkn", steps=100, optimize="noise", lr=1.0,
                                                                 mse1=1e-5)]
    m = fit(module(generator_file, phases), make_items(images), tmp_path / "run", batch_size=2)
    tmp_path = tmp_path / "run"
    metrics = (tmp_path / "metrics.csv").read_text().splitlines()
    by_phase = {}
    for line in metrics[1:]:
        image, phase, _, value = line.split(",")[:4]
        by_phase.setdefault(phase, []).append(float(value))
    assert min(by_phase["Mkn"]) >= 30.0
    assert all(n > w for n, w in zip(by_phase["Mkn"], by_phase["WI"], strict=True))
    final = m.current_render().clamp(-1, 1)
    assert psnr(final, images).min() >= 30.0


def test_latents_file_rerenders_the_saved_image(tiny_generator, tiny_generator_file, targets, tmp_path):
    images, _, _ = targets
    phases = [Phase("WI", steps=5, lr=0.05, mse1=1e-5), Phase("Mkn", steps=3, optimize="noise", lr=0.5, mse1=1e-5)]
    m = fit(module(tiny_generator_file, phases), make_items(images[:1]), tmp_path)
    path = RunFolder(tmp_path).latents_path("img0")
    rendered = render_latents(path)
    assert torch.allclose(rendered, m.current_render(), atol=1e-5)
    stored = torch.load(path, weights_only=True)
    assert stored["metadata"]["generator"] == str(tiny_generator_file)
    assert len(stored["metadata"]["generator_sha256"]) == 64


def test_start_from_stored_latents(tiny_generator_file, targets, tmp_path):
    images, _, _ = targets
    phases = [Phase("WI", steps=10, lr=0.05, mse1=1e-5)]
    first = fit(module(tiny_generator_file, phases), make_items(images[:1]), tmp_path / "first")
    resumed = module(tiny_generator_file, [Phase("WI", steps=0, lr=0.05, mse1=1e-5), Phase("Mkn", steps=1,
                     optimize="noise", lr=1e-6, mse1=1e-5)], w_init="latents", latents=str(tmp_path / "first"))
    fit(resumed, make_items(images[:1]), tmp_path / "second")
    assert torch.allclose(resumed.w_plus.detach(), first.w_plus.detach())


def test_pull_keeps_code_closer_to_start(tiny_generator_file, targets, tmp_path):
    images, _, _ = targets
    free = fit(module(tiny_generator_file, [Phase("WI", steps=20, lr=0.05, mse1=1e-5)]),
               make_items(images[:1]), tmp_path / "free")
    pulled = fit(module(tiny_generator_file, [Phase("WI", steps=20, lr=0.05, mse1=1e-5, pull=1.0)]),
                 make_items(images[:1]), tmp_path / "pulled")
    distance = [(m.w_plus.detach() - m.w_start).norm().item() for m in (free, pulled)]
    assert distance[1] < distance[0]


def test_masked_mse_ignores_pixels_outside_the_mask(tiny_generator_file, targets, tmp_path):
    images, _, _ = targets
    mask = torch.zeros(1, 1, 32, 32)
    mask[..., :, :16] = 1
    corrupted = images[:1].clone()
    corrupted[..., :, 16:] = 1.0
    phases = [Phase("WI", steps=40, lr=0.05, mse1=1e-5, mask_mse="mask")]
    a = fit(module(tiny_generator_file, phases), make_items(corrupted, mask), tmp_path / "a")
    b = fit(module(tiny_generator_file, phases), make_items(images[:1], mask), tmp_path / "b")
    assert torch.allclose(a.w_plus, b.w_plus, atol=1e-6), "pixels outside Mm must not affect the fit"


def test_bad_phase_settings_are_refused():
    with pytest.raises(ValueError, match="mask"):
        Phase("WI", steps=1, mask_mse="holes")
    with pytest.raises(ValueError, match="steps"):
        Phase("WI", steps=-1)


def test_paper_presets_have_the_paper_settings():
    assert (wi().optimize, wi().lr, wi().mse1, wi().percept, wi().steps) == ("w", 0.01, 1e-5, 1e-5, 5000)
    assert (mkn().optimize, mkn().lr, mkn().mse1, mkn().mse2, mkn().percept) == ("noise", 5.0, 1e-5, 1e-5, 0.0)
    assert (mst().optimize, mst().style, mst().mse1, mst().lr) == ("w", 5e-7, 0.0, 0.01)


def test_targets_of_another_size_are_refused(tiny_generator_file, tmp_path):
    items = make_items(torch.zeros(1, 3, 16, 16))
    with pytest.raises(ValueError, match="16×16 but the generator renders 32×32"):
        fit(module(tiny_generator_file, [Phase("WI", steps=1, mse1=1e-5)]), items, tmp_path)


def test_pull_is_toward_the_code_the_phase_starts_from(tiny_generator_file, targets, tmp_path):
    images, _, _ = targets
    phases = [Phase("A", steps=6, lr=0.05, mse1=1e-5), Phase("B", steps=1, lr=0.05, mse1=1e-5, pull=1.0)]
    m = module(tiny_generator_file, phases)
    fit(m, make_items(images[:1]), tmp_path)
    after_a = torch.load(RunFolder(tmp_path).latents_path("img0"), weights_only=True)["w_plus"]
    assert not torch.allclose(m.w_start[0], m._initial_w("img0", m.stream("img0"), None))
    w_at_b = m.w_start[0]
    assert (after_a - w_at_b).abs().max() < 0.2, "w* is the code after phase A, one small step from the result"


def test_noise_floor_lets_the_noise_phase_move_weak_noise(tiny_generator, tmp_path):
    """Layers whose noise is a thousand times weaker than the strongest barely move in units of their own maps."""
    images, _, _ = rendered_targets(tiny_generator)
    with torch.no_grad():
        for block in tiny_generator.synthesis.blocks():
            for layer in block.conv_layers():
                layer.noise_strength.fill_(0.1 if block.resolution == 4 else 1e-4)
    generator_file = save_generator(tiny_generator, tmp_path / "weak.pt")
    phases = [Phase("Mkn", steps=20, optimize="noise", lr=5.0, mse1=1e-5, noise_maps=list(range(1, 7)))]
    psnrs = {}
    for floor in (0.0, 0.1):
        m = fit(module(generator_file, phases, noise_init="const", noise_floor=floor), make_items(images[:1]),
                tmp_path / str(floor))
        stored = torch.load(RunFolder(tmp_path / str(floor)).latents_path("img0"), weights_only=True)
        assert torch.allclose(render_latents(RunFolder(tmp_path / str(floor)).latents_path("img0")),
                              m.current_render(), atol=1e-5)
        psnrs[floor] = float(psnr(m.current_render().clamp(-1, 1), images[:1]))
        assert len(stored["noise"]) == len(tiny_generator.synthesis.noise_shapes)
    with torch.no_grad():
        start = tiny_generator.synthesis(tiny_generator.w_avg.expand(1, tiny_generator.num_ws, -1)).clamp(-1, 1)
    before = float(psnr(start, images[:1]))
    assert psnrs[0.0] - before < 0.5
    assert psnrs[0.1] - before > 3.0

