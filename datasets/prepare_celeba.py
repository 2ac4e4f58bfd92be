"""Build the preprocessed face cache ahead of training, so the first run does not spend its time decoding.

    python datasets/prepare_celeba.py /data/celeba --resolution 32 64 [--cache-dir DIR] [--val-fraction 0.125]

ROOT is CelebA in its official or Kaggle layout, or any folder of face images (see datasets/README.md).
Decodes every image once per resolution (centre square crop, resize, 8 bits) into the cache that
``hypersiren.data.faces.open_faces`` and ``load_faces`` read, and prints the layout, the split sizes and the cache files.
Bad input (missing root, no images) prints one line ``prepare_celeba: error: ...`` and exits with status 2.
"""
from __future__ import annotations

import argparse
import sys

from hypersiren.data.face_cache import cache_file, cached_faces
from hypersiren.data.faces import SPLITS, find_faces, split_files
from hypersiren.errors import InputError


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="prepare_celeba", description=__doc__.split("\n\n")[0])
    parser.add_argument("root", help="CelebA root (official or Kaggle layout) or a folder of face images")
    parser.add_argument("--resolution", type=int, nargs="+", default=[32], help="side(s) in pixels (default: 32)")
    parser.add_argument("--cache-dir", default=None,
                        help="cache folder (default: $HYPERSIREN_CACHE/faces or ~/.cache/hypersiren/faces)")
    parser.add_argument("--val-fraction", type=float, default=0.1,
                        help="held-out fraction for folders without an official partition (default: 0.1)")
    parser.add_argument("--seed", type=int, default=0, help="seed of that hold-out (default: 0)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        folder = find_faces(args.root)
        print(f"{args.root}: {folder.layout} layout, {len(folder.files)} image files in {folder.image_dir}")
        splits = [s for s in SPLITS if s != "test" or folder.partition is not None]  # test = val for folders
        membership = {s: split_files(folder, s, args.val_fraction, args.seed) for s in splits}
        for resolution in args.resolution:
            if resolution < 2:
                raise InputError(f"resolution must be an integer >= 2, got {resolution}")
            _, decoded = cached_faces(folder, resolution, args.cache_dir, progress=not args.no_progress)
            sizes = ", ".join(f"{s} {int(membership[s][decoded].sum())}" for s in splits)
            print(f"{resolution}px: {sizes} readable faces -> {cache_file(folder, resolution, args.cache_dir)}")
    except InputError as err:
        print(f"prepare_celeba: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
