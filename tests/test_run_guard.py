"""Runs that tell the truth: one recipe per run folder, one run at a time, signals end a run with a checkpoint."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from embedding.cli import main
from embedding.fit_cli import EmbedCLI
from embedding.run_guard import RunFolderError, RunLock, check_recipe, recipe_settings
from embedding.train_cli import TrainCLI
from tests.photos import photos
from tests.robust_run import cli_env, finish_cli, fit_args, start_cli

METHOD = "embedding.module.EmbeddingModule"


def fit(generator: Path, images: Path, root: Path, *extra: str, steps: str = "{WI: 3, Mkn: 2}") -> EmbedCLI:
    return EmbedCLI(args=fit_args(generator, images, root, *extra, steps=steps))


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
        fit(tiny_generator_file, images, root, "--model.seed", "1")
    with pytest.raises(RunFolderError, match=r"changed: model.steps.Mkn, model.steps.WI"):
        fit(tiny_generator_file, images, root, steps="{WI: 4, Mkn: 1}")
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
        cli = fit(tiny_generator_file, images, root, "--data.batch_size", "2")
    assert "holds results of this recipe" in caplog.text
    assert cli.datamodule.skipped == ["000002"]
    assert sorted(p.stem for p in (root / "latents").glob("*.pt")) == ["000002", "000058"]


def test_recipe_record_names_nested_changes(tmp_path):
    settings = recipe_settings(METHOD, {"phases": [{"lr": 0.01}]}, {"images": "a", "crop": None, "batch_size": 4},
                               "32")
    assert "images" not in settings["data"] and "batch_size" not in settings["data"]
    assert check_recipe(tmp_path, settings) is False
    assert check_recipe(tmp_path, recipe_settings(METHOD, {"phases": [{"lr": 0.01}]}, {"images": "b", "crop": None},
                                                  "32"))
    with pytest.raises(RunFolderError, match=r"changed: model.phases"):
        check_recipe(tmp_path, recipe_settings(METHOD, {"phases": [{"lr": 0.1}]}, {"crop": None}, "32"))
    with pytest.raises(RunFolderError, match=r"changed: method"):
        check_recipe(tmp_path, recipe_settings("embedding.dgp.DGPModule", {"phases": [{"lr": 0.01}]},
                                               {"crop": None}, "32"))


def test_a_second_run_in_the_same_folder_is_refused(tiny_generator_file, images, tmp_path):
    root = tmp_path / "run"
    held = RunLock(root)
    held.acquire()
    try:
        with pytest.raises(RunFolderError, match=rf"in use by process {os.getpid()} on "):
            fit(tiny_generator_file, images, root)
    finally:
        held.release()
    # the lock file stays (here with a dead process's line) but holds no lock: the next run takes the folder
    (root / "run.lock").write_text("process 999999 on elsewhere\n")
    fit(tiny_generator_file, images, root)


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_checkpoints_summarises_and_exits_non_zero(tiny_generator_file, images, tmp_path, signum, code,
                                                             caplog):
    root = tmp_path / "run"
    extra = ("--data.batch_size", "2", "--checkpoint.every_seconds", "null")
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
        fit(tiny_generator_file, images, root, *extra, steps=steps)
    assert f"resuming 000002, 000058 at step {state['group_step']} of 303" in caplog.text
    assert sorted(p.stem for p in (root / "latents").glob("*.pt")) == ["000002", "000058"]


def test_embed_help_lists_the_commands_without_importing_torch():
    code = ("import sys; from embedding.cli import main; code = main(['--help']); "
            "assert 'torch' not in sys.modules and 'lightning' not in sys.modules; print('exit', code)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=cli_env(), check=True).stdout
    for command in ("fit", "encode", "edit", "train", "convert", "align", "fetch"):
        assert f"\n  {command} " in out
    assert "embed dgp, now embed fit (DGP recipes)" in out
    assert "validate" not in out and "predict" not in out and "exit None" in out


def test_lightning_subcommands_that_cannot_work_are_unknown(capsys):
    assert main(["validate"]) == 2
    assert "unknown command 'validate'" in capsys.readouterr().err
    for cli in (EmbedCLI, TrainCLI):
        with pytest.raises(SystemExit) as stop:
            cli(args=["validate", "--help"])
        assert stop.value.code == 2 and "invalid choice: 'validate'" in capsys.readouterr().err
