"""Throughput of the embedding step: how much fitting images in groups gains over fitting them one by one.

One step is ``EmbeddingModule.training_step`` itself, run without a Trainer: ``render()`` (the
synthesis network from per-image W+ and noise maps), ``per_image_loss`` (Eq. 1 of the chosen
phase: WI = pixel MSE + VGG-16 perceptual, moving W+; Mkn = MSE only, moving the noise maps),
backward of the summed per-image losses, the per-image failure checks and the phase's Adam step.
The group's parameters come from ``start_group`` and the optimiser from ``switch_phase``, as the
module's own ``on_train_batch_start`` sets them up in a run, on a synthetic batch
(random targets in [-1, 1], all-ones masks). Only logging is left out.

For every group size the table gives the median seconds per step over ``--steps`` timed steps
(after ``--warmup`` untimed ones), image-steps per second, the speed-up over one by one
(image-steps/s at group g ÷ image-steps/s at group 1), peak memory (CUDA: peak allocated
memory; CPU: the process's peak RSS, which never goes down, so later groups only show growth
beyond the earlier peaks), the FLOPs of one step (counted once per group size with
``torch.utils.flop_counter.FlopCounterMode``: render, loss and backward) and the FLOP/s they
achieve beside the device's matmul peak, measured by timing a large square matmul of the chosen
dtype for about a second.

    # CPU quick run (tiny random 64² generator, random VGG weights; well under a minute)
    python benchmarks/throughput.py

    # GPU, a 256² checkpoint, bf16 autocast, compiled synthesis
    python benchmarks/throughput.py --device cuda --generator /path/to/ffhq-256.pkl \\
        --dtype bf16 --compile --groups 1 2 4 8 16 32 --steps 20 --warmup 5

    # GPU, the 1024² FFHQ generator, bf16 + compile + channels-last, real VGG weights
    python benchmarks/throughput.py --device cuda --generator /path/to/stylegan2-ffhq-config-f.pkl \\
        --dtype bf16 --compile --channels-last --vgg-weights imagenet --groups 1 2 4 8 --steps 10

    # a random generator of another size, built in-process: tiny:<resolution>
    python benchmarks/throughput.py --device cuda --generator tiny:256 --channel-base 16384 --channel-max 512 \\
        --w-dim 512
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import platform
import resource
import statistics
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from embedding.checkpoints import save_generator
from embedding.generators import Generator
from embedding.methods.image2stylegan.module import EmbeddingModule
from embedding.methods.image2stylegan.phases import mkn, wi

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


# ---- the generator -------------------------------------------------------------------------------


@torch.no_grad()
def tiny_generator(resolution: int, channel_base: int, channel_max: int, w_dim: int, seed: int = 0,
                   mapping_layers: int = 2) -> Generator:
    """A random generator with non-trivial biases, noise strengths and mean latent (none is left at zero)."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        g = Generator(z_dim=w_dim, c_dim=0, w_dim=w_dim, img_resolution=resolution, img_channels=3,
                      mapping_kwargs=dict(num_layers=mapping_layers),
                      synthesis_kwargs=dict(channel_base=channel_base, channel_max=channel_max))
        for name, tensor in g.synthesis.state_dict(keep_vars=True).items():
            if name.endswith("affine.bias"):
                tensor.add_(0.2 * torch.randn_like(tensor))
            elif name.endswith(("bias", "noise_strength")):
                tensor.copy_(0.2 * torch.randn_like(tensor))
        g.mapping.w_avg.copy_(g.mapping(torch.randn(1000, w_dim))[:, 0].mean(dim=0))
    return g.eval()


@contextlib.contextmanager
def generator_source(args: argparse.Namespace):
    """The path the module loads: ``--generator`` itself, or a ``tiny:<res>`` generator saved to a temp file."""
    if not args.generator.startswith("tiny:"):
        yield args.generator
        return
    resolution = int(args.generator.split(":", 1)[1])
    with tempfile.TemporaryDirectory() as folder:
        g = tiny_generator(resolution, args.channel_base, args.channel_max, args.w_dim)
        yield str(save_generator(g, Path(folder) / f"tiny{resolution}.pt"))


