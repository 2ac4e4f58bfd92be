"""``hypersiren fit TASK ...`` (train one zoo entry) and ``hypersiren zoo`` (list the entries). Each entry's
options are generated from its ``Config`` (``hypersiren.cli.arguments``)."""
from __future__ import annotations

import argparse
from functools import partial


def _fit(task_cls, args: argparse.Namespace) -> int:
    from hypersiren.cli import run_task
    from hypersiren.cli.arguments import from_args

    config = from_args(task_cls.Config, args)
    run_task(task_cls, config.replace(out=config.out or f"runs/fit-{task_cls.name}"))
    return 0


def _zoo(args: argparse.Namespace) -> int:
    from hypersiren.registry import TASKS
    from hypersiren.tasks.base import engine_summary

    width = max(len(name) for name in TASKS)
    for name, task in TASKS.items():
        defaults = ", ".join(f"{k}={v}" for k, v in engine_summary(task.Config).items())
        print(f"{name:<{width}}  {task.description} [{defaults}]")
    return 0


def register(subparsers) -> None:
    from hypersiren.cli.arguments import add_arguments
    from hypersiren.registry import TASKS

    fit = subparsers.add_parser("fit", help="fit one zoo entry (see `hypersiren zoo`)",
                                description="Fit a signal or solve a problem with a coordinate network.")
    entries = fit.add_subparsers(dest="task", metavar="TASK", required=True)
    for name, task in TASKS.items():
        parser = entries.add_parser(name, help=task.description, description=task.description)
        add_arguments(parser, task.Config)
        parser.set_defaults(handler=partial(_fit, task))
    zoo = subparsers.add_parser("zoo", help="list every zoo entry with its defaults")
    zoo.set_defaults(handler=_zoo)
