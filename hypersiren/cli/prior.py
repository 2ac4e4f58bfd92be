"""Face priors on the command line: ``train prior``, ``complete`` and ``eval prior``."""
from __future__ import annotations

import argparse
import warnings
from pathlib import Path

from hypersiren.config import device_name, non_negative_int, positive_float, positive_int


def _train_prior(args: argparse.Namespace) -> int:
    from hypersiren.cli import run_task
    from hypersiren.cli.arguments import from_args
    from hypersiren.runtime import torchrun_group
    from hypersiren.tasks.face_prior import FacePrior

    config = from_args(FacePrior.Config, args)
    with torchrun_group(config.device) as (rank, device):
        run_task(FacePrior, config.replace(out=config.out or "runs/prior", device=device,
                                           engine={"progress": config.engine.progress and not rank}))
    return 0


def _context(args: argparse.Namespace):
    if args.half:
        return dict(mask="half")
    if args.mask is not None:
        return dict(mask=args.mask)
    return dict(num_pixels=args.pixels)


def _complete(args: argparse.Namespace) -> int:
    from hypersiren.data.image import check_image_output, load_image, save_image
    from hypersiren.prior import HyperSiren
    from hypersiren.priors.inference import check_render

    out = check_image_output(args.out)
    check_render((args.samples or 1) + 2, args.resolution,  # context | completion(s) | truth
                 f"--resolution {args.resolution} with --samples {args.samples}")
    image = load_image(args.image)
    prior = HyperSiren.load(args.checkpoint)
    if args.mask is not None and not Path(args.mask).is_file():
        from hypersiren.errors import InputError

        raise InputError(f"mask picture not found: {args.mask} (expected an image file, white = known)")
    if args.mask is not None:
        from hypersiren.data.context import read_mask_picture

        args.mask = read_mask_picture(args.mask)  # of the image's size (centre-cropped like it) or the prior's
    if args.samples:
        from hypersiren.cli.generate import ensure_density

        if args.refine_steps:
            from hypersiren.errors import InputError

            raise InputError("--refine-steps does not combine with --samples (sampled completions are fitted to the "
                             "context already); use one of them")
        ensure_density(prior, args)
    with warnings.catch_warnings(record=True) as notes:  # documented conversions (e.g. centre crop) as notes
        warnings.simplefilter("always", UserWarning)
        if args.samples:
            picture = prior.complete_samples_side_by_side(image, **_context(args), num=args.samples,
                                                          resolution=args.resolution, seed=args.seed,
                                                          temperature=args.temperature)
        else:
            picture = prior.side_by_side(image, **_context(args), resolution=args.resolution, seed=args.seed,
                                         refine_steps=args.refine_steps)
    for note in notes:
        print(f"note: {note.message}")
    save_image(picture, out)
    middle = f"{args.samples} sampled completions" if args.samples else "completion"
    print(f"wrote {out} (context | {middle} | ground truth, {args.resolution}x{args.resolution})")
    return 0


def evaluate_prior(prior, faces, args, out: Path) -> dict:
    """Paper protocol on ``faces`` (N, 3, R, R) in [0, 1]; writes metrics.json, table.md, completions.png."""
    from hypersiren.evaluation import evaluate_prior, write_evaluation

    check_evaluation(args, len(faces), prior.resolution)
    metrics, examples = evaluate_prior(prior.prior, faces.to(prior.device), refine_steps=getattr(args, "refine_steps", 0),
                                       settings=eval_settings(args, prior.resolution), seed=args.seed,
                                       batch_size=args.batch_size, progress=not args.no_progress)
    write_evaluation(out, metrics, examples, faces)
    return metrics


def check_evaluation(args: argparse.Namespace, faces: int, resolution: int) -> None:
    """InputError if completing ``--eval-batch-size`` of ``faces`` faces at once at ``resolution`` exceeds the memory
    budget."""
    from hypersiren.priors.inference import check_render

    batch = min(args.batch_size, faces)
    check_render(batch, resolution, f"--eval-batch-size {args.batch_size} ({batch} faces at resolution {resolution})")


def eval_settings(args: argparse.Namespace, resolution: int) -> tuple[str, ...]:
    """The --settings to evaluate (by default those an R x R face allows), each checked now (InputError)."""
    from hypersiren.data.context import evaluation_masks
    from hypersiren.evaluation import SETTINGS
    from hypersiren.tasks.face_prior import feasible_settings

    settings = feasible_settings(args.settings, resolution) if args.settings == list(SETTINGS) else tuple(args.settings)
    for setting in settings:
        evaluation_masks(str(setting), 1, resolution)
    return settings


def print_table(metrics: dict, baseline: float | None = None) -> None:
    """PSNR and SSIM per context; with ``baseline`` (the mean face's PSNR, dB) also it and the gain over it."""
    print("context   PSNR (dB)   SSIM" + ("   mean face (dB)   gain (dB)" if baseline is not None else ""))
    for setting, values in metrics.items():
        row = f"{setting:<8} {values['psnr']:9.2f}   {values['ssim']:.3f}"
        print(row if baseline is None else f"{row}   {baseline:14.2f}   {values['psnr'] - baseline:+9.2f}")