# ---- device facts --------------------------------------------------------------------------------


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_peak(device: torch.device, dtype: torch.dtype, seconds: float = 1.0) -> tuple[float, str]:
    """FLOP/s of a large square matmul in ``dtype``: the best of the runs timed over about ``seconds``.

    The best run rather than the mean, so that a busy machine understates the peak less.
    fp32 on CUDA: the convolutions run in TF32 when cuDNN allows it (PyTorch's default), so the
    matmul is timed with TF32 allowed too, to compare like with like.
    """
    largest = 8192 if device.type == "cuda" else 2048
    tf32 = device.type == "cuda" and dtype == torch.float32 and torch.backends.cudnn.allow_tf32
    previous = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = tf32 or previous
    try:
        n = 256
        while True:  # grow the matrices while one product takes under 1/20 of the time (slow dtypes stay small)
            a = torch.randn(n, n, device=device, dtype=dtype)
            b = torch.randn(n, n, device=device, dtype=dtype)
            a @ b
            sync(device)
            t0 = time.perf_counter()
            a @ b
            sync(device)
            if n >= largest or time.perf_counter() - t0 > seconds / 20:
                break
            n *= 2
        best, runs, start = float("inf"), 0, time.perf_counter()
        while time.perf_counter() - start < seconds or runs < 3:
            t0 = time.perf_counter()
            a @ b
            sync(device)
            best, runs = min(best, time.perf_counter() - t0), runs + 1
    finally:
        torch.backends.cuda.matmul.allow_tf32 = previous
    name = "tf32" if tf32 else str(dtype).removeprefix("torch.")
    return 2 * n**3 / best, f"{n}² {name} matmul, best of {runs}"


def peak_rss_mib() -> float:
    """The process's peak resident set size so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ---- one group size ------------------------------------------------------------------------------


def synthetic_batch(size: int, resolution: int, device: torch.device, channels_last: bool) -> dict:
    """What the datamodule delivers: stems, indices, targets in [-1, 1] and all-ones masks."""
    gen = torch.Generator().manual_seed(size)
    image = (torch.rand(size, 3, resolution, resolution, generator=gen) * 2 - 1).to(device)
    mask = torch.ones(size, 1, resolution, resolution, device=device)
    if channels_last:
        image, mask = image.contiguous(memory_format=torch.channels_last), mask.contiguous(
            memory_format=torch.channels_last)
    return {"stem": [f"image{i:04d}" for i in range(size)], "index": torch.arange(size), "image": image,
            "mask": mask}


class _Optimizer:
    """What ``self.optimizers()`` hands ``training_step``: the phase's optimiser, through the loss scaler for fp16."""

    def __init__(self, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler | None) -> None:
        self.optimizer, self.scaler = optimizer, scaler

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.optimizer.zero_grad(set_to_none=set_to_none)

    def step(self) -> None:
        if self.scaler is None:
            self.optimizer.step()
        else:
            self.scaler.step(self.optimizer)
            self.scaler.update()


