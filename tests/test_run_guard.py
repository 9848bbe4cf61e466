"""Runs that tell the truth: one recipe per run folder, one run at a time, signals end a run with a checkpoint."""

from __future__ import annotations

import csv
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from embedding.commands import main
from embedding.commands.fit import EmbedCLI, Run
from embedding.commands.train import TrainCLI
from embedding.fitting.distributed import is_first_process
from embedding.fitting.run_guard import RunFolderError, RunGuard, RunLock, check_recipe, recipe_settings
from tests.photos import photos
from tests.robust_run import cli_env, finish_cli, fit_args, small_fit, start_cli

METHOD = "embedding.methods.image2stylegan.EmbeddingModule"


def fit(generator: Path, images: Path, root: Path, steps: dict | None = None, **sections: dict) -> Run:
    return small_fit(generator, images, root, steps or {"WI": 3, "Mkn": 2}, **sections)


@pytest.fixture
def images(tmp_path: Path) -> Path:
    folder = tmp_path / "photos"
    folder.mkdir()
    for p in photos(2):
        (folder / p.name).write_bytes(p.read_bytes())
    return folder


def test_a_changed_recipe_is_refused_before_anything_is_written(tiny_generator_file, images, tmp_path):
    root = tmp_path / "run"
    fit(tiny_generator_file, images, root)
    config = (root / "config.yaml").read_text()
    with pytest.raises(RunFolderError, match=r"holds results of another recipe \(changed: model.seed\)"):
        fit(tiny_generator_file, images, root, model={"seed": 1})
    with pytest.raises(RunFolderError, match=r"changed: model.steps.Mkn, model.steps.WI"):
        fit(tiny_generator_file, images, root, {"WI": 4, "Mkn": 1})
    assert (root / "config.yaml").read_text() == config, "the recipe of the results stays"


def test_a_refused_run_exits_1_with_the_message(tiny_generator_file, images, tmp_path, caplog):
    root = tmp_path / "run"
    fit(tiny_generator_file, images, root)
    with pytest.raises(SystemExit) as stop:
        main(fit_args(tiny_generator_file, images, root, "--data.crop", "[0, 20, 178, 198]"))
    assert stop.value.code == 1
    assert "changed: data.crop" in caplog.text and "delete" in caplog.text


def test_more_images_or_another_batch_size_continue_the_folder(tiny_generator_file, images, tmp_path, caplog):
    root = tmp_path / "run"
    fit(tiny_generator_file, images / "000002.jpg", root)
    with caplog.at_level(logging.INFO):
        run = fit(tiny_generator_file, images, root, data={"batch_size": 2})
    assert "holds results of this recipe" in caplog.text
    assert run.skipped == ["000002"] and run.finished == ["000058"]
    assert sorted(p.stem for p in (root / "latents").glob("*.pt")) == ["000002", "000058"]


def test_recipe_record_names_nested_changes(tmp_path):
    settings = recipe_settings(METHOD, {"phases": [{"lr": 0.01}]}, {"images": "a", "crop": None, "batch_size": 4},
                               "32")
    assert "images" not in settings["data"] and "batch_size" not in settings["data"]
    assert check_recipe(tmp_path, settings) is False
    assert check_recipe(tmp_path, recipe_settings(METHOD, {"phases": [{"lr": 0.01}]}, {"images": "b", "crop": None},
                                                  "32"))
    (tmp_path / "latents").mkdir()
    (tmp_path / "latents" / "a.pt").write_bytes(b"a finished image")
    with pytest.raises(RunFolderError, match=r"changed: model.phases"):
        check_recipe(tmp_path, recipe_settings(METHOD, {"phases": [{"lr": 0.1}]}, {"crop": None}, "32"))
    with pytest.raises(RunFolderError, match=r"changed: method"):
        check_recipe(tmp_path, recipe_settings("embedding.methods.dgp.DGPModule", {"phases": [{"lr": 0.01}]},
                                               {"crop": None}, "32"))


