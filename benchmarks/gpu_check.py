"""What only a GPU can show, in one command of at most 8 minutes: markdown tables in a file and on stdout.

    python benchmarks/gpu_check.py                          # runs/gpu_check.md, 450 s at most
    python benchmarks/gpu_check.py --out /tmp/gpu.md --budget 300 --parts parity throughput
    python benchmarks/gpu_check.py --config-f stylegan2-ffhq-config-f.pkl   # real weights for the short fits
    python benchmarks/gpu_check.py --smoke                  # every part on CPU at a tiny size: checks the script

The parts, in this order:

1. **tests**: the tests marked ``cuda`` (``pytest -m cuda``), one row each;
2. **parity**: CPU against CUDA. StyleGAN2 config-f (1024², random weights) renders the same W+ and
   noise maps, and differentiates with respect to W+, on both: in full fp32 (TF32 off), with
   PyTorch's TF32 defaults, and in bf16 autocast. Then one short W+ & noise fit (``embed fit``, the
   embedded default generator, two example faces) on each device, its codes and PSNR compared;
3. **fits**: short real fits (``embed fit``, bf16 autocast) of two example faces on CUDA with the
   default generator, config-f (random weights unless ``--config-f`` names a checkpoint) and
   MobileStyleGAN (``load_generator("mobilestylegan-ffhq")``, where its weights have been fetched);
4. **throughput**: config-f and MobileStyleGAN at 1024², groups of 1 / 8 / 32 images, in fp32, bf16
   autocast, bf16 + channels-last, and bf16 + channels-last + ``torch.compile``. WI and Mkn steps
   are timed as ``benchmarks/throughput.py`` times them (random VGG-16 weights at 256², which cost
   what ImageNet ones cost); images per hour is extrapolated from them to the recipe's full schedule
   (``recipes/reconstruct.yaml``), with the peak memory allocated.

Every row is written as soon as it is measured (the file is rewritten, stdout gets the line), so a
run that is stopped keeps what it measured. Each row runs in its own ``try``: an error becomes the
row and the next one starts. A global time budget (``--budget``) skips what would not fit; without
a CUDA device the GPU parts are skipped. Every skip is a row with its reason, and the last table
lists them all.
"""

from __future__ import annotations

import argparse
import csv
import gc
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import lightning
import torch
import yaml
from throughput import build_module, device_name, measure, tiny_generator

from embedding.checkpoints import load_generator, save_generator

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "recipes" / "reconstruct.yaml"
FACES = [ROOT / "examples" / "photos" / f"face{i}.jpg" for i in (1, 2)]
MOBILE = "mobilestylegan-ffhq"
PARTS = ("tests", "parity", "fits", "throughput")
MODES = {  # name: autocast dtype, channels-last, torch.compile
    "fp32": ("fp32", False, False),
    "bf16": ("bf16", False, False),
    "bf16 + channels-last": ("bf16", True, False),
    "bf16 + channels-last + compile": ("bf16", True, True),
}


@dataclass(frozen=True)
class Scale:
    """The sizes of the parts: a GPU's, or the smoke run's (CPU standing in for CUDA, tiny networks)."""

    resolution: int
    channel_base: int
    channel_max: int
    w_dim: int
    mapping_layers: int
    groups: tuple[int, ...]
    steps: int  # timed steps per throughput row and phase (median reported)
    warmup: int
    parity_fit: str
    real_fit: str
    precision: str
    vgg_resize: int | None
    row_seconds: float  # the time a throughput row needs at least (a compiled one: six times that)


# NVIDIA's config-f: 1024², z and w of 512, 8 mapping layers, channel_base 32768 (512 channels up to 64²,
# halving with each resolution above), no fp16 layers and no clamping (the released TensorFlow networks).
GPU = Scale(1024, 32768, 512, 512, 8, (1, 8, 32), 5, 2, "{WI: 50, Mkn: 25}", "{WI: 100, Mkn: 50}", "bf16-mixed",
            256, 25)
SMOKE = Scale(64, 1024, 64, 64, 2, (1, 2), 1, 1, "{WI: 2, Mkn: 1}", "{WI: 2, Mkn: 1}", "32-true", None, 3)


# ---- the report ----------------------------------------------------------------------------------


class Unavailable(Exception):
    """What a row needs is not here (weights not fetched, say): the row is skipped with this reason."""


