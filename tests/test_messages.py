"""What a new user reads: one log line per message, bad inputs named once in plain words, help for every command."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from embedding.checkpoints import save_generator
from embedding.commands import main as embed
from embedding.commands.align import main as align
from embedding.images import IMAGE_EXTENSIONS, resolve_images
from tests.conftest import build_generator
from tests.photos import PHOTOS
from tests.robust_run import RECIPE, cli_env

LOG_LINE = re.compile(r"(INFO|WARNING|ERROR) [\w.]+: |  \S")  # a log line, or a line of a listing inside one


@pytest.fixture(scope="module")
def fit_log(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, list[str], Path]:
    """``embed fit`` as a user runs it, stderr to a file (not a terminal): two photos, a text file named like
    an image in their folder, and a path that does not exist. Exit code, stderr lines, the folder."""
    tmp = tmp_path_factory.mktemp("messages")
    folder = tmp / "photos"
    folder.mkdir()
    for name in ("000002.jpg", "000058.jpg"):
        shutil.copy(PHOTOS / name, folder / name)
    (folder / "notimage.png").write_text("not an image")
    generator = save_generator(build_generator(), tmp / "tiny.pt")
    args = ["fit", "--config", str(RECIPE), "--model.generator", str(generator), "--model.vgg_weights", "random",
            "--data.images", f"[{folder}, {tmp / 'missing.png'}]", "--data.batch_size", "2",
            "--trainer.default_root_dir", str(tmp / "run"), "--model.steps", "{WI: 2, Mkn: 1}",
            "--progress.every_s", "0"]
    done = subprocess.run([sys.executable, "-m", "embedding.commands", *args], cwd=tmp, env=cli_env(),
                          capture_output=True, text=True, timeout=300)
    return done.returncode, done.stderr.splitlines(), tmp


def test_every_log_line_is_printed_once_in_one_format(fit_log):
    code, lines, _ = fit_log
    assert code == 0, "\n".join(lines[-30:])
    assert [line for line in lines if not LOG_LINE.match(line)] == [], "one handler, one format"
    assert sorted({line for line in lines if lines.count(line) > 1}) == []
    first_progress = next(k for k, line in enumerate(lines) if line.startswith("INFO embedding: fit: "))
    assert first_progress <= 6, "a few lines before the fit starts:\n" + "\n".join(lines[:first_progress])


def test_no_advertisement_model_summary_or_deprecation_notice(fit_log):
    text = "\n".join(fit_log[1])
    for noise in ("litlogger", "Tip:", "Trainable params", "| Name", "Deprecat", "deprecated", "TPU available"):
        assert noise not in text


def test_the_fit_logs_its_progress_when_stderr_is_not_a_terminal(fit_log):
    progress = [line for line in fit_log[1] if line.startswith("INFO embedding: fit: ")]
    assert re.fullmatch(r"INFO embedding: fit: 1/3 steps \(33%\), images 000002\.\.000058 \(2\), phase WI 1/2, "
                        r"loss [\d.]+, [\d.]+ s, about [\d.]+ s left", progress[0]), progress
    assert re.fullmatch(r"INFO embedding: fit: 3/3 steps, images 000002\.\.000058 \(2\), phase Mkn 1/1, loss [\d.]+ "
                        r"in [\d.]+ s", progress[-1]), progress
    assert not any("\r" in line for line in fit_log[1]), "no terminal bar in a log"


def test_bad_inputs_are_named_once_in_plain_words_without_source_lines(fit_log):
    _, lines, tmp = fit_log
    assert not any(re.search(r"\.py:\d+", line) for line in lines), "no file:line of the code that noticed"
    for name in ("notimage.png", "missing.png"):
        assert len([line for line in lines if name in line]) == 1, f"{name} named on one line"
    assert f"  {tmp / 'missing.png'}: no such file or folder" in lines
    assert f"  {tmp / 'photos' / 'notimage.png'}: cannot read image {tmp / 'photos' / 'notimage.png'}: not an image: " \
           "Pillow cannot identify its format" in lines


def test_entries_without_images_say_why(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes").mkdir()
    for name in ("a.txt", "b.txt", "c.gif", "d.txt"):
        (tmp_path / "notes" / name).write_text("x")
    entries = [tmp_path / "empty", tmp_path / "notes", tmp_path / "gone", tmp_path / "*.jpg", tmp_path / "notes/*.txt"]
    found, failures = resolve_images([str(e) for e in entries])
    looked_for = f"(looked for {' '.join(IMAGE_EXTENSIONS)})"
    assert found == [] and dict(failures) == {
        str(entries[0]): f"the folder is empty: no images {looked_for}",
        str(entries[1]): f"the folder has no images: its 4 file(s) (a.txt, b.txt, c.gif and 1 more) are not images "
                         f"{looked_for}",
        str(entries[2]): "no such file or folder",
        str(entries[3]): "the pattern matches no file",
        str(entries[4]): f"the pattern matches 3 file(s), none of them an image {looked_for}",
    }
    assert looked_for.startswith("(looked for .png .jpg")


def test_embed_align_says_a_folder_is_empty(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert align([str(tmp_path / "empty"), "--out", str(tmp_path / "out")]) == 1
    said = capsys.readouterr().err
    assert f"skipped {tmp_path / 'empty'}: the folder is empty: no images (looked for .png .jpg" in said


@pytest.mark.parametrize("command", ["edit", "swap", "train"])
def test_every_subcommand_has_a_description_line_in_the_help(command, capsys):
    with pytest.raises(SystemExit):
        embed([command, "--help"])
    usage, listing = capsys.readouterr().out.split("Available subcommands:")
    names = re.search(r"\{([\w,]+)\}", usage).group(1).split(",")
    for name in names:
        assert re.search(rf"^ +{name} +\S", listing, re.M), f"embed {command} --help: {name} has no description"