class Stepper:
    """The group's parameters and optimiser, and ``EmbeddingModule.training_step`` run without a Trainer.

    The three things the step takes from a Trainer are stood in for as Lightning's manual
    optimisation provides them: ``optimizers()`` (the phase's optimiser), ``manual_backward``
    (backward, of the scaled loss for fp16) and ``log`` / ``log_dict`` (no-ops: logging is not timed).
    """

    def __init__(self, module: EmbeddingModule, batch: dict, dtype: torch.dtype) -> None:
        self.module, self.batch = module, batch
        self.phase = module.schedule.phases[0]
        module.start_group(batch)
        optimizer = module.switch_phase(batch)
        device = module.device
        self.autocast = torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32)
        scaler = torch.amp.GradScaler(device.type) if dtype == torch.float16 else None
        wrapped = _Optimizer(optimizer, scaler)
        module.optimizers = lambda use_pl_optimizer=True: wrapped
        module.manual_backward = lambda loss, *a, **kw: (loss if scaler is None else scaler.scale(loss)).backward(
            *a, **kw)
        module.log = module.log_dict = lambda *a, **kw: None

    def step(self) -> None:
        """render → per_image_loss → backward → optimiser step, with the module's per-image bookkeeping.

        The whole step runs under autocast, as Lightning's mixed precision wraps ``training_step``.
        """
        with self.autocast:
            self.module.training_step(self.batch, self.module.group_step)

    def timed_step(self) -> float:
        device = self.module.device
        sync(device)
        start = time.perf_counter()
        self.step()
        sync(device)
        return time.perf_counter() - start

    def count_flops(self) -> int:
        """FLOPs of one step, counted in eager mode (a compiled graph does the same arithmetic)."""
        stance = torch.compiler.set_stance("force_eager") if hasattr(torch.compiler, "set_stance") \
            else contextlib.nullcontext()
        with stance, FlopCounterMode(display=False) as counter:
            self.step()
        return counter.get_total_flops()


def measure(module: EmbeddingModule, size: int, args: argparse.Namespace) -> dict:
    device = module.device
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    rss_before = peak_rss_mib()
    stepper = Stepper(module, synthetic_batch(size, module.generator.resolution, device, args.channels_last),
                      DTYPES[args.dtype])
    first = stepper.timed_step()  # includes compilation for this shape when --compile
    for _ in range(max(args.warmup - 1, 0)):
        stepper.timed_step()
    flops = stepper.count_flops()
    times = [stepper.timed_step() for _ in range(args.steps)]
    seconds = statistics.median(times)
    spread = (min(times), max(times))
    if device.type == "cuda":
        peak, growth = torch.cuda.max_memory_allocated(device) / 2**20, None
    else:
        peak = peak_rss_mib()
        growth = peak - rss_before
    failed = len(module.failed)
    del stepper
    return {"group": size, "seconds": seconds, "first": first, "flops": flops, "peak": peak, "growth": growth,
            "spread": spread, "failed": failed}


# ---- report --------------------------------------------------------------------------------------


def build_module(source: str, args: argparse.Namespace, device: torch.device) -> EmbeddingModule:
    phase = wi(steps=10**6) if args.phase == "wi" else mkn(steps=10**6)
    if args.vgg_weights == "random":  # the timing does not depend on the weights: skip the module's warning
        logging.getLogger("embedding.vgg").setLevel(logging.ERROR)
    module = EmbeddingModule(generator=source, phases=[phase], vgg_weights=args.vgg_weights,
                             vgg_resize=args.vgg_resize).to(device)
    if args.channels_last:
        module = module.to(memory_format=torch.channels_last)
    if args.compile:
        # One static graph per group size (an embedding run keeps its group size); room for all of them.
        for limit in ("recompile_limit", "cache_size_limit"):
            if hasattr(torch._dynamo.config, limit):
                setattr(torch._dynamo.config, limit, max(getattr(torch._dynamo.config, limit), len(args.groups) + 2))
        module.generator.synthesis.compile(mode=args.compile_mode, dynamic=False)
    return module