@dataclass
class Table:
    title: str
    columns: list[str]
    note: str = ""
    rows: list[list[str]] = field(default_factory=list)

    def head(self) -> list[str]:
        lines = ["", f"## {self.title}", ""]
        if self.note:
            lines += [self.note, ""]
        return [*lines, _line(self.columns), _line(["---"] * len(self.columns))]


def _line(cells: Sequence[str]) -> str:
    return "| " + " | ".join(str(c).replace("|", "\\|").replace("\n", " ") for c in cells) + " |"


class Report:
    """Markdown tables, the whole file rewritten after every row, each row echoed to stdout as it comes."""

    def __init__(self, path: Path, heading: str) -> None:
        self.path, self.heading = path, heading
        self.tables: list[Table] = []
        self.skipped: list[tuple[str, str, str]] = []
        print(heading, flush=True)
        self.write()

    def table(self, title: str, columns: list[str], note: str = "") -> Table:
        table = Table(title, columns, note)
        self.tables.append(table)
        print("\n".join(table.head()), flush=True)
        self.write()
        return table

    def row(self, table: Table, *cells: object) -> None:
        line = [str(c) for c in cells] + [""] * (len(table.columns) - len(cells))
        table.rows.append(line)
        print(_line(line), flush=True)
        self.write()

    def skip(self, table: Table, what: str, reason: str) -> None:
        self.row(table, what, f"skipped: {reason}")
        self.skipped.append((table.title, what, reason))

    def error(self, table: Table, what: str, error: BaseException) -> None:
        message = str(error).strip().splitlines()
        self.row(table, what, f"error: {type(error).__name__}: {message[-1] if message else ''}"[:400])

    def write(self) -> None:
        text = "\n".join([self.heading, *(line for t in self.tables for line in [*t.head(), *map(_line, t.rows)])])
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_name(f".{self.path.name}.tmp")
        partial.write_text(text + "\n")
        os.replace(partial, self.path)


class Budget:
    """The seconds the whole check may take, from its start."""

    def __init__(self, seconds: float) -> None:
        self.seconds, self.start = seconds, time.monotonic()

    def left(self) -> float:
        return self.seconds - (time.monotonic() - self.start)

    def short_of(self, seconds: float) -> str | None:
        """Why a step that needs ``seconds`` cannot start now, or None when it can."""
        left = self.left()
        return None if left >= seconds else f"time budget: {max(left, 0):.0f} s left of {self.seconds:.0f}, " \
                                             f"about {seconds:.0f} s needed"


# ---- the check -----------------------------------------------------------------------------------


