"""What a user sees when things go wrong: several processes, kills, divergence, bad inputs, bad checkpoints, disks."""

from __future__ import annotations

import csv
import errno
import fcntl
import logging
import os
import pickle
import re
import shutil
import signal
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch
from lightning import Trainer
from PIL import Image
from torch.utils.data import DataLoader

import callbacks.writer
import embedding.files
import embedding.fitting.results
import embedding.fitting.resume
import embedding.images
import embedding.latents
from callbacks import EmbeddingMetrics, GroupCheckpoint, ResultWriter
from datamodules.embedding import collate
from embedding.commands import main
from embedding.commands.fit import NothingFitted
from embedding.fitting.resume import ResumeStore
from embedding.fitting.run_folder import RunFolder
from embedding.fitting.run_guard import check_recipe, recipe_settings
from embedding.fitting.sampler import GroupRepeatSampler
from embedding.methods.image2stylegan.module import EmbeddingModule
from embedding.methods.image2stylegan.phases import Phase
from embedding.metrics import append_metrics
from tests.nvidia_pickle import write_nvidia_pickle
from tests.photos import PHOTOS
from tests.robust_run import finish_cli, fit_args, fork_cli, free_port, join, small_fit, start_cli, wait_for

NAMES = ("000002.jpg", "000058.jpg", "000086.jpg")


def copy_photos(folder: Path, names=NAMES) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copy(PHOTOS / name, folder / name)
    return folder


def latents(root: Path) -> dict[str, dict]:
    return {p.stem: torch.load(p, weights_only=True) for p in sorted((root / "latents").glob("*.pt"))}


def metric_rows(root: Path) -> list[tuple[str, str]]:
    with open(root / "metrics.csv", newline="") as f:
        return [(r["image"], r["phase"]) for r in csv.DictReader(f)]


def assert_same_fit(a: dict, b: dict) -> None:
    """Bit for bit: same batch size and thread count give the same summation order in every kernel.

    With different thread counts they differ: rounding differences in gradients near zero change
    the sign of Adam's first steps, and the noise phase's lr of 5 turns that into 3e-4 on average.
    """
    assert torch.equal(a["w_plus"], b["w_plus"])
    for x, y in zip(a["noise"], b["noise"], strict=True):
        assert torch.equal(x, y)


def summary(caplog) -> str:
    """The end-of-run list of inputs that could not be used."""
    return "\n".join(r.getMessage() for r in caplog.records if "could not be used" in r.getMessage())


def run_forked(args: list[str], log: Path) -> tuple[int, str]:
    """``embed <args>`` in a forked process: its exit code and its output."""
    code = join(fork_cli(args, log), timeout=120)
    return code, log.read_text()


class _Hostile:
    """Unpickling it runs ``touch <marker>``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def fit_items(generator_file: Path, phases: list[Phase], items: list[dict], root: Path, checkpoint: bool = False,
              done_steps: dict[int, int] | None = None, **trainer_args) -> EmbeddingModule:
    """Fit ``items`` as one group, built directly rather than read from files."""
    module = EmbeddingModule(generator=str(generator_file), phases=phases, vgg_weights="random")
    sampler = GroupRepeatSampler(len(items), len(items), module.steps_per_group, done_steps=done_steps)
    extra = [GroupCheckpoint(every_seconds=None, every_n_steps=1)] if checkpoint else []
    trainer = Trainer(max_epochs=1, logger=False, enable_progress_bar=False, enable_checkpointing=False,
                      enable_model_summary=False, default_root_dir=root,
                      callbacks=[EmbeddingMetrics(), ResultWriter(), *extra], **trainer_args)
    trainer.fit(module, DataLoader(items, batch_sampler=sampler, collate_fn=collate))
    return module


# ----------------------------------------------------------------------------------------- several processes


def launch_two_processes(args: list[str], cwd: Path, layout: str) -> list[subprocess.Popen]:
    """``embed fit <args>`` as two processes: on one node (Lightning starts the second), or on two "nodes" of one
    process each on this machine, ranked by the environment as a cluster's launcher ranks them."""
    if layout == "one node":
        return [start_cli([*args, "--trainer.devices", "2", "--trainer.strategy", "ddp"], cwd)]
    job = {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port()), "WORLD_SIZE": "2"}
    args = [*args, "--trainer.num_nodes", "2", "--trainer.devices", "1", "--trainer.strategy", "ddp"]
    return [start_cli(args, cwd, {**job, "NODE_RANK": str(rank)}) for rank in (1, 0)]


