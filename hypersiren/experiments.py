"""The experiment layer the ``eval/`` and ``benchmarks/`` scripts share.

A script is a config (a frozen dataclass whose fields are its command-line options, see ``hypersiren.config``),
a ``run(config)`` that trains the task configs it builds and draws its figure, and its entry point:

    def main(argv: list[str] | None = None) -> int:
        return experiments.main(Figure1, run, argv, prog="figure1")

This module parses the command line into the config (one-line errors), trains task configs through the engine,
writes a table and ``metrics.json``, and turns errors into one line and exit status 2.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Callable, Hashable, Mapping

from hypersiren.config import (Config, device_name, layer_count, non_negative_int, option, positive_float, positive_int,
                               width)
from hypersiren.engine import EngineConfig
from hypersiren.errors import HypersirenError
from hypersiren.nn import MODEL_NAMES


@dataclass(frozen=True, kw_only=True)
class FitComparison(Config):
    """Options of an experiment that fits one signal with several networks, each run in ``out/<name>``
    (figure 1, Poisson reconstruction, compositing); scripts override the defaults."""

    out: str = option("runs/eval", "output directory")
    size: int = option(256, "longer side in pixels", check=positive_int)
    steps: int = option(1000, "training steps per fit", check=positive_int)
    lr: float = option(1e-4, "Adam learning rate", check=positive_float)
    hidden_features: int = option(256, "network width", check=width)
    hidden_layers: int = option(3, "hidden layers", check=layer_count)
    seed: int = option(0, "random seed", check=non_negative_int)
    models: tuple[str, ...] = option(("siren",), "networks to compare", choices=MODEL_NAMES)
    device: str = option("auto", "auto, cpu, cuda, cuda:N or mps", check=device_name)
    progress: bool = option(True, "hide the progress bars")

    def fit_options(self, model: str, run: str) -> dict[str, Any]:
        """The options every fit of the experiment shares, for network ``model`` in ``out/run``: full batch, no
        summaries, and a rerun retrains afresh."""
        engine = EngineConfig(steps=self.steps, lr=self.lr, seed=self.seed, summary_every=0, progress=self.progress,
                              overwrite=True)
        return dict(size=self.size, model=model, hidden_features=self.hidden_features,
                    hidden_layers=self.hidden_layers, out=str(Path(self.out) / run), device=self.device, engine=engine)


@dataclass(frozen=True, kw_only=True)
class PriorEvaluation(Config):
    """Options of a script that evaluates a trained face prior on faces of a split, from contexts of a seed."""

    checkpoint: str = option(help="prior checkpoint (hypersiren train prior's)")
    data: str | None = option(None, "faces folder or CelebA root (default: scikit-image's LFW faces)")
    split: str = option("val", "faces evaluated", choices=("train", "val", "test", "all"))
    val_fraction: float = option(0.125, "held-out share of a plain folder", check=positive_float)
    eval_images: int = option(0, "evaluate at most N faces, 0 = all", check=non_negative_int)
    seed: int = option(0, "context seed", check=non_negative_int)

    def faces(self, resolution: int):
        """The evaluated faces (N, 3, R, R) in [0, 1] at ``resolution``."""
        from hypersiren.data.faces import load_faces

        faces = load_faces(self.data, self.split, resolution, val_fraction=self.val_fraction)
        return faces[: self.eval_images or None]


def parse(config_cls: type[Config], argv: list[str] | None = None, prog: str | None = None,
          description: str | None = None, defaults: Config | None = None) -> Config:
    """The config ``argv`` describes (options generated from ``config_cls``; SystemExit(2) with one line on a bad
    command line). A lone ``--`` is dropped, so older command lines that separated passed-on options still work."""
    from hypersiren.cli import Parser
    from hypersiren.cli.arguments import add_arguments, from_args

    parser = Parser(prog=prog, description=description)
    add_arguments(parser, config_cls, defaults)
    args = parser.parse_args([a for a in (sys.argv[1:] if argv is None else argv) if a != "--"])
    return from_args(config_cls, args, defaults)


def main(config_cls: type[Config], run: Callable[[Config], int | None], argv: list[str] | None = None, *,
         prog: str | None = None, defaults: Config | None = None) -> int:
    """Entry point of a script: parse ``argv`` into ``config_cls``, ``run`` it and return the exit status (0, 2 for
    bad input or a bad command line, 130 when interrupted). prog: the name in messages (default: the script's)."""
    prog = prog or Path(sys.argv[0]).stem
    description = (getattr(run, "__globals__", {}).get("__doc__") or "").split("\n\n")[0] or None
    try:
        config = parse(config_cls, argv, prog, description, defaults)
        return int(run(config) or 0)
    except SystemExit as exit_:  # --help (0) or a bad command line (2), already reported
        return int(exit_.code or 0)
    except HypersirenError as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as err:  # the engine checkpointed the model it was training
        print(f"{prog}: {err or 'interrupted'}", file=sys.stderr)
        return 130


def train(task_cls, config) -> tuple:
    """Build the task ``config`` describes (its inputs checked) and train it into ``config.out``: (task, metrics)."""
    from hypersiren import engine

    task = engine.build_task(task_cls, config)
    return task, engine.train(task)


def train_all(runs: Mapping[Hashable, tuple[type, Config]]) -> dict[Hashable, tuple]:
    """Build every task of ``runs`` (key -> (task class, config)) first, so bad input stops the experiment before
    anything is written, then train each into its ``config.out``: key -> (task, metrics)."""
    from hypersiren import engine

    tasks = {key: engine.build_task(task_cls, config) for key, (task_cls, config) in runs.items()}
    return {key: (task, engine.train(task)) for key, task in tasks.items()}


def fields_of(config: Config) -> dict[str, Any]:
    """The field values of a config, by name (to build a config that extends its class from it)."""
    return {f.name: getattr(config, f.name) for f in fields(config)}


def task_config(task_cls, config: Config) -> Config:
    """The task's own config inside an experiment config that extends ``task_cls.Config`` (the experiment's extra
    options dropped), ready to train and to store in a checkpoint."""
    return task_cls.Config(**{f.name: getattr(config, f.name) for f in fields(task_cls.Config)})


def train_then_figure(task_cls, config, skip_training: bool, figure: Callable, path: str | Path):
    """Train ``config`` into ``config.out`` (with ``skip_training``: use the finished run there), rebuild the task
    from its checkpoint, draw ``figure(task, path)`` and print the task's metrics. Returns the task."""
    from hypersiren.engine import restore_task

    if not skip_training:
        train(task_cls, config)
    task = restore_task(task_cls, config.out)
    figure(task, Path(path))
    print(", ".join(f"{k} {v:.4g}" for k, v in task.metrics().items()))
    print(f"wrote {path}")
    return task


def markdown_table(caption: str, header: list[str], rows: list[list]) -> str:
    """A caption line, then a markdown table: the first column left-aligned, the others right-aligned."""
    lines = [caption, "", "| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    return "\n".join(lines + ["| " + " | ".join(map(str, row)) + " |" for row in rows]) + "\n"


def write_results(out_dir: str | Path, name: str, table: str, metrics: dict, figures: tuple[str, ...] = ()) -> None:
    """Write ``<name>.md`` (``table``) and ``metrics.json`` into ``out_dir``, print the table and what was written."""
    from hypersiren.io import write_table_and_metrics

    write_table_and_metrics(out_dir, name, table, metrics)
    print(table, end="" if table.endswith("\n") else "\n")
    print(f"wrote {out_dir}/" + ", ".join([*figures, f"{name}.md", "metrics.json"]))
