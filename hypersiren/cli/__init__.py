"""``hypersiren`` command line. Each command group lives in its own module with a ``register(subparsers)``;
handlers are thin calls into tasks, the engine and the prior (``run_task`` trains any task config). User errors
print one line and exit with 2."""
from __future__ import annotations

import argparse
import sys
import warnings

from hypersiren.errors import HypersirenError


class Parser(argparse.ArgumentParser):
    """Reports a bad command line as one ``hypersiren: error:`` line (the program's name, what was wrong, where to
    look) instead of usage + error."""

    def error(self, message: str):
        self.exit(2, f"{self.prog.split()[0]}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    from hypersiren.cli import demo, fit, generate, prior

    parser = Parser(prog="hypersiren", description="Implicit neural representations with SIRENs.")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in (fit, prior, generate, demo):
        module.register(subparsers)
    return parser


def run_task(task_cls, config) -> dict:
    """Build the task ``config`` describes (inputs are checked before anything is written), train it, report."""
    from hypersiren.engine import build_task, train

    metrics = train(build_task(task_cls, config))
    shown = ", ".join(f"{k} {v:.4g}" for k, v in metrics.items() if isinstance(v, float))
    print(f"{task_cls.name}: {shown}")
    print(f"wrote {config.out}/ (tensorboard --logdir {config.out})")
    return metrics


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings as one line on stderr, like errors (not Python's file:line plus source line)."""
    print(f"hypersiren: warning: {(str(message).splitlines() or [''])[0]}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """Run one command. Bad input is one ``hypersiren: error:`` line and status 2. So is a numeric warning from a
    library (numpy's or torch's overflow, invalid cast, division by zero: an input no check caught, which would
    otherwise go on as garbage) and running out of memory despite the budget's checks (``hypersiren.limits``)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # --help (0) or a bad command line (2), already reported
        return int(exit_.code or 0)
    try:
        with warnings.catch_warnings():  # restores Python's own warning display when main returns
            warnings.showwarning = _show_warning
            warnings.simplefilter("error", RuntimeWarning)
            return int(args.handler(args) or 0)
    except HypersirenError as err:
        print(f"hypersiren: error: {err}", file=sys.stderr)
        return 2
    except (RuntimeWarning, FloatingPointError) as err:
        print(f"hypersiren: error: a computation on this input failed ({_first_line(err)}); expected values that "
              "float32 and float64 can represent", file=sys.stderr)
        return 2
    except MemoryError as err:  # numpy's allocation failures
        print(f"hypersiren: error: out of memory ({_first_line(err)}); expected smaller options (HYPERSIREN_MAX_BYTES "
              "lowers the memory budget they are checked against beforehand)", file=sys.stderr)
        return 2
    except KeyboardInterrupt as err:
        print(f"hypersiren: {err or 'interrupted'}", file=sys.stderr)
        return 130


def _first_line(err: BaseException) -> str:
    return (str(err).splitlines() or [type(err).__name__])[0]

if __name__ == "__main__":
    sys.exit(main())