def test_a_folder_without_results_takes_another_recipe_until_it_has_some(tmp_path, caplog):
    first, second = (recipe_settings(METHOD, {"seed": seed}, {"crop": None}, "32") for seed in (0, 1))
    check_recipe(tmp_path, first)
    with caplog.at_level(logging.WARNING):
        assert check_recipe(tmp_path, second) is False
    assert "holds no results yet: its recipe.json, of another recipe (changed: model.seed), is replaced" in caplog.text
    assert check_recipe(tmp_path, second), "recorded"
    (tmp_path / "resume").mkdir()
    (tmp_path / "resume" / "0123.pt").write_bytes(b"a group's checkpoint")
    with pytest.raises(RunFolderError, match=r"holds results of another recipe \(changed: model.seed\)"):
        check_recipe(tmp_path, first)


def test_a_first_try_that_failed_at_start_up_does_not_lock_its_folder(tiny_generator_file, images, tmp_path, caplog):
    root = tmp_path / "run"
    missing = tmp_path / "missing.pt"
    with pytest.raises(SystemExit) as stop:
        main(fit_args(tiny_generator_file, images, root, "--model.perceptual", "discriminator",
                      "--model.discriminator", str(missing)))
    assert stop.value.code == 1 and str(missing) in caplog.text
    fit(tiny_generator_file, images, root)  # the setting fixed, in the same folder
    assert sorted(p.stem for p in (root / "latents").glob("*.pt")) == ["000002", "000058"]


@pytest.mark.parametrize(("launcher", "first"), [
    ({}, True),
    ({"LOCAL_RANK": "1"}, False),  # a process Lightning's launcher started beside the first
    ({"NODE_RANK": "1"}, False),  # the first process of the second node, as Lightning reads nodes
    ({"TORCHELASTIC_RUN_ID": "job", "RANK": "0", "LOCAL_RANK": "0", "GROUP_RANK": "0"}, True),
    ({"TORCHELASTIC_RUN_ID": "job", "RANK": "1", "LOCAL_RANK": "0", "GROUP_RANK": "1"}, False),  # torchrun
    ({"SLURM_NTASKS": "2", "SLURM_NTASKS_PER_NODE": "1", "SLURM_PROCID": "0", "SLURM_LOCALID": "0",
      "SLURM_JOB_NAME": "fit"}, True),
    ({"SLURM_NTASKS": "2", "SLURM_NTASKS_PER_NODE": "1", "SLURM_PROCID": "1", "SLURM_LOCALID": "0",
      "SLURM_JOB_NAME": "fit"}, False),  # srun
    # torchrun inside a SLURM allocation: torchrun's ranks count, as Lightning reads them
    ({"SLURM_NTASKS": "1", "SLURM_PROCID": "0", "SLURM_JOB_NAME": "fit", "TORCHELASTIC_RUN_ID": "job", "RANK": "3",
      "LOCAL_RANK": "1", "GROUP_RANK": "1"}, False),
    # an interactive SLURM shell is no SLURM launch: Lightning's own launcher started this process
    ({"SLURM_NTASKS": "1", "SLURM_PROCID": "0", "SLURM_JOB_NAME": "bash", "LOCAL_RANK": "1"}, False),
])
def test_the_first_process_of_a_job_is_read_from_its_launcher(monkeypatch, launcher, first):
    for name in list(os.environ):
        if name.startswith(("SLURM_", "TORCHELASTIC_", "LSB_", "JSM_", "OMPI_", "PMI_")) or name in (
                "RANK", "LOCAL_RANK", "NODE_RANK", "GROUP_RANK", "WORLD_SIZE"):
            monkeypatch.delenv(name)
    for name, value in launcher.items():
        monkeypatch.setenv(name, value)
    assert is_first_process() is first


class ThreadJob:
    """The collectives ``RunGuard.take_in_job`` calls, between threads standing for a job's processes."""

    def __init__(self, size: int) -> None:
        self.barrier = threading.Barrier(size, timeout=10)
        self.sent: list = [None] * size

    def process(self, rank: int) -> SimpleNamespace:
        def broadcast(obj, src=0):
            self.sent[rank] = obj
            self.barrier.wait()
            value = self.sent[src]
            self.barrier.wait()
            return value

        def reduce_boolean_decision(decision, all=True):
            decisions = [broadcast(decision, src) for src in range(len(self.sent))]
            return min(decisions) if all else max(decisions)

        return SimpleNamespace(global_rank=rank, broadcast=broadcast, reduce_boolean_decision=reduce_boolean_decision)


