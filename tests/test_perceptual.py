"""Perceptual networks by name: what ``auto`` picks offline and online, discriminator features, new networks."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from embedding import perceptual
from embedding.checkpoints import load_generator, save_discriminator, save_generator
from embedding.imagenet import SHIPPED
from embedding.losses import perceptual_loss
from embedding.methods.image2stylegan.module import EmbeddingModule
from embedding.methods.image2stylegan.phases import reconstruction_phases
from embedding.perceptual import DiscriminatorFeatures, NamedFeatures, PerceptualNetwork, Request, load_perceptual
from embedding.vgg import VGG16Features, imagenet_cache_path


@pytest.fixture
def empty_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A torch hub cache without the ImageNet VGG-16 file, and no download."""
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))

    def no_download(*args, **kwargs):
        raise OSError("no internet")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_download)
    return tmp_path / "hub"


def test_auto_takes_the_shipped_imagenet_vgg16_offline(empty_hub):
    net = load_perceptual("auto", Request("default"))
    assert net.name == "vgg16" and net.source == SHIPPED
    assert net.percept_layers == ("conv1_1", "conv1_2", "conv2_2", "conv3_3")
    assert net.describe().startswith("vgg16 (ImageNet")


def test_vgg16_takes_torchvisions_file_or_one_given_and_random_only_when_asked(empty_hub, tmp_path):
    state = VGG16Features().features.state_dict()
    imagenet_cache_path().parent.mkdir(parents=True)
    torch.save({"features." + k: v for k, v in state.items()}, imagenet_cache_path())
    net = load_perceptual("auto", Request("default", vgg_weights="torchvision"))
    assert (net.name, net.source) == ("vgg16", f"ImageNet: {imagenet_cache_path()}")
    torch.save(state, tmp_path / "mine.pth")
    mine = load_perceptual("auto", Request(vgg_weights=str(tmp_path / "mine.pth")))
    assert (mine.name, mine.source) == ("vgg16", str(tmp_path / "mine.pth"))
    assert load_perceptual("auto", Request(vgg_weights="random")).name == "vgg16-random"
    with pytest.raises(ValueError, match="vgg16-random"):
        load_perceptual("vgg16", Request(vgg_weights="random"))


def test_torchvisions_file_offline_error_says_what_works_offline(empty_hub):
    with pytest.raises(FileNotFoundError, match="vgg_weights: imagenet"):
        load_perceptual("vgg16", Request(vgg_weights="torchvision"))


def test_discriminator_features_are_its_block_outputs_at_its_input_size(tiny_discriminator):
    features = DiscriminatorFeatures(tiny_discriminator)
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    _, expected = tiny_discriminator.features(x)
    got = features(x, features.layer_names)
    assert list(got) == features.layer_names
    assert all(torch.equal(got[k], expected[k]) for k in expected)
    assert list(features(x, ["b32"])) == ["b32"]  # runs only as deep as needed
    assert features(torch.zeros(1, 3, 64, 64), ["b32"])["b32"].shape[-1] == 16  # resized to 32² first
    with pytest.raises(ValueError, match="blocks are"):
        features(x, ["conv1_1"])


def test_discriminator_is_found_beside_the_generator_or_named(tiny_generator_file, tiny_discriminator):
    with pytest.raises(ValueError, match="found no discriminator in .*tiny.pt.*--model.discriminator"):
        load_perceptual("discriminator", Request(str(tiny_generator_file)))
    # the project's format keeps one network per file: D is named on its own
    d_file = save_discriminator(tiny_discriminator, tiny_generator_file.with_name("d.pt"))
    net = load_perceptual("discriminator", Request(str(tiny_generator_file), discriminator=str(d_file)))
    assert net.percept_layers == ("b32", "b16", "b8") and net.style_layers == ("b16",)
    assert net.source == f"D of {d_file}"


def test_unknown_network_lists_the_choices():
    with pytest.raises(ValueError, match="auto, vgg16, discriminator, face, vgg16-random"):
        load_perceptual("lpips", Request())


def test_a_registered_network_is_a_choice_of_the_module(tiny_generator, tmp_path, monkeypatch):
    """How a network plugs in: a function giving a list of feature maps."""
    pool = nn.AvgPool2d(2)

    def toy_features(images: torch.Tensor) -> list[torch.Tensor]:
        return [images, pool(images)]

    def build(request: Request) -> PerceptualNetwork:
        return PerceptualNetwork("toy", NamedFeatures(toy_features, pool), ("f0", "f1"), ("f1",), 1.0, "test")

    monkeypatch.setitem(perceptual._BUILDERS, "toy", build)
    assert "toy" in perceptual.names()
    module = EmbeddingModule(str(save_generator(tiny_generator, tmp_path / "g.pt")), perceptual="toy",
                             steps={"WI": 1, "Mkn": 1})
    assert recorded_network(module) == "toy (test)"
    x = torch.zeros(1, 3, 32, 32)
    assert set(module.loss_fn.target_features(x)) == {"f0", "f1"}


def recorded_network(module: EmbeddingModule) -> str | None:
    """The perceptual network a result's latents file names (one image of the generator's size fitted 0 steps)."""
    res = module.generator.resolution
    module.start_group({"stem": ["a"], "image": torch.zeros(1, 3, res, res), "mask": torch.ones(1, 1, res, res)})
    return module.result(0).latents.metadata["perceptual"]


def test_no_perceptual_term_loads_no_network(tiny_generator_file):
    phases = [p for p in reconstruction_phases() if not p.percept]
    module = EmbeddingModule(str(tiny_generator_file), phases=phases, perceptual="discriminator")
    assert module.perceptual is None and recorded_network(module) is None


def test_face_network_compares_faces_through_the_shipped_descriptor():
    """``face``: the descriptor's five maps, zero for the same face, larger for another, with gradients."""
    net = load_perceptual("face", Request())
    g = load_generator("default")
    z = torch.randn(2, g.z_dim, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        faces = g.synthesis(g.mapping(z, truncation_psi=0.7)).clamp(-1, 1)
    feats = net.features(faces, net.percept_layers)
    assert [tuple(feats[f"f{i}"].shape[-2:]) for i in range(5)] == [(35, 35), (35, 35), (17, 17), (8, 8), (2, 2)]
    render = faces.flip(0).clone().requires_grad_(True)
    loss = perceptual_loss(net.features(render, net.percept_layers), feats, layers=net.percept_layers)
    same = perceptual_loss(feats, feats, layers=net.percept_layers)
    assert (same == 0).all() and (loss > 0).all()
    loss.sum().backward()
    assert render.grad.abs().sum() > 0



def test_vgg16_takes_image2stylegans_layers_as_well(tiny_generator_file):
    layers = ["conv1_1", "conv1_2", "conv3_2", "conv4_2"]
    module = EmbeddingModule(str(tiny_generator_file), perceptual="vgg16", percept_layers=layers)
    features = module.loss_fn.target_features(torch.zeros(1, 3, 32, 32), module.loss_fn.percept_layers)
    assert list(features) == layers and features["conv4_2"].shape == (1, 512, 4, 4)
    assert recorded_network(module).startswith("vgg16 (ImageNet")