@pytest.mark.parametrize("layout", ["one node", "two nodes"])
def test_two_processes_give_the_results_of_one(tiny_generator_file, tmp_path, layout):
    photos = copy_photos(tmp_path / "photos")
    ddp, single = tmp_path / "ddp", tmp_path / "single"
    processes = launch_two_processes(fit_args(tiny_generator_file, photos, ddp, "--data.batch_size", "1"), tmp_path,
                                     layout)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each command-line process (cli_env): the same summation order in every kernel
    try:
        small_fit(tiny_generator_file, photos, single, data={"batch_size": 1})
    finally:
        torch.set_num_threads(threads)
        ends = [finish_cli(process) for process in processes]
    for code, stderr in ends:
        assert code == 0, stderr[-3000:]
    one, two = latents(single), latents(ddp)
    assert sorted(two) == sorted(one) == ["000002", "000058", "000086"]
    for stem in one:
        assert_same_fit(one[stem], two[stem])
    assert Counter(metric_rows(ddp)) == Counter((s, p) for s in one for p in ("WI", "Mkn")), "every photo once"
    assert sum(stderr.count("image(s) finished") for _, stderr in ends) == 2, "a summary from each process"


def test_every_node_fails_clearly_when_process_0_refuses_the_folder(tiny_generator_file, tmp_path):
    photos = copy_photos(tmp_path / "photos", NAMES[:2])
    root = tmp_path / "run"
    check_recipe(root, recipe_settings("embedding.methods.image2stylegan.EmbeddingModule", {"seed": 7}, {}, "32-true"))
    (root / "latents").mkdir()
    (root / "latents" / "000002.pt").write_bytes(b"a finished image")
    before = sorted(p.name for p in root.rglob("*"))
    processes = launch_two_processes(fit_args(tiny_generator_file, photos, root), tmp_path, "two nodes")
    (code1, stderr1), (code0, stderr0) = [finish_cli(process, timeout=90) for process in processes]
    assert code0 == code1 == 1, stderr0[-3000:] + stderr1[-3000:]
    assert f"run folder {root} holds results of another recipe" in stderr0
    assert f"process 0 of this job refused the run folder: run folder {root} holds results" in stderr1
    assert sorted(p.name for p in root.rglob("*") if p.name != "run.lock") == before, "nothing written but the lock"


def test_a_process_with_nothing_to_fit_does_not_fail_the_run(tiny_generator_file, tmp_path):
    photos = copy_photos(tmp_path / "photos", NAMES[:2])
    (photos / "bad.png").write_bytes(b"not an image")
    root = tmp_path / "run"
    process = start_cli(fit_args(tiny_generator_file, photos, root, "--data.batch_size", "2", "--trainer.devices",
                                 "2", "--trainer.strategy", "ddp", steps="{WI: 2, Mkn: 1}"), tmp_path)
    code, stderr = finish_cli(process)
    assert code == 0, stderr[-3000:]
    assert sorted(latents(root)) == ["000002", "000058"]
    assert stderr.count(f"  {photos / 'bad.png'}: cannot read image") == 1, "each unreadable input is listed once"


