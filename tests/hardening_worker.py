"""Runs hypersiren command lines one after another in one process, for ``tests/test_hardening.py``, and reports for
each: exit status, stdout, stderr, a traceback if one escaped, whether the working directory changed, and how far
the process's peak resident memory (``resource.getrusage``) has grown above its level after the imports.

    python tests/hardening_worker.py CASES.json RESULTS.json     (in the directory that must stay unchanged)

CASES.json: {name: argv}. The address space is capped a few GB above the start, so a missing check fails fast
instead of exhausting the machine.
"""
from __future__ import annotations

import contextlib
import importlib
import io
import json
import resource
import sys
import traceback
from pathlib import Path

HEADROOM = 4 << 30  # address space the cases may add to the interpreter's (bytes)


def tree(root: Path) -> list[tuple[str, int]]:
    return sorted((str(p.relative_to(root)), p.stat().st_size if p.is_file() else -1) for p in root.rglob("*"))


def peak_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kB on Linux


def main(cases_path: str, results_path: str) -> None:
    for module in ("av", "plyfile", "safetensors.torch", "scipy.io.wavfile", "skimage.data", "torch", "trimesh",
                   "PIL.Image"):  # the readers' packages, imported before the baseline is taken
        importlib.import_module(module)
    from hypersiren.cli import build_parser, main as hypersiren

    build_parser()  # imports every command's modules
    with open("/proc/self/statm") as f:
        address_space = int(f.read().split()[0]) * resource.getpagesize()
    resource.setrlimit(resource.RLIMIT_AS, (address_space + HEADROOM, resource.RLIM_INFINITY))
    root, baseline = Path.cwd(), peak_bytes()
    results = {}
    for name, argv in json.loads(Path(cases_path).read_text()).items():
        before = tree(root)
        out, err, escaped = io.StringIO(), io.StringIO(), None
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = hypersiren(argv)
            except BaseException:  # noqa: BLE001 - any escape is what the test reports
                code, escaped = None, traceback.format_exc()
        results[name] = dict(code=code, stdout=out.getvalue(), stderr=err.getvalue(), traceback=escaped,
                             changed=tree(root) != before, peak_growth=peak_bytes() - baseline)
    Path(results_path).write_text(json.dumps(results))


if __name__ == "__main__":
    main(*sys.argv[1:])
