"""Loss terms of Image2StyleGAN++ Eq. 1: masked pixel MSE, VGG-16 perceptual loss and masked style loss.

Every function returns one value per image (shape `[B]`) and never mixes images, so images
fitted together stay independent; the caller sums over images. Images are RGB in [-1, 1];
masks are `[B, 1, H, W]` (or `[1, 1, H, W]`, shared) in [0, 1], 1 where the pixel counts, and
`None` means all ones. A mask multiplies the quantity it restricts before squaring, as in
Eq. 1's `‖M ⊙ (G − x)‖²`: for binary masks this selects pixels, a soft (blurred) mask
weighs a pixel by the square of its value.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from embedding.faces.crop import WHOLE, FaceBox
from embedding.faces.descriptor import face_descriptors

PIXEL_SCALE = 127.5  # [-1, 1] differences to the paper's 0–255 pixel units
# torchvision's VGG sees (x/255 − μ)/σ; a VGG fed mean-subtracted 0–255 pixels sees 255·σ times that.
# Features grow about linearly with the input scale, so this factor puts them in the paper's units.
# With ImageNet VGG-16 and the recipes' weights (percept = mse1 = 1e-5), the perceptual term then starts at
# 30× the MSE term on held-out CelebA photos with the 64² default generator (7× with vgg_resize 256). On 8 of
# them, 100 W+ steps with the features scaled by 1, 0.3, 0.1 and 0 (MSE alone) end at 14.9, 17.2, 18.2 and
# 18.1 dB PSNR and LPIPS 0.202, 0.188, 0.194 and 0.208: the paper's balance is perceptual-heavy.
PAPER_FEATURE_SCALE = 255 * 0.226
# Image2StyleGAN++'s perceptual layers; Image2StyleGAN used conv1_1, conv1_2, conv3_2, conv4_2 on 256² inputs.
PERCEPT_LAYERS = ("conv1_1", "conv1_2", "conv2_2", "conv3_3")
STYLE_LAYERS = ("conv3_3",)  # the paper's 'conv3'


def downsample_mask(mask: Tensor, size: Sequence[int]) -> Tensor:
    """Area-average `mask` to `size` (adaptive average pooling), so a layer sees each region's coverage."""
    if tuple(mask.shape[-2:]) == tuple(size):
        return mask
    return F.adaptive_avg_pool2d(mask, tuple(size))


def _masked(t: Tensor, mask: Tensor | None) -> Tensor:
    """`t` multiplied by `mask` brought to `t`'s resolution; `t` itself when there is no mask."""
    return t if mask is None else t * downsample_mask(mask, t.shape[-2:])


def masked_mse(render: Tensor, target: Tensor, mask: Tensor | None = None) -> Tensor:
    """Per-image `‖M ⊙ (render − target)‖² / N` in 0–255 pixel units, N = 3·H·W (the full image).

    Differences are scaled by 127.5 so the paper's weights (1e-5) apply as published; what
    matters between terms is the ratio of weights. N counts every pixel, masked out or not.
    """
    diff = _masked((render - target) * PIXEL_SCALE, mask)
    return diff.pow(2).flatten(1).sum(1) / render[0].numel()


def perceptual_loss(
    feats_render: Mapping[str, Tensor],
    feats_target: Mapping[str, Tensor],
    mask: Tensor | None = None,
    layers: Sequence[str] = PERCEPT_LAYERS,
) -> Tensor:
    """Per-image `Σ_j ‖M_j ⊙ (F_j(G) − F_j(x))‖² / N_j`, N_j = C·H·W of layer j, M_j = area-pooled mask."""
    total = 0
    for layer in layers:
        diff = _masked(feats_render[layer] - feats_target[layer], mask)
        total = total + diff.pow(2).flatten(1).sum(1) / diff[0].numel()
    return total