def _eval_prior(args: argparse.Namespace) -> int:
    from hypersiren.data.faces import load_faces
    from hypersiren.io import check_output_dir
    from hypersiren.prior import HyperSiren
    from hypersiren.runtime import resolve_device

    out = check_output_dir(args.out)
    prior = HyperSiren.load(args.checkpoint, device=resolve_device(args.device))
    faces = load_faces(args.data, args.split, prior.resolution, val_fraction=args.val_fraction,
                       progress=not args.no_progress)
    if args.max_images:
        faces = faces[: args.max_images]
    metrics = evaluate_prior(prior, faces, args, out)  # the directory is created once the evaluation succeeded
    print_table(metrics)
    print(f"wrote {out}/ (metrics.json, table.md, completions.png)")
    return 0


def _add_context_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--pixels", type=positive_int.parse, help="that many random known pixels (at the prior's resolution)")
    group.add_argument("--mask", help="mask picture, white = known (the image's size or the prior's resolution)")
    group.add_argument("--half", action="store_true", help="the top half is known")


def add_eval_options(parser: argparse.ArgumentParser, batch_size: int = 50) -> None:
    from hypersiren.evaluation import SETTINGS

    parser.add_argument("--settings", nargs="+", default=list(SETTINGS),
                        help=f"contexts: pixel counts, half, full (default: {' '.join(SETTINGS)})")
    parser.add_argument("--eval-batch-size", dest="batch_size", type=positive_int.parse, default=batch_size,
                        help=f"faces completed per batch (default: {batch_size})")


def register(subparsers) -> None:
    from hypersiren.cli.arguments import add_arguments
    from hypersiren.cli.generate import TEMPERATURE, add_density_arguments
    from hypersiren.tasks.face_prior import FacePrior

    train = subparsers.add_parser("train", help="train a prior (see `hypersiren train prior --help`)")
    kinds = train.add_subparsers(dest="what", metavar="WHAT", required=True)
    parser = kinds.add_parser("prior", help=FacePrior.description, description=FacePrior.description +
                              ". Runs under torchrun too (DistributedDataParallel, one process per GPU or gloo on CPU).")
    add_arguments(parser, FacePrior.Config)
    parser.set_defaults(handler=_train_prior)

    complete = subparsers.add_parser("complete", help="complete a face from a few pixels with a trained prior",
                                     description="Complete a face image from a context; writes context | completion | "
                                                 "ground truth side by side.")
    complete.add_argument("--checkpoint", required=True, help="prior checkpoint (from `hypersiren train prior`)")
    complete.add_argument("--image", required=True, help="face image (non-square images are centre-cropped)")
    _add_context_options(complete)
    complete.add_argument("--out", required=True, help="output picture (PNG)")
    complete.add_argument("--resolution", type=positive_int.parse, default=128, help="rendering resolution (default: 128)")
    complete.add_argument("--seed", type=non_negative_int.parse, default=0, help="seed of the random pixels (default: 0)")
    complete.add_argument("--refine-steps", type=non_negative_int.parse, default=0,
                          help="test-time refinement steps of the code on the context (default: 0)")
    sampled = complete.add_argument_group("several completions (hypernet/functa priors; hypersiren.generate)")
    sampled.add_argument("--samples", type=non_negative_int.parse, default=0,
                         help="draw K plausible completions given the context (latent density prior + context fit, "
                              "'randomise-then-optimise'); writes context | K completions | ground truth (default: 0 = "
                              "the one predicted completion)")
    sampled.add_argument("--temperature", type=TEMPERATURE.parse, default=1.0,
                         help="with --samples: spread of the completions (0: all the most probable one; default: 1)")
    add_density_arguments(complete)
    complete.set_defaults(handler=_complete)

    evaluate = subparsers.add_parser("eval", help="evaluate a trained model (see `hypersiren eval prior --help`)")
    kinds = evaluate.add_subparsers(dest="what", metavar="WHAT", required=True)
    parser = kinds.add_parser("prior", help="completion PSNR/SSIM at 10/100/1000 pixels, half and full (paper, Table 1)")
    parser.add_argument("--checkpoint", required=True, help="prior checkpoint")
    parser.add_argument("--data", default=None, help="faces folder or CelebA root (default: scikit-image's LFW faces)")
    parser.add_argument("--split", default="all", choices=("train", "val", "test", "all"),
                        help="which faces (default: all; a plain folder's val = its --val-fraction hold-out)")
    parser.add_argument("--val-fraction", type=positive_float.parse, default=0.1, help="hold-out share of a plain folder (default: 0.1)")
    parser.add_argument("--max-images", type=non_negative_int.parse, default=0, help="evaluate at most N faces (0: all)")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--seed", type=non_negative_int.parse, default=0, help="seed of the random contexts (default: 0)")
    parser.add_argument("--device", type=device_name.parse, default="auto",
                        help="auto, cpu, cuda, cuda:N or mps (default: auto)")
    parser.add_argument("--refine-steps", type=non_negative_int.parse, default=0, help="test-time refinement steps (default: 0)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    add_eval_options(parser)
    parser.set_defaults(handler=_eval_prior)
