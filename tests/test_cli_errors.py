"""What a new user hits first: misspelt keys, wrong generator names, missing inputs, colliding run folders,
several processes without a strategy, and metrics that should be numbers (issue 33)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from lightning.pytorch.cli import LightningCLI

import embedding
from embedding.checkpoints import load_discriminator, load_generator, mobilestylegan
from embedding.commands import encode as encode_command
from embedding.commands import main as embed
from embedding.commands.fit import EmbedCLI, Run
from embedding.commands.train import TrainCLI
from embedding.fitting.distributed import expected_processes
from embedding.fitting.run_folder import RunFolder
from embedding.fitting.run_guard import RunFolderError, check_recipe
from embedding.methods.encoder import load_encoder
from embedding.metrics import COLUMNS, write_metrics

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "recipes" / "reconstruct.yaml"
TRAIN_RECIPE = ROOT / "recipes" / "train_encoder.yaml"
PHOTOS = ROOT / "examples" / "photos"


class Stopped(Exception):
    """Raised where a test has seen what it wanted, before anything is built."""


@pytest.fixture
def nothing_built(monkeypatch):
    """Fail the test if a command gets as far as seeding (Lightning's first line), let alone building networks."""
    def seeded(self):
        raise AssertionError("the command went on to seed and build before checking its inputs")
    monkeypatch.setattr(EmbedCLI, "_set_seed", seeded)
    monkeypatch.setattr(TrainCLI, "_set_seed", seeded)


@pytest.fixture
def parsed(monkeypatch):
    """``parsed(args)``: the config ``embed fit`` resolves (run folder, strategy), nothing built."""
    seen = {}

    def stop(self):
        seen["config"] = self.config["fit"]
        raise Stopped

    monkeypatch.setattr(EmbedCLI, "instantiate_classes", stop)

    def run(args: list[str]):
        with pytest.raises(Stopped):
            EmbedCLI(args=["fit", *args, "--data.images", str(PHOTOS)])
        return seen["config"]
    return run


@pytest.fixture
def empty_cache(tmp_path, monkeypatch) -> Path:
    """A user cache with nothing fetched into it."""
    cache = tmp_path / "cache"
    monkeypatch.setenv(mobilestylegan.CACHE_ENV, str(cache))
    return cache


# ---- 7: a misspelt key is named, with the nearest valid one ----------------------------------------------------

@pytest.mark.parametrize(("option", "message"), [
    ("--model.stpes", "unknown option model.stpes (in --model.stpes); did you mean model.steps?"),
    ("--model.init_args.w_intt", "unknown option model.init_args.w_intt (in --model.init_args.w_intt); "
                                 "did you mean model.init_args.w_init?"),
    ("--trainer.max_stepz", "unknown option trainer.max_stepz (in --trainer.max_stepz); "
                            "did you mean trainer.max_steps?"),
    ("--data.imags", "unknown option data.imags (in --data.imags); did you mean data.images?"),
    ("--checkpoint.every_secs", "unknown option checkpoint.every_secs (in --checkpoint.every_secs); "
                                  "did you mean checkpoint.every_seconds?"),
    ("--modle.steps", "unknown option modle (in --modle.steps); did you mean model?"),
])
def test_a_misspelt_option_is_named_in_one_line(option, message, capsys, nothing_built):
    with pytest.raises(SystemExit) as stop:
        embed(["fit", "--config", str(RECIPE), option, "{WI: 2, Mkn: 1}"])
    assert stop.value.code == 2
    assert capsys.readouterr().err.strip() == f"embed fit: {message}"


@pytest.mark.parametrize(("section", "message"), [
    ({"model": {"w_intt": "mean"}}, "unknown key model.w_intt; did you mean w_init?"),
    ({"model": {"class_path": "embedding.methods.image2stylegan.EmbeddingModule", "init_args": {"w_intt": "mean"}}},
     "unknown key model.init_args.w_intt; did you mean w_init?"),
    ({"model": {"class_path": "embedding.methods.dgp.DGPModule", "init_args": {"discriminatr": "default"}}},
     "unknown key model.init_args.discriminatr; did you mean discriminator?"),
    ({"trainer": {"max_epoch": 2}}, "unknown key trainer.max_epoch; did you mean max_epochs?"),
    ({"data": {"batchsize": 2}}, "unknown key data.batchsize; did you mean batch_size?"),
    ({"images": {"every_n_step": 2}}, "unknown key images.every_n_step; did you mean every_n_steps?"),
])
def test_a_misspelt_recipe_key_is_named_with_its_file(section, message, tmp_path, capsys, nothing_built):
    recipe = tmp_path / "mine.yaml"
    recipe.write_text(yaml.safe_dump(section))
    with pytest.raises(SystemExit) as stop:
        embed(["fit", "--config", str(recipe)])
    assert stop.value.code == 2
    assert capsys.readouterr().err.strip() == f"{recipe}: {message}"


def test_embed_train_names_a_misspelt_key_too(tmp_path, capsys, nothing_built):
    with pytest.raises(SystemExit) as stop:
        embed(["train", "fit", "--config", str(TRAIN_RECIPE), "--model.generatr", "default"])
    assert stop.value.code == 2
    assert capsys.readouterr().err.strip() == ("embed train: unknown option model.generatr (in --model.generatr); "
                                               "did you mean model.generator?")
    recipe = tmp_path / "train.yaml"
    recipe.write_text(yaml.safe_dump({"trainer": {"max_step": 10}}))
    with pytest.raises(SystemExit):
        embed(["train", "fit", "--config", str(recipe)])
    assert capsys.readouterr().err.strip() == f"{recipe}: unknown key trainer.max_step; did you mean max_steps?"


def test_the_python_api_raises_the_same_message(nothing_built):
    with pytest.raises(ValueError, match=r"unknown option model\.stpes .*did you mean model\.steps\?"):
        embedding.fit(RECIPE, model={"stpes": {"WI": 2}})


def test_every_fitting_and_training_recipe_passes_the_key_check(monkeypatch):
    def keys_checked(self, parser, args):
        raise Stopped  # reached only when no key was refused
    monkeypatch.setattr(LightningCLI, "parse_arguments", keys_checked)
    for recipe in sorted((ROOT / "recipes").glob("*.yaml")):
        if "trainer" not in yaml.safe_load(recipe.read_text()):
            continue  # an `embed edit` recipe
        with pytest.raises(Stopped):
            (TrainCLI if recipe.name.startswith("train_") else EmbedCLI)(args=["fit", "--config", str(recipe)])


# ---- 8: a wrong network name lists the known ones ---------------------------------------------------------------

def test_a_wrong_generator_name_lists_the_known_names_and_the_nearest(empty_cache):
    with pytest.raises(FileNotFoundError) as error:
        load_generator("mobilestylegan")
    assert str(error.value) == (
        "checkpoint not found: mobilestylegan (neither a file nor a known name). Known names: default (ships with "
        "the package), mobilestylegan-ffhq (fetched: no — embed fetch mobilestylegan-ffhq). "
        "Did you mean mobilestylegan-ffhq?")
    (empty_cache / mobilestylegan.NAME).mkdir(parents=True)
    for name in mobilestylegan.FILES:
        (empty_cache / mobilestylegan.NAME / name).write_bytes(b"")
    with pytest.raises(FileNotFoundError, match=r"mobilestylegan-ffhq \(fetched: yes\)\. Did you mean"):
        load_generator("mobilestylegan")


def test_discriminator_and_encoder_names_get_the_same_hint(empty_cache, tmp_path):
    with pytest.raises(FileNotFoundError) as error:
        load_discriminator("defualt")
    assert str(error.value).endswith("Known names: default (ships with the package). Did you mean default?")
    with pytest.raises(FileNotFoundError, match=r"checkpoint not found: .*enc\.pt \(neither a file nor a known name\)"):
        load_encoder(tmp_path / "enc.pt")


# ---- 9: inputs are checked before anything is built ------------------------------------------------------------

def test_a_missing_photo_folder_fails_before_anything_is_built(tmp_path, caplog, nothing_built):
    with pytest.raises(SystemExit) as stop:
        embed(["fit", "--config", str(RECIPE), "--data.images", str(tmp_path / "nowhere"),
               "--trainer.default_root_dir", str(tmp_path / "run")])
    assert stop.value.code == 1
    assert f"nothing to fit in '{tmp_path / 'nowhere'}'" in caplog.text and "no such file or folder" in caplog.text
    assert not (tmp_path / "run").exists()


def test_a_missing_generator_fails_before_anything_is_built(tmp_path, caplog, nothing_built, empty_cache):
    with pytest.raises(SystemExit) as stop:
        embed(["fit", "--config", str(RECIPE), "--data.images", str(PHOTOS), "--model.generator", "mobilestylegan-ffhq",
               "--trainer.default_root_dir", str(tmp_path / "run")])
    assert stop.value.code == 1
    assert "mobilestylegan-ffhq is not in the cache" in caplog.text and "embed fetch mobilestylegan-ffhq" in caplog.text
    with pytest.raises(SystemExit):
        embed(["fit", "--config", str(RECIPE), "--data.images", str(PHOTOS), "--model.generator",
               str(tmp_path / "g.pkl"), "--trainer.default_root_dir", str(tmp_path / "run")])
    assert f"checkpoint not found: {tmp_path / 'g.pkl'} (neither a file nor a known name)" in caplog.text


def test_embed_train_and_encode_check_their_inputs_first(tmp_path, caplog, nothing_built, monkeypatch):
    with pytest.raises(SystemExit) as stop:
        embed(["train", "fit", "--config", str(TRAIN_RECIPE), "--data.images", str(tmp_path / "nowhere")])
    assert stop.value.code == 1 and f"no training images in '{tmp_path / 'nowhere'}'" in caplog.text

    def loaded(*_):
        raise AssertionError("a network was loaded before the inputs were checked")
    monkeypatch.setattr(encode_command, "load_encoder", loaded)
    with pytest.raises(ValueError, match="no images found"):
        encode_command.encode(str(tmp_path / "nowhere"), out=str(tmp_path / "run"))
    with pytest.raises(FileNotFoundError, match="checkpoint not found: nope"):
        encode_command.encode(str(PHOTOS), generator="nope", out=str(tmp_path / "run"))


# ---- 3: a generator other than the recipe's gets its own run folder ----------------------------------------------

def test_another_generator_gets_its_own_run_folder(parsed, tiny_generator_file, tmp_path, empty_cache):
    assert parsed(["--config", str(RECIPE)]).trainer.default_root_dir == "runs/reconstruct"
    assert parsed(["--config", str(RECIPE), "--model.generator", "default"]).trainer.default_root_dir == \
        "runs/reconstruct"
    config = parsed(["--config", str(RECIPE), "--model.generator", str(tiny_generator_file)])
    assert config.trainer.default_root_dir == "runs/reconstruct-tiny"
    given = parsed(["--config", str(RECIPE), "--model.generator", str(tiny_generator_file),
                    "--trainer.default_root_dir", str(tmp_path / "mine")])
    assert given.trainer.default_root_dir == str(tmp_path / "mine")
    (empty_cache / mobilestylegan.NAME).mkdir(parents=True)
    mobilestylegan.weights_file().write_bytes(b"")
    named = parsed(["--config", str(RECIPE), "--model.generator", mobilestylegan.NAME])
    assert named.trainer.default_root_dir == "runs/reconstruct-mobilestylegan-ffhq"
    recipe = tmp_path / "own.yaml"  # a recipe that names its generator and folder keeps that folder
    recipe.write_text(yaml.safe_dump({"model": {"generator": str(tiny_generator_file)},
                                      "trainer": {"default_root_dir": "runs/own"}}))
    assert parsed(["--config", str(recipe)]).trainer.default_root_dir == "runs/own"
    recipe.write_text(yaml.safe_dump({"model": {"generator": str(tiny_generator_file)}}))
    assert parsed(["--config", str(recipe)]).trainer.default_root_dir == "runs/embed-tiny"


def test_a_folder_of_another_recipe_says_which_option_gives_another(tmp_path):
    root = tmp_path / "run"
    check_recipe(root, {"model": {"generator": "default"}})
    (root / "latents").mkdir()
    (root / "latents" / "a.pt").write_bytes(b"")
    with pytest.raises(RunFolderError, match=rf"another folder with --trainer.default_root_dir \(e.g. {root}-2\)"):
        check_recipe(root, {"model": {"generator": "mobilestylegan-ffhq"}})


# ---- 13: several processes without a strategy run the project's own ---------------------------------------------

def test_several_processes_default_to_the_independent_strategy(parsed, monkeypatch, tmp_path):
    base = ["--config", str(RECIPE), "--trainer.default_root_dir", str(tmp_path / "run")]
    two_nodes = parsed([*base, "--trainer.num_nodes", "2", "--trainer.devices", "1"])
    assert two_nodes.trainer.strategy.class_path == "embedding.fitting.distributed.IndependentDDPStrategy"
    assert parsed(base).trainer.strategy == "auto"
    monkeypatch.setenv("WORLD_SIZE", "4")  # torchrun's
    assert parsed(base).trainer.strategy.class_path.endswith("IndependentDDPStrategy")


def test_expected_processes(monkeypatch):
    for name in ("WORLD_SIZE", "SLURM_NTASKS"):
        monkeypatch.delenv(name, raising=False)
    assert expected_processes("cpu", 1, 1) == 1
    assert expected_processes("cpu", "auto", 1) == 1
    assert expected_processes("cpu", 2, 1) == 2
    assert expected_processes("cpu", "2", 3) == 6
    assert expected_processes("gpu", [0, 1], 1) == 2
    assert expected_processes("gpu", "0,1", 2) == 4
    monkeypatch.setenv("WORLD_SIZE", "3")
    assert expected_processes("cpu", 1, 1) == 3


# ---- 2: run.metrics() gives numbers ----------------------------------------------------------------------------

def test_run_metrics_are_numbers(tmp_path):
    folder = RunFolder(tmp_path / "run")
    row = {"image": "001", "phase": "WI", "step": 40, "psnr": 20.5193, "ssim": 0.61, "lpips": 0.3}
    write_metrics(folder, [{key: row.get(key, "") for key in COLUMNS}])
    [metrics] = Run(folder, ["001"], [], []).metrics()
    assert metrics == {"image": "001", "phase": "WI", "step": 40, "psnr": 20.5193, "ssim": 0.61, "lpips": 0.3,
                       "psnr_masked": None, "ssim_masked": None, "identity": None, "landmark_error": None}
    assert isinstance(metrics["step"], int) and isinstance(metrics["psnr"], float)
