"""``hypersiren demo``: train a small face prior in minutes on real faces, then complete held-out faces."""
from __future__ import annotations

import argparse

from hypersiren.cli.prior import add_eval_options, check_evaluation, eval_settings, evaluate_prior, print_table
from hypersiren.config import device_name, non_negative_int, positive_float, positive_int

TENSORBOARD = "tensorboard --logdir {out}"


def _demo(args: argparse.Namespace) -> int:
    """Train the default prior on real faces, then complete held-out faces from a few pixels and a half, beside
    the training faces' mean face (what a prior that ignores the context would score)."""
    from hypersiren.engine import EngineConfig, build_task, train
    from hypersiren.io import check_output_dir
    from hypersiren.prior import HyperSiren
    from hypersiren.tasks.face_prior import FacePrior

    out = check_output_dir(args.out)
    engine = EngineConfig(steps=args.steps, lr=args.lr, seed=args.seed, summary_every=args.summary_every, clip_grad=1.0,
                          minutes=args.minutes, progress=not args.no_progress,
                          overwrite=True)  # rerunning the demo trains afresh (and drops the old curves)
    config = FacePrior.Config(data=args.data, resolution=args.resolution, batch_size=args.batch_size,
                              out=str(out / "train"), device=args.device, engine=engine)
    task = build_task(FacePrior, config)  # checks the training's memory before reading the faces
    eval_settings(args, args.resolution)  # a bad --settings or evaluation too large for memory fails now, not after
    check_evaluation(args, len(task.held_out), args.resolution)  # training
    source = args.data or "scikit-image's LFW faces"
    print(f"demo: training a {task.model.method} prior on {len(task.faces)} faces from {source} "
          f"({args.resolution}x{args.resolution}) for at most {args.minutes:g} min / {args.steps} steps")
    train(task)
    prior = HyperSiren.load(out / "train" / "checkpoint.safetensors", device=task.device)
    held_out = task.held_out.cpu()
    metrics = evaluate_prior(prior, held_out, args, out / "eval")
    print(f"held-out faces ({len(held_out)}) completed from a few known pixels, beside the mean training face:")
    print_table(metrics, baseline=mean_face_psnr(task.faces.faces, held_out))
    print(f"wrote {out / 'eval' / 'completions.png'} and {out / 'train' / 'completions.png'}")
    print(f"look at training curves and completions: {TENSORBOARD.format(out=out)}")
    return 0


def mean_face_psnr(train_faces, held_out, chunk: int = 1024) -> float:
    """Mean PSNR (dB) of the training faces' mean face as the completion of every held-out face, (N, 3, R, R).
    ``train_faces``: in [0, 1] or uint8, a tensor or a data set that slices into tensors (the memory-mapped
    ``FaceImages`` a training task reads), averaged ``chunk`` faces at a time."""
    from hypersiren.evaluation import score_completions

    total = 0.0
    for start in range(0, len(train_faces), chunk):
        part = train_faces[start:start + chunk].cpu()
        total = total + part.double().sum(dim=0, keepdim=True) / (1 if part.is_floating_point() else 255)
    mean_face = (total / len(train_faces)).float()
    return score_completions(mean_face.expand_as(held_out), held_out)[1].mean().item()


def register(subparsers) -> None:
    demo = subparsers.add_parser("demo", help="train a small face prior in minutes and complete held-out faces",
                                 description="Train the default (basis) prior on real faces (scikit-image's LFW faces, or "
                                             "--data), then complete held-out faces from 10/100/1000 pixels and a half.")
    demo.add_argument("--data", default=None, help="faces folder or CelebA root (default: scikit-image's 100 LFW faces)")
    demo.add_argument("--out", default="runs/demo", help="run directory (default: runs/demo)")
    demo.add_argument("--minutes", type=positive_float.parse, default=4.0, help="training budget in minutes (default: 4)")
    demo.add_argument("--steps", type=positive_int.parse, default=100000, help="at most this many steps (default: 100000)")
    demo.add_argument("--resolution", type=positive_int.parse, default=32, help="face resolution (default: 32)")
    demo.add_argument("--batch-size", type=positive_int.parse, default=16, help="faces per step (default: 16)")
    demo.add_argument("--lr", type=positive_float.parse, default=3e-4, help="Adam learning rate (default: 3e-4)")
    demo.add_argument("--summary-every", type=non_negative_int.parse, default=200, help="TensorBoard pictures every N steps")
    demo.add_argument("--seed", type=non_negative_int.parse, default=0, help="random seed (default: 0)")
    demo.add_argument("--device", type=device_name.parse, default="auto",
                      help="auto, cpu, cuda, cuda:N or mps (default: auto)")
    demo.add_argument("--no-progress", action="store_true", help="hide progress bars")
    add_eval_options(demo)
    demo.set_defaults(handler=_demo)
