"""Speed of the MobileStyleGAN port against OpenVINO's runtime on the same CPU, and its memory per 1024² image.

Rounds alternate (so a shared machine's load falls on all alike): OpenVINO's forward (float32,
its own process in the scratch environment of :mod:`openvino_reference`), the port's forward,
and the port's forward + backward with respect to W+ (the W+ phase's step, const noise). The
port runs in child processes, once with the C library's default allocator settings and once
with ``MALLOC_MMAP_THRESHOLD_``/``MALLOC_TRIM_THRESHOLD_`` raised, so that glibc keeps the large
activation buffers in its heap instead of mapping fresh pages for each. Medians are printed with
the ratio to OpenVINO, the peak memory of one image, and the load averages before and after.

    python benchmarks/mobilestylegan_speed.py --venv runs/openvino-venv --rounds 3 [--threads 1]

``--threads`` gives both runtimes that many threads (default: each its own choice, all cores);
on a machine other jobs share, one thread each compares the work done more fairly.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from openvino_reference import openvino_python, run_reference

HEAP = {"MALLOC_MMAP_THRESHOLD_": str(1 << 30), "MALLOC_TRIM_THRESHOLD_": str(1 << 31)}


def rss_kib(field: str) -> int:
    """``VmRSS`` (now) or ``VmHWM`` (peak since the last reset) of this process, in KiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def measure_port(repeats: int, compile_: bool, threads: int | None) -> dict:
    """In this (child) process: seconds of ``repeats`` forwards and steps, and peak memory (MiB) of each."""
    import torch

    from embedding.checkpoints import load_generator, mobilestylegan

    if threads:
        torch.set_num_threads(threads)
    g = load_generator(mobilestylegan.NAME)
    synthesis = torch.compile(g.synthesis, dynamic=False) if compile_ else g.synthesis
    ws = g.w_avg.expand(1, g.num_ws, -1).clone()
    noise = [n.clone() for n in g.synthesis.const_noise()]

    def forward() -> None:
        with torch.no_grad():
            synthesis(ws, noise=noise)

    def step() -> None:
        w = ws.clone().requires_grad_(True)
        synthesis(w, noise=noise).square().mean().backward()

    out = {}
    for name, run in (("forward", forward), ("step", step)):
        Path("/proc/self/clear_refs").write_text("5")            # reset the peak
        before = rss_kib("VmRSS")
        run()                                                    # warm-up (and compilation)
        out[f"{name}_mib"] = (rss_kib("VmHWM") - before) / 1024
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            run()
            times.append(time.perf_counter() - start)
        out[name] = times
    return out


def port_child(repeats: int, env: dict, compile_: bool, threads: int | None) -> dict:
    """:func:`measure_port` in a fresh process with ``env`` added (allocator settings apply from its start)."""
    args = [sys.executable, __file__, "--child", str(repeats)] + (["--compile"] if compile_ else [])
    args += ["--threads", str(threads)] if threads else []
    done = subprocess.run(args, env={**os.environ, **env}, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def openvino_times(python: Path, folder: Path, repeats: int, threads: int | None) -> list[float]:
    import numpy as np

    with tempfile.TemporaryDirectory() as tmp:
        extra = ["--threads", str(threads)] if threads else []
        run_reference(python, "time", folder, Path(tmp) / "t.npz", "--repeats", str(repeats), *extra)
        with np.load(Path(tmp) / "t.npz") as data:
            return data["seconds"].tolist()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--venv", type=Path, default=Path("runs/openvino-venv"),
                        help="scratch virtual environment for OpenVINO (made if missing)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each kind per round")
    parser.add_argument("--compile", action="store_true", help="also time the port under torch.compile")
    parser.add_argument("--threads", type=int, help="threads of both runtimes (default: all cores)")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure_port(args.child, args.compile, args.threads)))
        return
    from embedding.checkpoints import mobilestylegan

    python = openvino_python(args.venv)
    variants = {"port": ({}, False), "port, glibc heap": (HEAP, False)}
    if args.compile:
        variants["port, torch.compile, glibc heap"] = (HEAP, True)
    load_before = os.getloadavg()
    ov: list[float] = []
    results: dict[str, dict] = {name: {} for name in variants}
    for _ in range(args.rounds):
        ov += openvino_times(python, mobilestylegan.folder(), args.repeats, args.threads)
        for name, (env, compile_) in variants.items():
            for key, value in port_child(args.repeats, env, compile_, args.threads).items():
                results[name].setdefault(key, []).extend(value if isinstance(value, list) else [value])
    load_after = os.getloadavg()
    ov_median = statistics.median(ov)
    threads = f"{args.threads} thread(s) each" if args.threads else f"{os.cpu_count()} CPUs"
    print(f"1024² image, batch 1, {threads}; load average {load_before[0]:.2f} before, "
          f"{load_after[0]:.2f} after; medians of {args.rounds} × {args.repeats} runs")
    print(f"{'':32} {'forward s':>10} {'× OpenVINO':>10} {'fwd+bwd W+ s':>13}")
    print(f"{'OpenVINO (float32)':32} {ov_median:10.3f} {1:10.2f}")
    for name, r in results.items():
        forward, step = statistics.median(r["forward"]), statistics.median(r["step"])
        print(f"{name:32} {forward:10.3f} {forward / ov_median:10.2f} {step:13.3f}")
    memory = results["port"]
    print(f"peak memory of one image above the loaded network (default allocator): forward "
          f"{max(memory['forward_mib']):.0f} MiB, forward + backward {max(memory['step_mib']):.0f} MiB")


if __name__ == "__main__":
    main()