def gram_matrix(feat: Tensor, mask: Tensor | None = None) -> Tensor:
    """Per-image Gram matrix `[B, C, C]` of masked features, divided by C × (masked area in positions).

    With `f = M_l ⊙ F` (M_l the area-pooled mask), `G = f fᵀ / (C · Σ_p M_l[p])`; without a mask
    the area is H·W. An empty mask gives a zero Gram.
    """
    f = _masked(feat, mask)
    channels = feat.shape[1]
    area = feat.new_full((feat.shape[0],), float(feat.shape[-2] * feat.shape[-1]))
    if mask is not None:
        area = downsample_mask(mask, feat.shape[-2:]).flatten(1).sum(1).expand(feat.shape[0])
    flat = f.flatten(2)
    gram = flat @ flat.transpose(1, 2)
    return gram / (channels * area.clamp_min(1e-8)).view(-1, 1, 1)


def style_loss(
    feats_render: Mapping[str, Tensor],
    feats_target: Mapping[str, Tensor],
    mask_render: Tensor | None = None,
    mask_target: Tensor | None = None,
    layers: Sequence[str] = STYLE_LAYERS,
) -> Tensor:
    """Per-image Gatys style loss: `Σ_l ‖Gram_l(G, Ms) − Gram_l(y, My)‖²_F`, My defaulting to Ms.

    With the Gram normalisation of `gram_matrix` this is 4× Gatys et al.'s per-layer E_l.
    """
    mask_target = mask_render if mask_target is None else mask_target
    total = 0
    for layer in layers:
        diff = gram_matrix(feats_render[layer], mask_render) - gram_matrix(feats_target[layer], mask_target)
        total = total + diff.pow(2).flatten(1).sum(1)
    return total


def identity_loss(render: Tensor, target_descriptors: Tensor, box: FaceBox = WHOLE) -> Tensor:
    """Per-image squared Euclidean distance between the face descriptor of `render`'s face (its `box`
    region) and the target's (`face_descriptors(target, box)`, computed once): 0.36 is dlib's same-person
    threshold squared."""
    return (face_descriptors(render, box) - target_descriptors).pow(2).sum(1)


def latent_pull(w: Tensor, w_ref: Tensor) -> Tensor:
    """Per-image `‖w − w_ref‖²` over all rows and channels: Alg. 5's pull towards the original code."""
    return (w - w_ref).pow(2).flatten(1).sum(1)