class GpuCheck:
    """The four parts, each row measured, skipped or failed on its own."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.cuda = torch.cuda.is_available() and not args.smoke
        self.device = torch.device("cuda" if self.cuda else "cpu")
        self.scale = SMOKE if args.smoke else GPU
        self.budget = Budget(args.budget)
        self.work = Path(tempfile.mkdtemp(prefix="gpu_check."))
        what = "smoke run: CPU stands in for CUDA, tiny networks" if args.smoke else device_name(self.device)
        self.report = Report(args.out, f"# GPU check ({what})")
        self._config_f: str | None = None
        self._mobile: str | BaseException | None = None

    @property
    def runs(self) -> bool:
        """Whether the GPU parts run: on CUDA, or in a smoke run."""
        return self.cuda or self.args.smoke

    def run(self) -> None:
        try:
            self.machine()
            for name in self.args.parts:
                self._part(name)
        finally:
            table = self.report.table("Skipped", ["part", "what", "why"])
            for part, what, reason in self.report.skipped:
                self.report.row(table, part, what, reason)
            if not self.report.skipped:
                self.report.row(table, "nothing", "")
            shutil.rmtree(self.work, ignore_errors=True)
            print(f"\nwritten to {self.args.out} in {time.monotonic() - self.budget.start:.0f} s", flush=True)

    def _part(self, name: str) -> None:
        part = getattr(self, name)
        try:
            part()
        except Exception as e:  # a part's own set-up failed: say so and go on with the next part
            self.report.error(self.report.table(f"{name}: failed", ["what", "outcome"]), name, e)

    def item(self, table: Table, what: str, need: float, measure_row: Callable[[], list[object]]) -> None:
        """One row: its cells from ``measure_row``, or why it was skipped, or its error."""
        reason = self.budget.short_of(need)
        if reason is not None:
            self.report.skip(table, what, reason)
            return
        try:
            self.report.row(table, what, *measure_row())
        except Unavailable as e:
            self.report.skip(table, what, str(e))
        except Exception as e:
            self.report.error(table, what, e)
        finally:
            release(self.device)

    # ---- machine ------------------------------------------------------------------------------

    def machine(self) -> None:
        table = self.report.table("Machine", ["item", "value"])
        if self.cuda:
            props = torch.cuda.get_device_properties(self.device)
            self.report.row(table, "GPU", f"{props.name}, {props.total_memory / 2**30:.0f} GiB, "
                                          f"{props.multi_processor_count} multiprocessors")
            self.report.row(table, "CUDA / cuDNN", f"{torch.version.cuda} / {torch.backends.cudnn.version()}")
        else:
            self.report.row(table, "GPU", "none: smoke run on CPU" if self.args.smoke else "none (no CUDA device)")
        self.report.row(table, "CPU", f"{device_name(torch.device('cpu'))}, {os.cpu_count()} cores, "
                                      f"{torch.get_num_threads()} torch threads")
        self.report.row(table, "torch / Lightning", f"{torch.__version__} / {lightning.__version__}")
        self.report.row(table, "budget", f"{self.args.budget:.0f} s; parts: {', '.join(self.args.parts)}")

    # ---- 1. tests -----------------------------------------------------------------------------

    def tests(self) -> None:
        table = self.report.table("Tests marked cuda", ["test", "outcome", "seconds"],
                                  "`python -m pytest -m cuda tests`")
        if not self.runs:
            self.report.skip(table, "pytest -m cuda", "no CUDA device")
            return
        reason = self.budget.short_of(30)
        if reason is not None:
            self.report.skip(table, "pytest -m cuda", reason)
            return
        junit = self.work / "junit.xml"
        command = [sys.executable, "-m", "pytest", "-m", "cuda", "-q", "-p", "no:cacheprovider",
                   f"--junitxml={junit}", str(ROOT / "tests")]
        try:
            done = subprocess.run(command, cwd=ROOT, env=project_env(), capture_output=True, text=True,
                                  timeout=self.timeout(180))
        except subprocess.TimeoutExpired:
            done = None
        cases = list(ElementTree.parse(junit).iter("testcase")) if junit.is_file() else []
        for case in cases:
            self.report.row(table, f"{case.get('classname')}::{case.get('name')}", outcome(case),
                            f"{float(case.get('time', 0)):.1f}")
        if done is None:
            self.report.row(table, "pytest -m cuda", "error: stopped after 180 s or by the time budget")
        elif not cases or done.returncode not in (0, 1):
            self.report.row(table, "pytest -m cuda", f"exit {done.returncode}: {tail(done.stdout + done.stderr)}")

    # ---- 2. parity ----------------------------------------------------------------------------

    def parity(self) -> None:
        table = self.report.table(
            "CPU/CUDA parity: the generator", ["on CUDA", "image max |Δ|", "image mean |Δ|",
                                               "PSNR against CPU dB", "∂/∂W+ max |Δ| / max |∂|"],
            f"StyleGAN2 config-f shape at {self.scale.resolution}², random weights, 2 images with the same W+ and "
            "noise maps; the reference is CPU fp32. ∂/∂W+: gradient of a fixed random weighting of the image.")
        if not self.runs:
            self.report.skip(table, "generator and short fit", "no CUDA device")
            return
        generator = self.config_f_generator()
        seeded = torch.Generator().manual_seed(1)
        with torch.no_grad():
            ws = generator.mapping(torch.randn(2, generator.z_dim, generator=seeded), None)
        noise = generator.synthesis.random_noise(2, seeded)
        weights = torch.randn(2, 3, generator.resolution, generator.resolution, generator=seeded)
        reference: dict[str, torch.Tensor] = {}

        def on_cpu() -> list[object]:
            reference["image"], reference["grad"] = render(generator, ws, noise, weights, "cpu")
            return ["—", "—", "—", "—"]

        self.item(table, "(CPU fp32: the reference)", 60, on_cpu)
        settings = [("fp32, TF32 off", False, torch.float32), ("fp32, PyTorch's TF32 defaults", None, torch.float32),
                    ("bf16 autocast", None, torch.bfloat16)]
        for what, tf32, dtype in settings:
            self.item(table, what, 20, lambda tf32=tf32, dtype=dtype: compare(
                reference, render(generator, ws, noise, weights, self.device, tf32, dtype)))
        self.short_fit_parity()

    def short_fit_parity(self) -> None:
        table = self.report.table(
            "CPU/CUDA parity: a short W+ & noise fit", ["fit", "W+ max |Δ|", "W+ mean |Δ|", "noise mean |Δ|",
                                                        "PSNR CPU → CUDA dB (WI; Mkn)"],
            f"`embed fit`, the embedded default generator, the two example faces in one group, "
            f"`--model.steps \"{self.scale.parity_fit}\"`, fp32 (PyTorch's TF32 defaults on CUDA). Adam turns "
            "rounding differences in gradients near zero into whole steps, so codes differ by a few learning "
            "rates where such gradients occur; PSNR shows whether the fits are the same.")

        def fits() -> list[object]:
            roots = [self.work / "parity-cpu", self.work / "parity-cuda"]
            for root, accelerator in zip(roots, ("cpu", self.accelerator), strict=True):
                self.embed_fit(root, "default", self.scale.parity_fit, accelerator, "32-true")
            cpu, cuda = (latent_files(root) for root in roots)
            w = torch.stack([(cuda[s]["w_plus"] - cpu[s]["w_plus"]).abs() for s in cpu])
            noise = statistics.mean((b - a).abs().mean().item() for s in cpu
                                    for a, b in zip(cpu[s]["noise"], cuda[s]["noise"], strict=True))
            before, after = (phase_psnr(root) for root in roots)
            shown = "; ".join(f"{p} {before[p]:.2f} → {after[p]:.2f}" for p in before)
            return [f"{w.max():.2e}", f"{w.mean():.2e}", f"{noise:.2e}", shown]

        self.item(table, "default generator, 2 faces", 90, fits)

    # ---- 3. short real fits -------------------------------------------------------------------

    def fits(self) -> None:
        table = self.report.table(
            "Short real fits on CUDA", ["generator", "steps", "precision", "wall s", "PSNR after WI dB",
                                        "final PSNR dB", "note"],
            "`embed fit --config recipes/reconstruct.yaml` on the two example faces (128² photos, resized to the "
            "generator's resolution) in one group; wall time includes start-up and loading. Random weights make "
            "a run of the whole path, not a measure of quality.")
        if not self.runs:
            self.report.skip(table, "default, config-f, MobileStyleGAN", "no CUDA device")
            return
        config_f = (lambda: str(self.args.config_f)) if self.args.config_f else self.config_f_file
        candidates = [("default", lambda: "default", "64², shipped"),
                      ("StyleGAN2 config-f", config_f, "" if self.args.config_f else "random weights"),
                      ("MobileStyleGAN", self.mobile_stylegan, "")]
        for name, source, note in candidates:
            self.item(table, name, 60, lambda name=name, source=source, note=note: self.real_fit(
                name, source(), note))

    def real_fit(self, name: str, source: str, note: str) -> list[object]:
        root = self.work / f"fit-{name.replace(' ', '-')}"
        start = time.monotonic()
        self.embed_fit(root, source, self.scale.real_fit, self.accelerator, self.scale.precision)
        wall = time.monotonic() - start
        psnr = phase_psnr(root)
        return [self.scale.real_fit, self.scale.precision, f"{wall:.1f}", f"{psnr.get('WI', float('nan')):.2f}",
                f"{psnr.get('Mkn', float('nan')):.2f}", note]

    # ---- 4. throughput ------------------------------------------------------------------------

    def throughput(self) -> None:
        schedule = recipe_schedule()
        table = self.report.table(
            "Fitting throughput", ["generator", "group", "mode", "WI s/step", "Mkn s/step", "images/hour",
                                   "peak GiB", "WI TFLOP/s", "note"],
            f"At {self.scale.resolution}²; median of {self.scale.steps} timed steps after {self.scale.warmup} warm-up "
            f"per phase. images/hour = group × 3600 / ({schedule['WI']} × WI s/step + {schedule['Mkn']} × Mkn "
            "s/step), the recipe's full schedule. Peak: memory allocated on the device (CPU: the process's peak "
            "RSS). The compiled rows' note gives the first step's seconds (compilation).")
        if not self.runs:
            self.report.skip(table, "config-f and MobileStyleGAN, groups 1/8/32, four modes", "no CUDA device")
            return
        generators = []
        for name, source in (("config-f", self.config_f_file), ("MobileStyleGAN", self.mobile_stylegan)):
            try:
                generators.append((name, source()))
            except Unavailable as e:
                self.report.skip(table, name, str(e))
        compiled = [mode for mode, (_, _, compile_) in MODES.items() if compile_]
        rows = [(g, mode, size) for g in generators for mode in MODES if mode not in compiled
                for size in self.scale.groups]
        groups = sorted(self.scale.groups, key=lambda size: (size != 8, size))  # compiled: 8 first, the most telling
        rows += [(g, mode, size) for g in generators for mode in compiled for size in groups]
        for (name, source), mode, size in rows:
            compile_ = MODES[mode][2]
            if compile_ and self.args.smoke:
                self.report.skip(table, name, f"{mode}, group {size}: smoke run (compiling on CPU takes minutes)")
                continue
            need = self.scale.row_seconds * (6 if compile_ else 1)
            self.item(table, name, need, lambda source=source, mode=mode, size=size: [
                size, mode, *self.step_row(source, mode, size, schedule)])

    def step_row(self, source: str, mode: str, size: int, schedule: dict[str, int]) -> list[object]:
        dtype, channels_last, compile_ = MODES[mode]
        measured = {}
        for phase in ("wi", "mkn"):
            settings = argparse.Namespace(
                phase=phase, vgg_weights="random", vgg_resize=self.scale.vgg_resize, channels_last=channels_last,
                compile=compile_, compile_mode="default", groups=[size], steps=self.scale.steps,
                warmup=self.scale.warmup, dtype=dtype)
            module = build_module(source, settings, self.device)
            try:
                measured[phase] = measure(module, size, settings)
            finally:
                del module
                if compile_:
                    torch.compiler.reset()
                release(self.device)
        wi, mkn = measured["wi"], measured["mkn"]
        per_hour = size * 3600 / (schedule["WI"] * wi["seconds"] + schedule["Mkn"] * mkn["seconds"])
        notes = [f"first step {wi['first']:.0f} s (WI), {mkn['first']:.0f} s (Mkn)"] if compile_ else []
        failed = wi["failed"] + mkn["failed"]
        if failed:
            notes.append(f"{failed} image(s) marked failed (non-finite): not full steps")
        return [f"{wi['seconds']:.4f}", f"{mkn['seconds']:.4f}", f"{per_hour:,.0f}",
                f"{max(wi['peak'], mkn['peak']) / 1024:.1f}", f"{wi['flops'] / wi['seconds'] / 1e12:.3g}",
                "; ".join(notes)]

    # ---- generators and commands --------------------------------------------------------------

    @property
    def accelerator(self) -> str:
        return "gpu" if self.cuda else "cpu"

    def config_f_generator(self) -> torch.nn.Module:
        s = self.scale
        return tiny_generator(s.resolution, s.channel_base, s.channel_max, s.w_dim, mapping_layers=s.mapping_layers)

    def config_f_file(self) -> str:
        """The random config-f generator, saved once in the project's format."""
        if self._config_f is None:
            path = save_generator(self.config_f_generator(), self.work / "config-f" / "config-f.pt")
            self._config_f = str(path)
        return self._config_f

    def mobile_stylegan(self) -> str:
        """``mobilestylegan-ffhq`` when its weights load here; ``Unavailable`` saying why not otherwise (tried once)."""
        if self._mobile is None:
            try:
                load_generator(MOBILE)
                self._mobile = MOBILE
            except Exception as e:
                self._mobile = e
        if isinstance(self._mobile, BaseException):
            message = str(self._mobile).strip().splitlines()
            raise Unavailable(f"load_generator({MOBILE!r}): {type(self._mobile).__name__}: "
                              f"{message[-1] if message else ''}"[:300])
        return self._mobile

    def timeout(self, most: float) -> float:
        """Seconds a command may run: at most ``most``, and never past the budget."""
        return max(min(most, self.budget.left()), 1)

    def embed_fit(self, root: Path, generator: str, steps: str, accelerator: str, precision: str) -> None:
        """``embed fit`` of the two example faces in one group, in a fresh process; raises with its output."""
        photos = root / "photos"
        photos.mkdir(parents=True)
        for face in FACES:
            shutil.copy(face, photos / face.name)
        resize = [] if generator == "default" or self.scale.vgg_resize is None else [
            "--model.vgg_resize", str(self.scale.vgg_resize)]
        command = [sys.executable, "-m", "embedding.commands", "fit", "--config", str(RECIPE), "--model.generator",
                   generator, "--model.steps", steps, "--data.images", str(photos), "--data.batch_size", "2",
                   "--trainer.default_root_dir", str(root / "run"), "--trainer.accelerator", accelerator,
                   "--trainer.devices", "1", "--trainer.precision", precision, "--trainer.enable_progress_bar",
                   "false", *resize]
        done = subprocess.run(command, cwd=ROOT, env=project_env(), capture_output=True, text=True,
                              timeout=self.timeout(180))
        if done.returncode != 0:
            raise RuntimeError(f"embed fit exited {done.returncode}: {tail(done.stderr)}")


