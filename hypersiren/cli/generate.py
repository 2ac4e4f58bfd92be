"""Generative use of a face prior on the command line: ``sample`` new faces and ``interpolate`` two faces through
latent space (hypernet and functa priors; see ``hypersiren.generate``). Several sampled completions of one
masked face are ``hypersiren complete ... --samples K``."""
from __future__ import annotations

import argparse
import math

from hypersiren.config import Check, device_name, non_negative_int, positive_float, positive_int

TEMPERATURE = Check(float, lambda v: 0 <= v <= 100, "a number from 0 to 100")  # the density's spread scaled further


def add_density_arguments(parser: argparse.ArgumentParser) -> None:
    """Options to (re)fit the latent density on training faces, for checkpoints that store none."""
    group = parser.add_argument_group("latent density (stored in checkpoints from `train prior`; these options refit it)")
    group.add_argument("--data", default=None,
                       help="refit the density on the train split of this face folder / CelebA root (default: use "
                            "the checkpoint's)")
    group.add_argument("--val-fraction", type=positive_float.parse, default=0.1,
                       help="hold-out share of a plain folder, left out of the fit (default: 0.1)")
    group.add_argument("--density-faces", type=positive_int.parse, default=10000,
                       help="encode at most this many faces for the fit (default: 10000)")
    group.add_argument("--no-progress", action="store_true", help="hide the progress bar of reading --data")


def ensure_density(prior, args: argparse.Namespace) -> None:
    """Check that ``prior`` (a HyperSiren) has vector latents; refit its density on ``--data`` if given."""
    from hypersiren.generate import require_latent

    require_latent(prior.prior)
    if getattr(args, "data", None) is None:
        return
    from hypersiren.data.faces import load_faces

    faces = load_faces(args.data, "train", prior.resolution, val_fraction=args.val_fraction,
                       progress=not getattr(args, "no_progress", False))
    prior.fit_density(faces, max_faces=args.density_faces)
    print(f"fitted the latent density on {prior.density.faces} faces from {args.data}")


def _load(args: argparse.Namespace):
    from hypersiren.prior import HyperSiren
    from hypersiren.runtime import resolve_device

    prior = HyperSiren.load(args.checkpoint, device=resolve_device(args.device))
    ensure_density(prior, args)
    return prior


def _sample(args: argparse.Namespace) -> int:
    from hypersiren.data.image import check_image_output, save_image
    from hypersiren.priors.inference import check_render
    from hypersiren.viz import side_by_side, stack_rows

    out = check_image_output(args.out)
    check_render(args.num, args.resolution, f"--num {args.num} at --resolution {args.resolution}")
    prior = _load(args)
    faces = prior.sample(args.num, args.resolution, temperature=args.temperature, seed=args.seed).cpu()
    columns = args.columns or math.ceil(math.sqrt(args.num))
    save_image(stack_rows([side_by_side(list(faces[i:i + columns])) for i in range(0, args.num, columns)]), out)
    print(f"wrote {out} ({args.num} sampled faces, {args.resolution}x{args.resolution} each, temperature "
          f"{args.temperature:g})")
    return 0


def _interpolate(args: argparse.Namespace) -> int:
    import warnings

    from hypersiren.data.image import check_image_output, load_image, resize, save_image
    from hypersiren.priors.inference import check_render
    from hypersiren.viz import side_by_side

    out = check_image_output(args.out)
    check_render(args.steps + 2, args.resolution, f"--steps {args.steps} at --resolution {args.resolution}")
    images = [load_image(path) for path in (args.start, args.end)]
    prior = _load(args)
    with warnings.catch_warnings(record=True) as notes:  # documented conversions (e.g. centre crop) as notes
        warnings.simplefilter("always", UserWarning)
        frames = prior.interpolate(*images, steps=args.steps, resolution=args.resolution,
                                   refine_steps=args.refine_steps).cpu()
        ends = [resize(prior.context(image, mask="full")[0], args.resolution, args.resolution)[0] for image in images]
    for note in dict.fromkeys(str(n.message) for n in notes):
        print(f"note: {note}")
    save_image(side_by_side([ends[0], *frames, ends[1]]), out)
    print(f"wrote {out} ({args.start} | {args.steps} faces along the latent segment | {args.end}, "
          f"{args.resolution}x{args.resolution} each)")
    return 0


def _common(parser: argparse.ArgumentParser, resolution: int) -> None:
    parser.add_argument("--checkpoint", required=True,
                        help="prior checkpoint with vector latents (`hypersiren train prior --method hypernet|functa`)")
    parser.add_argument("--out", required=True, help="output picture (PNG)")
    parser.add_argument("--resolution", type=positive_int.parse, default=resolution,
                        help=f"rendering resolution of each face, any size (default: {resolution})")
    parser.add_argument("--device", type=device_name.parse, default="auto",
                        help="auto, cpu, cuda, cuda:N or mps (default: auto)")


def register(subparsers) -> None:
    sample = subparsers.add_parser(
        "sample", help="sample new faces from a trained prior's latent density",
        description="Draw latents from the Gaussian fitted on the latents of the training faces (stored in the "
                    "checkpoint by `train prior`, or refitted with --data) and render them as a grid of faces.")
    _common(sample, 128)
    sample.add_argument("--num", type=positive_int.parse, default=16, help="how many faces (default: 16)")
    sample.add_argument("--columns", type=positive_int.parse, default=None, help="faces per row (default: a square grid)")
    sample.add_argument("--temperature", type=TEMPERATURE.parse, default=1.0,
                        help="scale of the density's spread: < 1 gives more typical faces, 0 the face of the mean "
                             "latent (default: 1)")
    sample.add_argument("--seed", type=non_negative_int.parse, default=0, help="random seed (default: 0)")
    add_density_arguments(sample)
    sample.set_defaults(handler=_sample)

    interpolate = subparsers.add_parser(
        "interpolate", help="morph one face into another through a prior's latent space",
        description="Encode two face images from all their pixels and render faces evenly spaced on the straight "
                    "latent segment between them; writes A | the faces (first = A's code, last = B's) | B.")
    interpolate.add_argument("start", metavar="A", help="first face image (non-square images are centre-cropped)")
    interpolate.add_argument("end", metavar="B", help="second face image")
    _common(interpolate, 128)
    interpolate.add_argument("--steps", type=positive_int.parse, default=8,
                             help="faces on the segment, both ends included (at least 2; default: 8)")
    interpolate.add_argument("--refine-steps", type=non_negative_int.parse, default=0,
                             help="test-time refinement steps of both ends' codes (default: 0)")
    interpolate.set_defaults(handler=_interpolate)
