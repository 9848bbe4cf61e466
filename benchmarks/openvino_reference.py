"""MobileStyleGAN through OpenVINO's own runtime, the reference the PyTorch port is checked and timed against.

Imported by the benchmarks for :func:`openvino_python` (a scratch virtual environment with
``openvino``, made once) and :func:`run_reference`. Run by that environment's Python as

    python openvino_reference.py render IR_FOLDER INPUTS.npz OUTPUTS.npz
    python openvino_reference.py time IR_FOLDER OUTPUTS.npz --repeats 5 [--threads 1]

``render`` maps ``z`` and renders ``w`` (one style fed to every layer, the network as exported)
and ``ws`` (W+ ``[N, 23, 512]``, a row per modulation layer, through a copy of the graph whose
23 style inputs are separate parameters). ``time`` times the synthesis network's forward. Both
run at float32 (``INFERENCE_PRECISION_HINT``; OpenVINO would pick bf16 on CPUs that have it).
Only numpy and openvino are imported here, never torch or the project.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

F32 = {"INFERENCE_PRECISION_HINT": "f32"}


def openvino_python(venv: Path) -> Path:
    """The Python of a virtual environment with ``openvino`` and ``numpy``, created at ``venv`` if needed."""
    python = venv / "bin" / "python"
    if not python.is_file():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    probe = subprocess.run([str(python), "-c", "import openvino, numpy"], capture_output=True)
    if probe.returncode != 0:
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", "openvino", "numpy"], check=True)
    return python


def run_reference(python: Path, *args: str) -> None:
    """Run this file under ``python`` (the scratch environment) with ``args``."""
    subprocess.run([str(python), __file__, *map(str, args)], check=True)


def row_of(const_name: str) -> int | None:
    """The W+ row of a modulation weight (``m.layers.3.conv1.conv.modulation.weight`` → 11), else None."""
    parts = const_name.split(".")
    if parts[-2:] != ["modulation", "weight"]:
        return None
    if parts[1] == "conv1":
        return 0
    block, layer = int(parts[2]), parts[3]
    return 22 if layer == "to_img" else 3 * block + {"up": 1, "conv1": 2, "conv2": 3}[layer]


def distinct_rows(model):
    """A copy of the synthesis graph whose 23 modulations each read their own style parameter, in row order."""
    import openvino as ov
    import openvino.opset13 as ops

    params = {}
    for op in model.get_ordered_ops():
        if op.get_type_name() != "MatMul":
            continue
        weight = op.input_value(1).get_node()
        row = row_of(weight.get_friendly_name())
        if row is None:
            continue
        params[row] = ops.parameter([1, 512], ov.Type.f32, name=f"row{row}")
        op.input(0).replace_source_output(params[row].output(0))
    if sorted(params) != list(range(23)):
        raise SystemExit(f"expected modulations for rows 0..22, found {sorted(params)}")
    (style,) = model.get_parameters()
    for target in list(style.output(0).get_target_inputs()):  # the batch size of the constant input
        target.replace_source_output(params[0].output(0))
    return ov.Model(model.get_results(), [params[r] for r in range(23)], "distinct_rows")


def render(folder: Path, inputs: Path, outputs: Path) -> None:
    import numpy as np
    import openvino as ov

    core = ov.Core()
    data = np.load(inputs)
    mapping = core.compile_model(core.read_model(folder / "MappingNetwork.xml"), "CPU", F32)
    synthesis = core.compile_model(core.read_model(folder / "SynthesisNetwork.xml"), "CPU", F32)
    rows = core.compile_model(distinct_rows(core.read_model(folder / "SynthesisNetwork.xml")), "CPU", F32)
    w = np.concatenate([mapping(z[None])[0] for z in data["z"]])
    images = np.concatenate([synthesis(s[None])[0] for s in w])
    row_images = np.concatenate([rows([r[None] for r in ws])[0] for ws in data["ws"]])
    np.savez(outputs, w=w, images=images, row_images=row_images)


def time_forward(folder: Path, outputs: Path, repeats: int, threads: int | None) -> None:
    import numpy as np
    import openvino as ov

    core = ov.Core()
    config = F32 if threads is None else {**F32, "INFERENCE_NUM_THREADS": threads}
    synthesis = core.compile_model(core.read_model(folder / "SynthesisNetwork.xml"), "CPU", config)
    style = np.random.RandomState(0).randn(1, 512).astype(np.float32)
    synthesis(style)
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        synthesis(style)
        seconds.append(time.perf_counter() - start)
    threads = int(synthesis.get_property("INFERENCE_NUM_THREADS"))
    np.savez(outputs, seconds=np.array(seconds), threads=threads)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["render", "time"])
    parser.add_argument("folder", type=Path, help="the folder of the four IR files")
    parser.add_argument("files", type=Path, nargs="+", help="render: INPUTS OUTPUTS; time: OUTPUTS")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, help="inference threads (default: OpenVINO's choice)")
    args = parser.parse_args()
    if args.command == "render":
        render(args.folder, *args.files)
    else:
        time_forward(args.folder, args.files[0], args.repeats, args.threads)


if __name__ == "__main__":
    main()