# ---- helpers -------------------------------------------------------------------------------------


def render(generator: torch.nn.Module, ws: torch.Tensor, noise: list[torch.Tensor], weights: torch.Tensor,
           device: str | torch.device, tf32: bool | None = False,
           dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """The synthesis of ``ws`` and ``noise`` on ``device`` and the gradient of ``(image · weights).sum()`` w.r.t. W+.

    ``tf32``: False turns TF32 off for convolutions and matrix products, None keeps PyTorch's defaults.
    """
    device = torch.device(device)
    synthesis = generator.synthesis.to(device)
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    if tf32 is False:
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        w = ws.detach().to(device).requires_grad_()
        with torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
            image = synthesis(w, [n.to(device) for n in noise])
        (image.float() * weights.to(device)).sum().backward()
        return image.detach().float().cpu(), w.grad.cpu()
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved
        generator.synthesis.to("cpu")


def compare(reference: dict[str, torch.Tensor], measured: tuple[torch.Tensor, torch.Tensor]) -> list[object]:
    image, grad = measured
    delta = (image - reference["image"]).abs()
    mse = ((image.clamp(-1, 1) - reference["image"].clamp(-1, 1)) ** 2).mean().item()
    psnr = float("inf") if mse == 0 else 10 * torch.log10(torch.tensor(4 / mse)).item()  # images span [-1, 1]
    grad_delta = (grad - reference["grad"]).abs().max() / reference["grad"].abs().max()
    return [f"{delta.max():.2e}", f"{delta.mean():.2e}", f"{psnr:.1f}", f"{grad_delta:.2e}"]


def latent_files(root: Path) -> dict[str, dict]:
    return {p.stem: torch.load(p, weights_only=True) for p in sorted((root / "run" / "latents").glob("*.pt"))}


def phase_psnr(root: Path) -> dict[str, float]:
    """Mean PSNR over the images at each phase's end (its last row in ``metrics.csv``)."""
    last: dict[tuple[str, str], float] = {}
    with open(root / "run" / "metrics.csv", newline="") as f:
        for row in csv.DictReader(f):
            last[row["image"], row["phase"]] = float(row["psnr"])
    phases = dict.fromkeys(phase for _, phase in last)
    return {p: statistics.mean(v for (_, q), v in last.items() if q == p) for p in phases}


def recipe_schedule() -> dict[str, int]:
    """Steps of each phase in ``recipes/reconstruct.yaml``: the schedule images/hour is given for."""
    phases = yaml.safe_load(RECIPE.read_text())["model"]["phases"]
    return {phase["name"]: int(phase["steps"]) for phase in phases}


def outcome(case: ElementTree.Element) -> str:
    """A JUnit test case's outcome: passed, or failed / skipped with the first line of its message."""
    for kind in ("failure", "error", "skipped"):
        found = case.find(kind)
        if found is not None:
            message = (found.get("message") or kind).strip().splitlines() or [kind]
            return f"{'skipped' if kind == 'skipped' else 'failed'}: {message[0]}"[:300]
    return "passed"


def tail(text: str, lines: int = 3) -> str:
    return " / ".join(line.strip() for line in text.strip().splitlines()[-lines:])[:400]


def project_env() -> dict[str, str]:
    """The environment of the commands the check starts: this checkout importable, output unbuffered."""
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, "PYTHONPATH": path, "PYTHONUNBUFFERED": "1"}


def release(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "gpu_check.md", help="the markdown file")
    parser.add_argument("--budget", type=float, default=450.0, help="seconds the whole check may take")
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS), help="the parts to run, in order")
    parser.add_argument("--config-f", type=Path, default=None,
                        help="a config-f checkpoint for the short real fits (default: random weights)")
    parser.add_argument("--smoke", action="store_true",
                        help="run every part on CPU with tiny networks, to check this script where there is no GPU")
    GpuCheck(parser.parse_args()).run()


if __name__ == "__main__":
    main()
