"""The embedding LightningModule: the W+ codes and noise maps of a group of images are its parameters.

For every group of images the datamodule delivers, the module starts fresh parameters (one W+
row block and one set of noise maps per image) and walks them through the recipe's phases
(the lifecycle of :class:`~embedding.fitting.method.FittingMethod`). The loss is Image2StyleGAN++ Eq. 1
computed per image and summed, so each image's gradient is exactly its own: fitting images
together equals fitting each alone.
"""

from __future__ import annotations

import logging
import math
from typing import Literal

import torch
from torch import nn

from embedding.checkpoints import DEFAULT_NAME
from embedding.faces.crop import resolve_face_box
from embedding.faces.descriptor import face_descriptors
from embedding.fitting.method import FitResult, FittingMethod
from embedding.fitting.schedule import Schedule, with_steps
from embedding.latents import Latents
from embedding.losses import EmbeddingLoss, identity_loss, latent_pull
from embedding.masks import blur, dilate
from embedding.methods.encoder import load_encoder
from embedding.methods.image2stylegan.phases import Phase, reconstruction_phases, resolve_rows
from embedding.metrics import lpips
from embedding.perceptual import PerceptualNetwork, Request, load_perceptual

Batch = dict
log = logging.getLogger(__name__)


class EmbeddingModule(FittingMethod):
    """Fits W+ (and noise) to each target image with a frozen StyleGAN2, phase by phase.

    Args:
        generator: checkpoint path (NVIDIA ``.pkl``, rosinality or project ``.pt``) or ``"default"``.
        phases: the optimisation phases, in order (default: Algorithm 2, 5000 WI + 3000 Mkn steps).
        steps: override the steps of phases by name, e.g. ``{WI: 200, Mkn: 100}`` for a quick run
            (``--model.steps "{WI: 200, Mkn: 100}"`` on the command line).
        w_init: starting code: ``"mean"`` (the mean latent, faces), ``"uniform"`` (U[-1, 1],
            non-faces), ``"latents"`` (read from ``latents``) or ``"encoder"`` (the output of
            ``encoder`` for the image: hybrid inversion).
        w_init_offset: add U[-a, a] to the starting code (different plausible inpaintings).
        latents: folder (or run folder) holding ``<stem>.pt`` / ``<stem>.npz``, or one such file for
            every image; used when ``w_init`` or ``noise_init`` is ``"latents"``.
        encoder: an encoder file (``embed train`` with ``recipes/train_encoder.yaml``), for ``w_init: encoder``;
            with the embedded default generator, the shipped encoder (``"default"``) when none is named.
        noise_init: starting noise: ``"random"`` (N(0, I), the paper's), ``"const"`` (the
            checkpoint's fixed maps) or ``"latents"``.
        noise_floor: the noise phase fits each unit-variance map divided by a gain, ``floor / strength``
            rounded up to a power of two, where a map's strength is how much its layer scales it and
            ``floor`` is ``noise_floor`` times the generator's strongest (gain 1 above it). An optimiser
            step then moves every layer's activations by at least about ``lr × floor``: layers with weak
            noise move as fast as one of strength ``floor``. 0 fits the unit-variance maps themselves.
            Renders and saved maps are the same either way (powers of two divide exactly).
        perceptual: the network of the perceptual and style terms (:mod:`embedding.perceptual`):
            ``"vgg16"`` (the paper's), ``"discriminator"`` (the generator's own D), ``"face"``,
            ``"vgg16-random"`` (tests), or ``"auto"``: vgg16 (vgg16-random with ``vgg_weights: random``).
        discriminator: checkpoint of the ``discriminator`` network (default: the generator's source;
            NVIDIA pickles and rosinality files hold both, ``default`` has its own).
        vgg_weights: ``"imagenet"`` (the shipped copy of torchvision's ImageNet weights), ``"torchvision"``
            (torchvision's own file in the torch hub cache), a path to a VGG-16 state dict, or ``"random"``
            (the same as ``perceptual: vgg16-random``).
        vgg_resize: resize images to this size before VGG; by default images larger than 256² are resized
            down to 256², as Image2StyleGAN did for 1024² faces, and smaller ones keep their size.
        percept_layers / style_layers: the network's layers of the perceptual and style terms
            (default: the network's own; VGG-16 conv1_1, conv1_2, conv2_2, conv3_3 and conv3_3).
        seed: base seed; each image draws its own stream from (seed, stem), so results do not
            depend on which images share a group.
    """

    method_name = "embedding"

    def __init__(
        self,
        generator: str = "default",
        phases: list[Phase] | None = None,
        steps: dict[str, int] | None = None,
        w_init: Literal["mean", "uniform", "latents", "encoder"] = "mean",
        w_init_offset: float = 0.0,
        latents: str | None = None,
        noise_init: Literal["random", "const", "latents"] = "random",
        noise_floor: float = 0.1,
        encoder: str | None = None,
        perceptual: str = "auto",
        discriminator: str | None = None,
        vgg_weights: str = "imagenet",
        vgg_resize: int | None = None,
        percept_layers: list[str] | None = None,
        style_layers: list[str] | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.use_generator(generator)
        self.face_box = resolve_face_box("auto", self.generator.resolution)  # where the identity term looks
        if noise_floor < 0:
            raise ValueError(f"noise_floor must be ≥ 0, got {noise_floor}")
        strengths = self.generator.synthesis.noise_strengths()
        floor = noise_floor * float(strengths.max())
        self.noise_gains = [2.0 ** math.ceil(math.log2(floor / s)) if 0 < s < floor else 1.0
                            for s in strengths.tolist()]
        self.schedule = Schedule(with_steps(phases or reconstruction_phases(), steps or {}))
        self.perceptual: PerceptualNetwork | None = None
        request = Request(generator, vgg_weights, vgg_resize, discriminator)
        self.loss_fn = self._build_loss(perceptual, request, percept_layers, style_layers)
        if "latents" in (w_init, noise_init) and latents is None:
            raise ValueError("w_init/noise_init 'latents' needs `latents`: a folder or file of codes")
        if encoder is not None and w_init != "encoder":
            raise ValueError("`encoder` is only read with w_init 'encoder'")
        if w_init == "encoder" and encoder is None:
            if generator != DEFAULT_NAME:
                raise ValueError("w_init 'encoder' needs `encoder`, an encoder file trained for this generator "
                                 "(embed train fit --config recipes/train_encoder.yaml); only the embedded "
                                 "default generator has one shipped")
            encoder = DEFAULT_NAME
        self.encoder = load_encoder(encoder) if encoder is not None else None
        self.w_plus: nn.Parameter | None = None
        self.noise = nn.ParameterList()
        self._phase_targets: dict = {}

    def _build_loss(self, name: str, request: Request, percept: list[str] | None,
                    style: list[str] | None) -> EmbeddingLoss:
        """The perceptual network is loaded only when some phase has a perceptual or style term."""
        if not any(p.percept or p.percept2 or p.style for p in self.schedule.phases):
            return EmbeddingLoss(None)
        self.perceptual = net = load_perceptual(name, request)
        log.info("perceptual loss: %s", net.describe())
        return EmbeddingLoss(net.features, percept or net.percept_layers, style or net.style_layers,
                             net.feature_scale)

    # ---- groups and phases -------------------------------------------------------------------

    def init_group(self, batch: Batch, resuming: bool) -> None:
        """Fresh parameters for the images of ``batch``: one W+ block and one set of noise maps each."""
        self.check_targets(batch)
        streams = [self.stream(stem) for stem in self.group_stems]
        encoded = self._encode(batch["image"]) if self.encoder is not None else [None] * len(streams)
        w = torch.stack([self._initial_w(stem, g, e) for stem, g, e in zip(self.group_stems, streams, encoded,
                                                                             strict=True)])
        noise = [torch.cat(maps) for maps in zip(*[self._initial_noise(stem, g)
                                                   for stem, g in zip(self.group_stems, streams, strict=True)],
                                                 strict=True)]
        self.w_plus = nn.Parameter(w.to(self.device))
        self.noise = nn.ParameterList([nn.Parameter(n.to(self.device) / g) for n, g in zip(noise, self.noise_gains,
                                                                                           strict=True)])
        self.register_buffer("w_start", w.to(self.device).clone(), persistent=False)
        self._phase_targets = {}

    def group_parameters(self) -> dict[str, torch.Tensor]:
        """W+ ``[B, num_ws, w_dim]`` and the noise maps ``[B, 1, r, r]``, in layer order."""
        return {"w_plus": self.w_plus, **{f"noise.{i}": n for i, n in enumerate(self.noise)}}

    def phase_state(self) -> dict:
        """The phase's starting code w* and, for a ``"render"`` y, the render it started from."""
        render_y = self.phase.y == "render"
        return {"w_start": self.w_start.cpu(), "y": self._phase_targets["y"].detach().cpu() if render_y else None}

    def enter_phase(self, phase: Phase, batch: Batch, saved: dict | None) -> list[torch.Tensor]:
        """Make ``phase`` current and return the tensors its optimiser must move.

        The phase's starting code w* (what ``pull`` pulls toward) is the current W+, or the
        checkpoint's when the phase resumes in its middle (``saved``).
        """
        if phase.uses_second and "second" not in batch:
            raise ValueError(f"phase {phase.name!r} uses the second image: give the datamodule `second`")
        self.w_start.copy_(self.w_plus.detach() if saved is None else saved["w_start"])
        moving_w = phase.optimize == "w"
        self.w_plus.requires_grad_(moving_w)
        chosen = set(range(len(self.noise)) if phase.noise_maps is None else phase.noise_maps)
        for i, n in enumerate(self.noise):
            n.requires_grad_(not moving_w and i in chosen)
        self._phase_targets = self._targets(phase, batch, None if saved is None else saved["y"])
        if moving_w:
            return [self.w_plus]
        return [n for n in self.noise if n.requires_grad]

    def _targets(self, phase: Phase, batch: Batch, saved_y: torch.Tensor | None) -> dict:
        """x, y, their VGG features, the masks and the W+ row mask of this phase, computed once.

        A ``"render"`` y is the render at the start of the phase (``saved_y`` when the phase
        resumes in its middle).
        """
        x = batch[phase.x]
        if phase.y != "render":
            y = batch[phase.y]
        elif saved_y is not None:
            y = saved_y.to(x.device)
        else:
            y = self.current_render().detach()
        mask = blur(dilate(batch["mask"], phase.mask_dilate), phase.mask_blur)
        targets = {"x": x, "y": y, "x_features": None, "y_features": None, "y_percept_features": None,
                   "masks": {name: _select_mask(mask, name)
                             for name in (phase.mask_mse, phase.mask_percept, phase.mask_style)},
                   "style_target_mask": torch.ones_like(mask[:1]) if phase.style else None,
                   "rows": self._row_mask(phase) if phase.optimize == "w" and phase.w_rows is not None else None}
        if phase.percept:
            targets["x_features"] = self.loss_fn.target_features(x, self.loss_fn.percept_layers)
        if phase.percept2:
            targets["y_percept_features"] = self.loss_fn.target_features(y, self.loss_fn.percept_layers)
        if phase.style:
            targets["y_features"] = self.loss_fn.target_features(y, self.loss_fn.style_layers)
        if phase.identity:
            with torch.no_grad():
                targets["x_descriptors"] = face_descriptors(x, self.face_box)
        return targets

    # ---- rendering and loss ------------------------------------------------------------------

    def render(self) -> torch.Tensor:
        """The current images of the group, in [-1, 1] (not clamped, so gradients flow everywhere).

        Under a variable mask wm only its rows carry gradients: the others enter as constants.
        """
        w, rows = self.w_plus, self._phase_targets.get("rows")
        if rows is not None:
            w = torch.where(rows.bool(), w, w.detach())
        return self.generator.synthesis(w, noise=self.noise_maps())

    def noise_maps(self) -> list[torch.Tensor]:
        """The unit-variance noise maps the layers receive: the fitted values times each map's gain."""
        return [n * g for n, g in zip(self.noise, self.noise_gains, strict=True)]

    def per_image_loss(self, render: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Eq. 1 (plus the optional pull toward the starting code) for each image: ``[B]`` and the terms."""
        phase, t = self.phase, self._phase_targets
        masks = t["masks"]
        total, terms = self.loss_fn(
            render, t["x"], t["y"], w_style=phase.style, w_mse1=phase.mse1, w_mse2=phase.mse2,
            w_percept=phase.percept, w_percept2=phase.percept2, mask_style=masks[phase.mask_style],
            mask_style_target=t["style_target_mask"], mask_mse=masks[phase.mask_mse],
            mask_percept=masks[phase.mask_percept], x_features=t["x_features"], y_features=t["y_features"],
            y_percept_features=t["y_percept_features"])
        if phase.pull:
            terms["pull"] = latent_pull(self.w_plus, self.w_start)
            total = total + phase.pull * terms["pull"]
        if phase.identity:
            terms["identity"] = identity_loss(render, t["x_descriptors"], self.face_box)
            total = total + phase.identity * terms["identity"]
        if phase.lpips:
            terms["lpips"] = lpips(render, t["x"])
            total = total + phase.lpips * terms["lpips"]
        return total, terms

    def _row_mask(self, phase: Phase) -> torch.Tensor:
        """1 for the W+ rows ``phase`` may move (wm), 0 elsewhere."""
        mask = torch.zeros(self.w_plus.shape[1], 1, device=self.device, dtype=self.w_plus.dtype)
        mask[resolve_rows(phase.w_rows, self.w_plus.shape[1])] = 1
        return mask

    def result(self, i: int) -> FitResult:
        """Image ``i``'s W+ and noise maps, with what re-renders and reruns it."""
        stem = self.group_stems[i]
        fitted_noise = any(p.optimize == "noise" and p.steps > 0 for p in self.schedule.phases)
        meta = self.metadata(stem, perceptual=self.perceptual.describe() if self.perceptual else None,
                             fitted_noise=fitted_noise)
        return FitResult(Latents(self.w_plus[i].detach().float().cpu(),
                                 [n[i : i + 1].detach().float().cpu() for n in self.noise_maps()], meta))

    # ---- initial values ----------------------------------------------------------------------

    @torch.no_grad()
    def _encode(self, images: torch.Tensor) -> torch.Tensor:
        """The encoder's codes ``[B, num_ws, w_dim]`` of the targets (on the CPU)."""
        if self.encoder.resolution != images.shape[-1] or self.encoder.w_dim != self.generator.w_dim:
            raise ValueError(f"the encoder {self.hparams.encoder} reads {self.encoder.resolution}² images into "
                             f"codes of {self.encoder.w_dim}; this generator renders {images.shape[-1]}² from "
                             f"{self.generator.w_dim}")
        return self.encoder.to(images.device)(images.float()).cpu()

    def _initial_w(self, stem: str, g: torch.Generator, encoded: torch.Tensor | None) -> torch.Tensor:
        num_ws, w_dim = self.generator.num_ws, self.generator.w_dim
        mode = self.hparams.w_init
        if encoded is not None:
            w = encoded
        elif mode == "mean":
            w = self.generator.w_avg.detach().cpu().expand(num_ws, w_dim).clone()
        elif mode == "uniform":
            w = torch.rand(num_ws, w_dim, generator=g) * 2 - 1
        else:
            w = self.stored_latents(stem).w_plus
        if self.hparams.w_init_offset:
            a = self.hparams.w_init_offset
            w = w + (torch.rand(num_ws, w_dim, generator=g) * 2 - 1) * a
        return w.float()

    def _initial_noise(self, stem: str, g: torch.Generator) -> list[torch.Tensor]:
        mode = self.hparams.noise_init
        synthesis = self.generator.synthesis
        if mode == "const":
            return [n.detach().cpu().clone() for n in synthesis.const_noise()]
        if mode == "latents":
            record = self.stored_latents(stem)
            if record.noise is None:
                raise ValueError(f"{record.path}: no noise maps to start from (an .npz file); use noise_init const")
            return record.noise
        return [torch.randn(shape, generator=g) for shape in synthesis.noise_shapes]


def _select_mask(mask: torch.Tensor, name: str) -> torch.Tensor | None:
    if name == "ones":
        return None
    return mask if name == "mask" else 1 - mask