class EmbeddingLoss(nn.Module):
    """Image2StyleGAN++ Eq. 1, per image, skipping (and not running the network for) zero-weighted terms.

    `L = w_style·Lstyle(Ms, G, y) + w_mse1·MSE(Mm ⊙ (G − x)) + w_mse2·MSE((1 − Mm) ⊙ (G − y))
    + w_percept·Lpercept(Mp, G, x) + w_percept2·Lpercept(1 − Mp, G, y)`; the last term is the
    second WI of image crossover (Algorithm 3), zero when there is no perceptual mask.

    ``network`` is the perceptual network (:mod:`embedding.perceptual`; VGG-16 in the paper): a module
    ``network(images, layers) -> {layer: features}``. ``feature_scale`` multiplies every feature:
    ``PAPER_FEATURE_SCALE`` expresses VGG-16's in the units of a VGG fed 0–255 pixels (as the
    paper's was), so the paper's loss weights keep their balance.

    Target features: the targets stay fixed for thousands of steps, so the caller computes
    `target_features(x)` / `target_features(y)` once and passes them as `x_features` /
    `y_features`; when they are not passed they are computed on every call (correct, slower).
    """

    def __init__(
        self,
        network: nn.Module | None,
        percept_layers: Sequence[str] = PERCEPT_LAYERS,
        style_layers: Sequence[str] = STYLE_LAYERS,
        feature_scale: float = 1.0,
    ) -> None:
        super().__init__()
        self.feature_scale = feature_scale
        if not percept_layers or not style_layers:
            raise ValueError("percept_layers and style_layers must each name at least one layer of the network")
        self.network = network
        self.percept_layers = tuple(percept_layers)
        self.style_layers = tuple(style_layers)

    def target_features(self, image: Tensor, layers: Sequence[str] | None = None) -> dict[str, Tensor]:
        """Features of a fixed target, without gradient; default: every layer this loss uses."""
        layers = self._render_layers(True, True) if layers is None else layers
        with torch.no_grad():
            return self._features(image, layers)

    def forward(
        self,
        render: Tensor,
        x: Tensor | None = None,
        y: Tensor | None = None,
        *,
        w_style: float = 0.0,
        w_mse1: float = 0.0,
        w_mse2: float = 0.0,
        w_percept: float = 0.0,
        w_percept2: float = 0.0,
        mask_style: Tensor | None = None,
        mask_style_target: Tensor | None = None,
        mask_mse: Tensor | None = None,
        mask_percept: Tensor | None = None,
        x_features: Mapping[str, Tensor] | None = None,
        y_features: Mapping[str, Tensor] | None = None,
        y_percept_features: Mapping[str, Tensor] | None = None,
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """Per-image total `[B]` and the unweighted per-image terms of the non-zero-weighted ones.

        Keys of the terms: `style`, `mse1`, `mse2`, `percept`, `percept2`, present only when
        weighted. `mse2` / `percept2` are zero when their mask is None (nothing lies outside it).
        `y_features` are y's style-layer features, `y_percept_features` its perceptual ones.
        """
        terms: dict[str, Tensor] = {}
        if w_mse1:
            terms["mse1"] = masked_mse(render, _required(x, "x", "w_mse1"), mask_mse)
        if w_mse2:
            terms["mse2"] = self._outside_mse(render, y, mask_mse)
        layers = self._render_layers(bool(w_percept or w_percept2), bool(w_style))
        feats = self._features(render, layers) if layers else {}
        if w_percept:
            if x_features is None:
                x_features = self.target_features(_required(x, "x", "w_percept"), self.percept_layers)
            terms["percept"] = perceptual_loss(feats, x_features, mask_percept, self.percept_layers)
        if w_percept2:
            terms["percept2"] = render.new_zeros(render.shape[0])
            if mask_percept is not None:
                if y_percept_features is None:
                    y_percept_features = self.target_features(_required(y, "y", "w_percept2"), self.percept_layers)
                terms["percept2"] = perceptual_loss(feats, y_percept_features, 1 - mask_percept, self.percept_layers)
        if w_style:
            if y_features is None:
                y_features = self.target_features(_required(y, "y", "w_style"), self.style_layers)
            terms["style"] = style_loss(feats, y_features, mask_style, mask_style_target, self.style_layers)
        weights = {"style": w_style, "mse1": w_mse1, "mse2": w_mse2, "percept": w_percept, "percept2": w_percept2}
        total = render.new_zeros(render.shape[0])
        for name, value in terms.items():
            total = total + weights[name] * value
        return total, terms

    def _features(self, image: Tensor, layers: Sequence[str]) -> dict[str, Tensor]:
        if self.network is None:
            raise ValueError("this loss has no perceptual network: build it with one to use perceptual or style terms")
        feats = self.network(image, layers)
        if self.feature_scale == 1.0:
            return feats
        return {name: f * self.feature_scale for name, f in feats.items()}

    def _outside_mse(self, render: Tensor, y: Tensor | None, mask_mse: Tensor | None) -> Tensor:
        """MSE against `y` outside the MSE mask: zero when there is no mask (nothing lies outside)."""
        if mask_mse is None:
            return render.new_zeros(render.shape[0])
        return masked_mse(render, _required(y, "y", "w_mse2"), 1 - mask_mse)

    def _render_layers(self, use_percept: bool, use_style: bool) -> tuple[str, ...]:
        """The layers one pass over the render must return for the active feature terms."""
        layers = (self.percept_layers if use_percept else ()) + (self.style_layers if use_style else ())
        return tuple(dict.fromkeys(layers))


def _required(value: Tensor | None, name: str, because: str) -> Tensor:
    """`value`, or a clear error saying which weight needs it."""
    if value is None:
        raise ValueError(f"`{name}` is required when `{because}` is non-zero")
    return value
