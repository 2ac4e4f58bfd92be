"""``hypersiren`` command line. Each command group lives in its own module with a ``register(subparsers)``;
handlers are thin calls into tasks, the engine and the prior. User errors print one line and exit with 2."""
from __future__ import annotations

import argparse
import sys

from hypersiren.errors import HypersirenError


def build_parser() -> argparse.ArgumentParser:
    from hypersiren.cli import fit

    parser = argparse.ArgumentParser(prog="hypersiren", description="Implicit neural representations with SIRENs.")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in (fit,):
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except HypersirenError as err:
        print(f"hypersiren: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as err:
        print(f"hypersiren: {err or 'interrupted'}", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