def test_processes_finishing_a_phase_together_write_one_header(tmp_path):
    folder = RunFolder(tmp_path)
    folder.metrics_csv.touch()

    def row(stem: str) -> dict:
        return {"image": stem, "phase": "WI", "step": 1, "psnr": "9.0", "ssim": "0.1", "psnr_masked": "",
                "ssim_masked": ""}

    with open(folder.metrics_csv, "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        writers = [threading.Thread(target=append_metrics, args=(folder, [row(stem)])) for stem in "ab"]
        for writer in writers:
            writer.start()
        time.sleep(0.2)  # both writers have opened the still empty file and wait for the lock
        fcntl.flock(held, fcntl.LOCK_UN)
    for writer in writers:
        writer.join()
    assert sorted(metric_rows(tmp_path)) == [("a", "WI"), ("b", "WI")]


# ------------------------------------------------------------------------------------------ kill and resume


def test_killed_runs_resume_to_the_uninterrupted_result(tiny_generator_file, tmp_path):
    photos = copy_photos(tmp_path / "photos")
    extra = ("--data.batch_size", "2", "--checkpoint.every_n_steps", "5")
    steps = "{WI: 40, Mkn: 20}"
    reference = tmp_path / "reference"
    small_fit(tiny_generator_file, photos, reference, {"WI": 40, "Mkn": 20}, data={"batch_size": 2},
              checkpoint={"every_n_steps": 5})
    root = tmp_path / "run"
    args = fit_args(tiny_generator_file, photos, root, *extra, steps=steps)
    log = tmp_path / "log.txt"
    group0 = [root / "latents" / "000002.pt", root / "latents" / "000058.pt"]
    kill_points = [
        lambda: True,  # right after the start
        lambda: any((root / "resume").glob("*.pt")),  # in the middle of the first group
        lambda: all(p.exists() for p in group0),  # once the first group has finished
        lambda: (root / "images" / "000086.WI.png").exists(),  # in the last group's second phase
    ]
    deadline = time.monotonic() + 50
    for when in kill_points:
        run = fork_cli(args, log)
        killed = wait_for(when, run, timeout=deadline - time.monotonic())
        os.kill(run.pid, signal.SIGKILL)
        run.join()
        assert killed, log.read_text()[-3000:]
    assert join(fork_cli(args, log), timeout=deadline - time.monotonic()) == 0, log.read_text()[-3000:]

    assert not list(root.rglob("*.tmp")), "a killed run leaves no temporary file behind"
    result, expected = latents(root), latents(reference)
    assert sorted(result) == sorted(expected) == ["000002", "000058", "000086"]
    for stem in expected:
        assert torch.allclose(result[stem]["w_plus"], expected[stem]["w_plus"], atol=1e-5), stem
        with np.load(root / "latents" / f"{stem}.npz") as npz:
            assert np.allclose(npz["w"][0], result[stem]["w_plus"].numpy())
    for png in (root / "images").glob("*.png"):
        Image.open(png).load()
    rows = metric_rows(root)
    assert Counter(rows) == Counter((s, p) for s in expected for p in ("WI", "Mkn")), "every row exactly once"
    assert not list((root / "resume").glob("*.pt")), "checkpoints of finished groups are removed"


def patch_result_writes(monkeypatch: pytest.MonkeyPatch, write) -> None:
    """Every file of an image's results (renders, latents, weight differences) written through ``write``."""
    for module in (embedding.images, embedding.fitting.results, embedding.latents, callbacks.writer):
        monkeypatch.setattr(module, "atomic_write", write)


def die_between_two_images() -> None:
    """Make this process die after the first image of a group is written, before the second."""
    write_result = callbacks.writer.write_result

    def write_or_die(folder, stem, image, result):
        if stem == "000058":
            os.kill(os.getpid(), signal.SIGKILL)
        write_result(folder, stem, image, result)

    callbacks.writer.write_result = write_or_die


def die_inside_a_checkpoint_write() -> None:
    """Make this process die half-way through writing its first mid-group checkpoint."""
    write = embedding.fitting.resume.atomic_write

    def write_half_and_die(path, how):
        def half(f):
            f.write(b"half a checkpoint")
            f.flush()
            os.kill(os.getpid(), signal.SIGKILL)

        write(path, half)

    embedding.fitting.resume.atomic_write = write_half_and_die


@pytest.mark.parametrize("die", [die_between_two_images, die_inside_a_checkpoint_write])
def test_a_run_dead_at_an_awkward_moment_resumes_cleanly(die, tiny_generator_file, tmp_path):
    photos = copy_photos(tmp_path / "photos")
    root = tmp_path / "run"
    args = fit_args(tiny_generator_file, photos, root, "--data.batch_size", "2", "--checkpoint.every_n_steps", "2")
    assert join(fork_cli(args, tmp_path / "log.txt", prepare=die), timeout=60) == -signal.SIGKILL
    code, output = run_forked(args, tmp_path / "log.txt")
    assert code == 0, output[-3000:]
    assert sorted(latents(root)) == ["000002", "000058", "000086"]
    assert Counter(metric_rows(root)) == Counter((s, p) for s in latents(root) for p in ("WI", "Mkn"))
    assert not list(root.rglob("*.tmp"))
    assert not list((root / "resume").glob("*.pt"))


@pytest.mark.parametrize("y", ["image", "render"])
def test_resuming_in_the_middle_of_a_phase_gives_the_uninterrupted_result(y, tiny_generator, tiny_generator_file,
                                                                          tmp_path):
    images = tiny_generator.synthesis(tiny_generator.w_avg.expand(1, tiny_generator.num_ws, -1),
                                      noise_mode="const").detach().clamp(-1, 1)
    mask = torch.ones(1, 32, 32)
    mask[:, :, 16:] = 0
    items = [{"stem": "img0", "index": 0, "image": images[0].flip(-1), "mask": mask}]
    phases = [Phase("WI", steps=3, lr=0.05, mse1=1e-5),
              Phase("Mkn", steps=6, optimize="noise", lr=0.5, mse1=1e-5, mse2=1e-5, mask_mse="mask", y=y)]
    whole = fit_items(tiny_generator_file, phases, items, tmp_path / "whole")
    root = tmp_path / "resumed"
    fit_items(tiny_generator_file, phases, items, root, checkpoint=True, limit_train_batches=6)
    assert ResumeStore(root).read(["img0"])["group_step"] == 6
    resumed = fit_items(tiny_generator_file, phases, items, root, checkpoint=True, done_steps={0: 6})
    assert torch.allclose(resumed.w_plus, whole.w_plus, atol=1e-6)
    for a, b in zip(resumed.noise, whole.noise, strict=True):
        assert torch.allclose(a, b, atol=1e-6)


# ----------------------------------------------------------------------------------------------- divergence


def test_a_diverging_image_fails_alone(tiny_generator, tiny_generator_file, tmp_path):
    with torch.no_grad():
        w = tiny_generator.w_avg + 0.5 * torch.randn(2, tiny_generator.num_ws, tiny_generator.w_dim,
                                                     generator=torch.Generator().manual_seed(3))
        images = tiny_generator.synthesis(w, noise_mode="const").clamp(-1, 1)
    broken = images.clone()
    broken[1, :, 4:8, 4:8] = float("nan")
    phases = [Phase("WI", steps=4, lr=0.05, mse1=1e-5, percept=1e-5),
              Phase("Mkn", steps=2, optimize="noise", lr=0.5, mse1=1e-5)]

    def run(targets: torch.Tensor, name: str) -> EmbeddingModule:
        items = [{"stem": f"img{i}", "index": i, "image": t, "mask": torch.ones(1, 32, 32)}
                 for i, t in enumerate(targets)]
        return fit_items(tiny_generator_file, phases, items, tmp_path / name)

    module = run(broken, "broken")
    assert module.failures == [("img1", "the loss is not finite in phase WI at step 0")]
    assert sorted(latents(tmp_path / "broken")) == ["img0"]
    assert {image for image, _ in metric_rows(tmp_path / "broken")} == {"img0"}
    run(images, "healthy")
    run(images[:1], "alone")
    result = latents(tmp_path / "broken")["img0"]
    healthy, alone = latents(tmp_path / "healthy")["img0"], latents(tmp_path / "alone")["img0"]
    for a, b in zip([result["w_plus"], *result["noise"]], [healthy["w_plus"], *healthy["noise"]], strict=True):
        assert torch.allclose(a, b, atol=1e-6), "the diverging image must not touch its neighbour's fit"
    # Alone, the convolutions run with another batch size; Adam's first steps magnify that rounding.
    assert torch.allclose(result["w_plus"], alone["w_plus"], atol=1e-3)

def test_a_failure_before_a_kill_is_still_reported_after_the_resume(tiny_generator, tiny_generator_file, tmp_path):
    images = tiny_generator.synthesis(tiny_generator.w_avg.expand(2, tiny_generator.num_ws, -1),
                                      noise_mode="const").detach().clamp(-1, 1)
    images[1, :, :4, :4] = float("nan")
    items = [{"stem": f"img{i}", "index": i, "image": images[i], "mask": torch.ones(1, 32, 32)} for i in range(2)]
    phases = [Phase("WI", steps=3, lr=0.05, mse1=1e-5), Phase("Mkn", steps=2, optimize="noise", lr=0.5, mse1=1e-5)]
    root = tmp_path / "run"
    fit_items(tiny_generator_file, phases, items, root, checkpoint=True, limit_train_batches=2)
    resumed = fit_items(tiny_generator_file, phases, items, root, checkpoint=True, done_steps={0: 2})
    assert resumed.failures == [("img1", "the loss is not finite in phase WI at step 0")]
    assert sorted(latents(root)) == ["img0"]


# ---------------------------------------------------------------------------------------------- bad inputs


def test_bad_inputs_are_named_and_the_rest_finish(tiny_generator_file, tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(PIL.Image, "MAX_IMAGE_PIXELS", 100_000)
    photos = copy_photos(tmp_path / "photos", NAMES[:2])
    photo = Image.open(PHOTOS / NAMES[0]).convert("RGB")
    photo.convert("CMYK").save(photos / "cmyk.jpg")
    photo.convert("P").save(photos / "palette.png")
    Image.fromarray(np.asarray(photo.convert("L"), dtype=np.uint16) * 257).save(photos / "sixteen.png")
    photo.save(photos / "wrong_mask.jpg")
    photo.save(photos / "empty_mask.jpg")
    (photos / "zero.jpg").write_bytes(b"")
    data = (PHOTOS / NAMES[0]).read_bytes()
    (photos / "truncated.jpg").write_bytes(data[: len(data) // 2])
    (photos / "noise.png").write_bytes(np.random.default_rng(0).bytes(4096))
    Image.new("RGB", (500, 500), (90, 120, 200)).save(photos / "huge.png")

    masks = tmp_path / "masks"
    masks.mkdir()
    white = Image.new("L", photo.size, 255)
    for stem in ("000058", "cmyk", "palette", "sixteen"):
        white.save(masks / f"{stem}.png")
    Image.new("RGBA", photo.size, (255, 255, 255, 255)).save(masks / "000002.png")
    Image.new("L", (20, 20), 255).save(masks / "wrong_mask.png")
    Image.new("L", photo.size, 0).save(masks / "empty_mask.png")

    root = tmp_path / "run"
    caplog.set_level(logging.INFO)
    small_fit(tiny_generator_file, photos, root, {"WI": 2, "Mkn": 1}, data={"masks_dir": str(masks)})
    assert sorted(latents(root)) == ["000002", "000058", "cmyk", "palette", "sixteen"]
    listed = summary(caplog)
    for name, reason in [("zero.jpg", "cannot identify"), ("truncated.jpg", "truncated"),
                         ("noise.png", "cannot identify"), ("huge.png", "too many pixels"),
                         ("wrong_mask.jpg", "wrong_mask.png: mask is 20x20 but its image is 178x218"),
                         ("empty_mask.jpg", "empty_mask.png: mask selects no pixel")]:
        assert re.search(rf"{re.escape(str(photos / name))}: .*{re.escape(reason)}", listed), name


# --------------------------------------------------------------------------------------- bad checkpoints


@pytest.mark.parametrize("kind", ["truncated", "hostile", "stylegan3"])
def test_unusable_generator_exits_1_naming_the_file(kind, tiny_generator, tiny_discriminator, tiny_generator_file,
                                                    tmp_path):
    marker = tmp_path / "pwned"
    if kind == "truncated":
        generator = tiny_generator_file
        generator.write_bytes(generator.read_bytes()[:-1000])
    elif kind == "hostile":
        generator = tmp_path / "hostile.pkl"
        generator.write_bytes(pickle.dumps({"G_ema": _Hostile(marker)}))
    else:
        generator = write_nvidia_pickle(tmp_path / "stylegan3.pkl", tiny_generator, tiny_discriminator,
                                        variant="stylegan3-synthesis")
    photos = copy_photos(tmp_path / "photos", NAMES[:1])
    code, output = run_forked(fit_args(generator, photos, tmp_path / "run"), tmp_path / "log.txt")
    assert code == 1, output[-3000:]
    assert f"ERROR embedding: {generator}: " in output
    assert "Traceback" not in output
    assert not marker.exists(), "a checkpoint never runs code"


# ----------------------------------------------------------------------------------------------- run folder


@pytest.mark.parametrize("how", ["read-only", "under a file"])
def test_unwritable_run_folder_exits_1_naming_it(how, tiny_generator_file, tmp_path, monkeypatch, caplog):
    if how == "read-only":
        root = tmp_path / "run"
        root.mkdir()
        root.chmod(0o555)
        if os.access(root, os.W_OK):
            pytest.skip("this user can write into a read-only folder (root)")
    else:
        (tmp_path / "file").write_text("")
        root = tmp_path / "file" / "run"
    photos = copy_photos(tmp_path / "photos", NAMES[:1])
    monkeypatch.setattr("sys.argv", ["embed", *fit_args(tiny_generator_file, photos, root)])
    with pytest.raises(SystemExit) as exit_:
        main()
    assert exit_.value.code == 1
    assert str(root) in "\n".join(r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR)
    assert not (root / "latents").exists() or not any((root / "latents").iterdir())


def test_full_disk_fails_only_the_image_being_written(tiny_generator_file, tmp_path, monkeypatch, caplog):
    write = embedding.files.atomic_write

    def full_for_one_image(path, how):
        if path.name.startswith("000058"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        write(path, how)

    patch_result_writes(monkeypatch, full_for_one_image)
    photos = copy_photos(tmp_path / "photos")
    root = tmp_path / "run"
    small_fit(tiny_generator_file, photos, root, {"WI": 2, "Mkn": 1}, data={"batch_size": 2})
    assert sorted(latents(root)) == ["000002", "000086"]
    assert re.search(r"000058: could not write its results: \[Errno 28\] No space left on device", summary(caplog))


# ---------------------------------------------------------------------------------------- nothing done


def test_no_readable_input_exits_1_listing_them(tiny_generator_file, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "noise.png").write_bytes(np.random.default_rng(0).bytes(2048))
    (folder / "half.jpg").write_bytes((PHOTOS / NAMES[0]).read_bytes()[:2000])
    code, output = run_forked(fit_args(tiny_generator_file, folder, tmp_path / "run"), tmp_path / "log.txt")
    assert code == 1, output[-3000:]
    assert "Traceback" not in output
    for name in ("empty.jpg", "noise.png", "half.jpg"):
        assert str(folder / name) in output


def test_a_lone_photo_with_a_bad_mask_is_named_once_for_its_mask(tiny_generator_file, tmp_path):
    photos = copy_photos(tmp_path / "photos", NAMES[:1])
    masks = tmp_path / "masks"
    masks.mkdir()
    Image.new("L", (20, 20), 255).save(masks / f"{Path(NAMES[0]).stem}.png")
    args = fit_args(tiny_generator_file, photos, tmp_path / "run", "--data.masks_dir", str(masks),
                    "--data.solutions", "3")
    code, output = run_forked(args, tmp_path / "log.txt")
    assert code == 1 and "no input could be used" in output and "no readable image" not in output, output[-3000:]
    assert output.count(f"  {photos / NAMES[0]}: mask for ") == 1  # listed once, not once per solution


def test_a_schedule_without_steps_names_the_setting(tiny_generator_file, tmp_path):
    photos = copy_photos(tmp_path / "photos", NAMES[:1])
    code, output = run_forked(fit_args(tiny_generator_file, photos, tmp_path / "run", steps="{WI: 0, Mkn: 0}"),
                              tmp_path / "log.txt")
    assert code == 1 and "every phase has 0 steps (WI: 0, Mkn: 0)" in output and "model.steps" in output


def test_nothing_written_is_an_error_naming_every_image(tiny_generator_file, tmp_path, monkeypatch, caplog):
    write = embedding.files.atomic_write

    def full(path, how):
        if not path.name.startswith("."):  # the run folder's own write test still passes
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        write(path, how)

    patch_result_writes(monkeypatch, full)
    photos = copy_photos(tmp_path / "photos", NAMES[:2])
    with pytest.raises(NothingFitted, match="nothing could be fitted"):
        small_fit(tiny_generator_file, photos, tmp_path / "run", {"WI": 2, "Mkn": 1})
    assert "000002: could not write" in summary(caplog) and "000058: could not write" in summary(caplog)