def print_table(rows: list[dict], peak_flops: float, device: torch.device, compiled: bool) -> None:
    unit, scale = ("TFLOP/s", 1e12) if peak_flops >= 1e12 else ("GFLOP/s", 1e9)
    base = rows[0]["group"] / rows[0]["seconds"]
    memory = "peak alloc MiB" if device.type == "cuda" else "peak RSS MiB (+growth)"
    header = (f"{'group':>5} {'s/step':>9} {'min–max s':>15} {'img-steps/s':>11} {'speed-up':>8} {memory:>22} "
              f"{'GFLOP/step':>10} {'achieved ' + unit:>17} {'of peak':>7}")
    if compiled:
        header += f" {'1st step s (compile)':>20}"
    print(header)
    for r in rows:
        rate = r["group"] / r["seconds"]
        achieved = r["flops"] / r["seconds"]
        mem = f"{r['peak']:.0f}" if r["growth"] is None else f"{r['peak']:.0f} (+{r['growth']:.0f})"
        spread = f"{r['spread'][0]:.4f}–{r['spread'][1]:.4f}"
        line = (f"{r['group']:>5} {r['seconds']:>9.4f} {spread:>15} {rate:>11.2f} {rate / base:>7.2f}x {mem:>22} "
                f"{r['flops'] / 1e9:>10.2f} {achieved / scale:>17.3f} {achieved / peak_flops:>7.1%}")
        if compiled:
            line += f" {r['first']:>20.2f}"
        print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--generator", default="tiny:64",
                        help="checkpoint path (.pkl / .pt), 'default', or tiny:<resolution> for a random one")
    parser.add_argument("--channel-base", type=int, default=1024, help="tiny generators only")
    parser.add_argument("--channel-max", type=int, default=64, help="tiny generators only")
    parser.add_argument("--w-dim", type=int, default=64, help="tiny generators only")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--dtype", choices=list(DTYPES), default="fp32", help="autocast dtype of render and loss")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--compile", action="store_true", help="torch.compile the synthesis network")
    parser.add_argument("--compile-mode", default="default", help="torch.compile mode (e.g. max-autotune)")
    parser.add_argument("--phase", choices=["wi", "mkn"], default="wi",
                        help="wi: W+ with MSE + VGG perceptual loss; mkn: noise maps with MSE only")
    parser.add_argument("--groups", type=int, nargs="+", default=[1, 2, 4, 8, 16])
    parser.add_argument("--steps", type=int, default=5, help="timed steps per group size (median reported)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps per group size, before the FLOP count")
    parser.add_argument("--vgg-weights", default="random", help="'random', 'imagenet' or a VGG-16 state dict path")
    parser.add_argument("--vgg-resize", type=int, default=None, help="resize renders to this size before VGG-16")
    args = parser.parse_args()
    if args.steps < 1 or args.warmup < 1:
        parser.error("--steps and --warmup must be ≥ 1 (the first step pays one-off costs)")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is available")
    device = torch.device(args.device)
    dtype = DTYPES[args.dtype]

    with generator_source(args) as source:
        module = build_module(source, args, device)
    g = module.generator
    peak_flops, peak_label = matmul_peak(device, dtype)
    generator = args.generator if args.generator.startswith("tiny:") else Path(args.generator).name
    if args.generator.startswith("tiny:"):
        generator += f" (channel_base {args.channel_base}, channel_max {args.channel_max}, w_dim {args.w_dim})"
    print(f"device {device_name(device)} ({device.type}) | dtype {args.dtype} | resolution {g.resolution}² | "
          f"generator {generator} | torch {torch.__version__} | threads {torch.get_num_threads()}")
    print(f"phase {module.schedule.phases[0].name} | VGG-16 {args.vgg_weights}"
          f"{f' at {args.vgg_resize}²' if args.vgg_resize else ''} | channels-last {args.channels_last} | "
          f"compile {args.compile_mode if args.compile else 'off'} | median of {args.steps} steps after "
          f"{args.warmup} warm-up | peak {peak_flops / 1e9:,.{0 if peak_flops >= 1e10 else 2}f} GFLOP/s ({peak_label})")
    if device.type == "cuda":
        print(f"memory allocated for the generator and VGG-16 before any group: "
              f"{torch.cuda.memory_allocated(device) / 2**20:.0f} MiB allocated")

    rows = [measure(module, size, args) for size in args.groups]
    print_table(rows, peak_flops, device, args.compile)
    if device.type == "cpu":
        print("memory: process peak RSS (ru_maxrss) after the group, and its growth during the group; the peak never "
              "falls, so a group that needs less than an earlier one shows +0")
    for r in rows:
        if r["failed"]:
            print(f"warning: group {r['group']}: {r['failed']} image(s) marked failed (non-finite loss or gradient); "
                  "their gradients were zeroed, so this row does not time full steps")
    if args.compile:
        print("1st step: the first warm-up step, which pays tracing and compilation for a new group size")


if __name__ == "__main__":
    main()
