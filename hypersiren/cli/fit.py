"""``hypersiren fit TASK ...`` (train one zoo entry) and ``hypersiren zoo`` (list the entries)."""
from __future__ import annotations

import argparse
from dataclasses import fields

from hypersiren.tasks.base import non_negative_float, non_negative_int, positive_float, positive_int


def add_engine_arguments(parser: argparse.ArgumentParser, defaults: dict) -> None:
    """Options of the shared training engine; ``defaults`` holds the task's own defaults."""
    from hypersiren.engine import TrainOptions

    base = {f.name: f.default for f in fields(TrainOptions)} | defaults
    group = parser.add_argument_group("training")
    group.add_argument("--steps", type=positive_int, default=base["steps"], help=f"optimisation steps (default: {base['steps']})")
    group.add_argument("--lr", type=positive_float, default=base["lr"], help=f"Adam learning rate (default: {base['lr']:g})")
    group.add_argument("--seed", type=non_negative_int, default=base["seed"], help="random seed; a CPU run repeats exactly (default: 0)")
    group.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    group.add_argument("--out", default=None, help="run directory (default: runs/<command>-<task>)")
    group.add_argument("--summary-every", type=non_negative_int, default=base["summary_every"],
                       help=f"TensorBoard pictures and eval metrics every N steps, 0 = only at the end (default: {base['summary_every']})")
    group.add_argument("--checkpoint-every", type=non_negative_int, default=base["checkpoint_every"],
                       help="checkpoint every N steps, 0 = at the end and on interruption (default: 0)")
    group.add_argument("--clip-grad", type=non_negative_float, default=base["clip_grad"], help="gradient-norm clipping, 0 = off")
    group.add_argument("--on-nan", choices=("stop", "skip"), default=base["on_nan"],
                       help="on a NaN/Inf loss: stop keeping the last checkpoint, or skip the step (default: stop)")
    group.add_argument("--amp", action="store_true", help="bf16 autocast on CUDA")
    group.add_argument("--compile", action="store_true", help="torch.compile the network")
    again = group.add_mutually_exclusive_group()
    again.add_argument("--resume", action="store_true",
                       help="continue the run in --out from its checkpoint (from step 0 if it has none yet)")
    again.add_argument("--overwrite", action="store_true",
                       help="start again in an --out holding an earlier run (deletes its checkpoint, metrics and "
                            "TensorBoard events); without --resume or --overwrite such a directory is refused")
    group.add_argument("--minutes", type=non_negative_float, default=base["minutes"],
                       help="wall-clock budget: stop and checkpoint after this many minutes, 0 = off (default: 0)")
    group.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def engine_options(args: argparse.Namespace):
    from hypersiren.engine import TrainOptions

    return TrainOptions(steps=args.steps, lr=args.lr, seed=args.seed, summary_every=args.summary_every,
                        checkpoint_every=args.checkpoint_every, clip_grad=args.clip_grad, on_nan=args.on_nan,
                        amp=args.amp, compile=args.compile, resume=args.resume, overwrite=args.overwrite,
                        progress=not args.no_progress, minutes=args.minutes)


def run_task(task_cls, args: argparse.Namespace) -> int:
    """Build the task from parsed options (inputs are checked before anything is written), train, report."""
    from hypersiren.engine import check_run_dir, train
    from hypersiren.io import check_output_dir
    from hypersiren.runtime import resolve_device, seed_everything

    config = {k: v for k, v in vars(args).items() if k != "handler"}
    config["out"] = args.out or f"runs/fit-{task_cls.name}"
    out = check_output_dir(config["out"])
    options = engine_options(args)
    check_run_dir(out, options)
    device = resolve_device(args.device)
    seed_everything(args.seed)
    task = task_cls(config, device)  # reads and checks every input before anything is written
    metrics = train(task, options, out, config)
    shown = ", ".join(f"{k} {v:.4g}" for k, v in metrics.items() if isinstance(v, float))
    print(f"{task_cls.name}: {shown}")
    print(f"wrote {out}/ (tensorboard --logdir {out})")
    return 0


def _zoo(args: argparse.Namespace) -> int:
    from hypersiren.tasks import TASKS

    width = max(len(name) for name in TASKS)
    for name, task in TASKS.items():
        defaults = ", ".join(f"{k}={v}" for k, v in task.defaults.items())
        print(f"{name:<{width}}  {task.description}" + (f" [{defaults}]" if defaults else ""))
    return 0


def register(subparsers) -> None:
    from hypersiren.tasks import TASKS

    fit = subparsers.add_parser("fit", help="fit one zoo entry (see `hypersiren zoo`)",
                                description="Fit a signal or solve a problem with a coordinate network.")
    entries = fit.add_subparsers(dest="task", metavar="TASK", required=True)
    for name, task in TASKS.items():
        parser = entries.add_parser(name, help=task.description, description=task.description)
        task.add_arguments(parser)
        add_engine_arguments(parser, task.defaults)
        parser.set_defaults(handler=lambda args, task=task: run_task(task, args))
    zoo = subparsers.add_parser("zoo", help="list every zoo entry with its defaults")
    zoo.set_defaults(handler=_zoo)


def fit_then_figure(argv: list[str], task_cls, figure, figure_name: str, description: str) -> int:
    """Entry point of an ``eval/`` script: ``hypersiren fit TASK`` with the unknown options of ``argv`` (unless
    ``--skip-training``), then rebuild the trained task from its run directory and draw ``figure(task, path)``
    into ``--out/figure_name``. Returns the exit status."""
    import sys
    from pathlib import Path

    from hypersiren.cli import main
    from hypersiren.engine import restore_task
    from hypersiren.errors import HypersirenError

    parser = argparse.ArgumentParser(description=description)
    default_out = f"runs/eval-{task_cls.name}"
    parser.add_argument("--out", default=default_out, help=f"run directory (default: {default_out})")
    parser.add_argument("--skip-training", action="store_true", help="use the finished run in --out")
    args, fit_options = parser.parse_known_args(argv)
    if not args.skip_training:
        code = main(["fit", task_cls.name, *fit_options, "--out", args.out])
        if code:
            return code
    try:
        task = restore_task(task_cls, args.out)
        path = Path(args.out) / figure_name
        figure(task, path)
    except HypersirenError as err:
        print(f"{parser.prog}: error: {err}", file=sys.stderr)
        return 2
    shown = ", ".join(f"{k} {v:.4g}" for k, v in task.metrics().items())
    print(f"{shown}\nwrote {path}")
    return 0