def take_in_threads(guards: list[RunGuard]) -> list[BaseException | None]:
    """Every guard's ``take_in_job`` at once, one thread each: what each raised."""
    job, raised = ThreadJob(len(guards)), [None] * len(guards)

    def take(rank: int) -> None:
        try:
            guards[rank].take_in_job(job.process(rank))
        except BaseException as e:
            raised[rank] = e

    threads = [threading.Thread(target=take, args=(rank,)) for rank in range(len(guards))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return raised


def test_process_0_takes_the_folder_for_the_job_and_a_refusal_reaches_every_process(tmp_path):
    root = tmp_path / "run"
    settings = recipe_settings(METHOD, {"seed": 0}, {"crop": None}, "32")
    guards = [RunGuard(root, settings) for _ in range(3)]
    try:
        assert take_in_threads(guards) == [None, None, None]
        assert (root / "recipe.json").is_file()
        # the job holds the folder: another job's process 0 is refused, and its other processes say so
        others = [RunGuard(root, settings) for _ in range(2)]
        zero, one = take_in_threads(others)
        assert isinstance(zero, RunFolderError) and f"is in use by process {os.getpid()}" in str(zero)
        assert isinstance(one, RunFolderError) and str(one) == f"process 0 of this job refused the run folder: {zero}"
    finally:
        guards[0].release()


def test_a_folder_process_0_cannot_use_stops_every_process(tmp_path):
    root = tmp_path / "run"
    root.write_text("a file where the run folder should be")
    settings = recipe_settings(METHOD, {"seed": 0}, {"crop": None}, "32")
    zero, one = take_in_threads([RunGuard(root, settings), RunGuard(root, settings)])
    assert isinstance(zero, OSError)
    assert isinstance(one, RunFolderError) and str(one) == f"process 0 of this job refused the run folder: {zero}"


def test_a_process_given_another_recipe_fails_the_whole_job(tmp_path, caplog):
    root = tmp_path / "run"
    guards = [RunGuard(root, recipe_settings(METHOD, {"seed": seed}, {"crop": None}, "32")) for seed in (0, 0, 1)]
    raised = take_in_threads(guards)
    guards[0].release()
    assert all(isinstance(e, RunFolderError) and "were given different recipes" in str(e) for e in raised)
    assert "process 2 was given another recipe than process 0 (changed: model.seed)" in caplog.text


def test_a_second_run_in_the_same_folder_is_refused(tiny_generator_file, images, tmp_path):
    root = tmp_path / "run"
    held = RunLock(root)
    held.acquire()
    try:
        with pytest.raises(RunFolderError, match=rf"in use by process {os.getpid()} on "):
            fit(tiny_generator_file, images, root)
    finally:
        held.release()
    assert not (root / "run.lock").exists(), "a lock released leaves no file"
    # a killed run's lock file stays (here with a dead process's line) but holds no lock: the next run takes it
    (root / "run.lock").write_text("process 999999 on elsewhere\n")
    fit(tiny_generator_file, images, root)
    assert not (root / "run.lock").exists(), "a finished run leaves no lock file"


def test_results_are_readable_by_others_as_the_umask_allows(tiny_generator_file, images, tmp_path):
    root = tmp_path / "run"
    previous = os.umask(0o027)
    try:
        fit(tiny_generator_file, images, root)
    finally:
        os.umask(previous)
    written = [root / "recipe.json", root / "metrics.csv", *(root / "latents").iterdir(), *(root / "images").iterdir()]
    for path in written:
        assert path.stat().st_mode & 0o777 == 0o640, path


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_checkpoints_summarises_and_exits_non_zero(tiny_generator_file, images, tmp_path, signum, code,
                                                             caplog):
    root = tmp_path / "run"
    extra = ("--data.batch_size", "2", "--checkpoint.every_seconds", "null", "--trainer.log_every_n_steps", "1")
    steps = "{WI: 3, Mkn: 300}"  # a signal right after WI lands early in Mkn; the rerun finishes in seconds
    process = start_cli(fit_args(tiny_generator_file, images, root, *extra, steps=steps), tmp_path)
    deadline = time.monotonic() + 120
    while not (root / "metrics.csv").is_file():  # written when the WI phase ends: the run is inside Mkn
        assert process.poll() is None and time.monotonic() < deadline, "the run ended before its noise phase"
        time.sleep(0.05)
    os.kill(process.pid, signum)
    returncode, stderr = finish_cli(process, timeout=60)
    assert returncode == code, stderr[-3000:]
    assert f"stopped by {signal.Signals(signum).name}" in stderr and "rerun the same command" in stderr
    assert "0 image(s) finished, 0 skipped as already done, 0 failed" in stderr
    (checkpoint,) = (root / "resume").glob("*.pt")
    state = torch.load(checkpoint, weights_only=True)
    # inside Mkn, or right at the boundary: WI's 3 steps done, Mkn not entered yet
    assert state["group_step"] >= 3 and state["phase"] == ("WI" if state["group_step"] == 3 else "Mkn")
    # the same command continues the group from the checkpoint, and says so
    with caplog.at_level(logging.INFO):
        fit(tiny_generator_file, images, root, {"WI": 3, "Mkn": 300}, data={"batch_size": 2},
            checkpoint={"every_seconds": None}, trainer={"log_every_n_steps": 1})
    assert f"resuming 000002, 000058 at step {state['group_step']} of 303" in caplog.text
    assert sorted(p.stem for p in (root / "latents").glob("*.pt")) == ["000002", "000058"]
    # TensorBoard: the loss goes on from the checkpoint's step (the interrupted run's later points are dropped)
    # and each image's metrics sit at the steps metrics.csv gives
    events = EventAccumulator(str(root))
    events.Reload()
    assert [e.step for e in events.Scalars("loss")] == list(range(1, 304))
    with open(root / "metrics.csv") as f:
        rows = {(r["image"], r["phase"]): int(r["step"]) for r in csv.DictReader(f)}
    assert [e.step for e in events.Scalars("psnr/Mkn/000058")] == [rows["000058", "Mkn"]] == [303]
    assert [e.step for e in events.Scalars("psnr/WI/000002")] == [rows["000002", "WI"]] == [3]


def test_pytest_running_a_fit_in_process_still_stops_on_ctrl_c(tiny_generator_file, images, tmp_path):
    root, after = tmp_path / "run", tmp_path / "after"
    fit_call = (f"small_fit({str(tiny_generator_file)!r}, {str(images)!r}, {str(root)!r}, "
                "{'WI': 3, 'Mkn': 3000}, data={'batch_size': 2})")
    (tmp_path / "test_inner.py").write_text(
        "from tests.robust_run import small_fit\n\n"
        f"def test_fit():\n    {fit_call}\n\n"
        f"def test_after():\n    open({str(after)!r}, 'w').close()\n")
    process = subprocess.Popen([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "test_inner.py"],
                               cwd=tmp_path, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, start_new_session=True)
    deadline = time.monotonic() + 120
    while not (root / "metrics.csv").is_file():  # the fit is inside its noise phase
        assert process.poll() is None and time.monotonic() < deadline, "the fit ended before its noise phase"
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGINT)
    output, _ = process.communicate(timeout=60)
    assert process.returncode == pytest.ExitCode.INTERRUPTED and "KeyboardInterrupt" in output, output[-3000:]
    assert not after.exists() and len(list((root / "resume").glob("*.pt"))) == 1


def test_embed_help_lists_the_commands_without_importing_torch():
    code = ("import sys; from embedding.commands import main; code = main(['--help']); "
            "assert 'torch' not in sys.modules and 'lightning' not in sys.modules; print('exit', code)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=cli_env(), check=True).stdout
    for command in ("fit", "encode", "edit", "train", "convert", "align", "fetch"):
        assert f"\n  {command} " in out
    assert "validate" not in out and "predict" not in out and "exit None" in out


def test_lightning_subcommands_that_cannot_work_are_unknown(capsys):
    assert main(["validate"]) == 2
    assert "unknown command 'validate'" in capsys.readouterr().err
    for cli in (EmbedCLI, TrainCLI):
        with pytest.raises(SystemExit) as stop:
            cli(args=["validate", "--help"])
        assert stop.value.code == 2 and "invalid choice: 'validate'" in capsys.readouterr().err
