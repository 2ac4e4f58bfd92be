"""Face data at CelebA scale: building the face cache of a large folder, the memory a 64 x 64 training run holds,
and the share of a light-model training step spent waiting for the faces.

1. A folder of ``--images`` synthetic face-sized JPEGs (178 x 218, as CelebA's aligned images: random smooth
   colour fields, each different) is generated under ``--workdir`` (kept and reused if already complete), or
   ``--data`` names an existing folder of images.
2. Cache build: the library's builder (``hypersiren.data.face_cache.cached_faces``, what ``open_faces`` and
   ``datasets/prepare_celeba.py`` run) decodes the folder at ``--resolution`` into a fresh cache under
   ``--workdir``, in its own process: wall time, images/s, the cache's size and the process's peak RSS (VmHWM,
   reset when the process starts) beside its RSS before building. The files were just written, so they are read
   from the page cache (a cold disk adds its read time).
3. Training: ``hypersiren train prior``'s task and step (``FacePrior`` + the engine's ``train_step``) with the
   light hypernetwork (``FAST``: 256 target pixels, batch 32) at ``--resolution`` from that cache, once per
   ``--workers`` setting, each in its own process: ``--warmup`` untimed steps (the loader processes start), then
   ``--steps`` timed steps. Load time = the time ``FaceStream`` takes to return a step's faces (waiting for the
   batch, the uint8 -> float conversion and the flips) inside the step; share = total load time / total step
   time. Peak RSS of the training process and of each loader process (VmHWM; file pages of the memory map
   count in it, RssAnon at the end is the memory the process itself allocated).

    python benchmarks/face_loading.py --images 200000 --workdir /scratch/face-loading --out runs/face-loading
    python benchmarks/face_loading.py --data /data/celeba --workdir /scratch/face-loading
    python benchmarks/face_loading.py --quick                                  # smoke test (seconds)
"""
import json
import multiprocessing
import os
import shutil
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from hypersiren import experiments
from hypersiren.config import Config, non_negative_int, option, positive_int
from hypersiren.tasks.face_prior import FAST, FacePrior

WIDTH, HEIGHT = 178, 218  # CelebA's aligned images
JPEG_QUALITY = 90
FLOAT32_BYTES = 4


@dataclass(frozen=True, kw_only=True)
class FaceLoading(Config):
    data: str | None = option(None, "an existing folder of face images (default: generate --images synthetic ones)")
    images: int = option(200_000, "synthetic images to generate", check=positive_int)
    workdir: str = option("", "where the synthetic folder and the cache go (default: <out>/data); use a scratch disk")
    resolution: int = option(64, "cache and training resolution", check=positive_int)
    workers: tuple[int, ...] = option((0, 2), "loader processes of each training run", comma=True,
                                      check=non_negative_int)
    steps: int = option(200, "timed training steps per --workers setting", check=positive_int)
    warmup: int = option(10, "untimed steps first (loader start, allocation)", check=non_negative_int)
    threads: int = option(1, "torch threads of the training step, 0 = torch's default", check=non_negative_int)
    out: str = option("runs/face-loading", "results.json and results.md")
    quick: bool = option(False, "smoke test: 48 images at 16 x 16, 4 steps")

    def __post_init__(self):
        if self.quick:  # frozen: the smoke test's settings replace the given ones before they are checked
            for name, value in dict(images=48, resolution=16, steps=4, warmup=1).items():
                object.__setattr__(self, name, value)
        super().__post_init__()


def _status() -> dict[str, int]:
    """This process's memory lines of /proc/self/status (VmHWM, VmRSS, RssAnon, RssFile) in bytes."""
    return _proc_status("self")


def _proc_status(pid) -> dict[str, int]:
    wanted = ("VmHWM", "VmRSS", "RssAnon", "RssFile")
    found = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in wanted:
                found[key] = int(value.split()[0]) * 1024
    return found


def _reset_peak() -> None:
    """Start this process's peak RSS (VmHWM) afresh (Linux >= 4.0); a forked child otherwise inherits its parent's."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def _in_process(function, *args) -> dict:
    """``function(*args)`` run in a forked process (its own peak RSS); its result dict, or its error raised here."""
    parent, child = multiprocessing.get_context("fork").Pipe(duplex=False)

    def target():
        # torch re-creates its thread pool lazily after a fork, racily when several threads (the cache builder's
        # decoders) reach it first: re-create it here, before any of them start
        torch.set_num_threads(torch.get_num_threads())
        _reset_peak()
        try:
            child.send(("ok", function(*args)))
        except BaseException as err:  # noqa: BLE001 - reported to the parent
            child.send(("error", f"{type(err).__name__}: {err}"))

    process = multiprocessing.get_context("fork").Process(target=target)
    process.start()
    kind, value = parent.recv()
    process.join()
    if kind == "error":
        raise RuntimeError(f"{function.__name__} failed: {value}")
    return value


def generate(folder: Path, count: int, seed: int = 0) -> dict:
    """``count`` JPEGs of 178 x 218 (random smooth colour fields) in ``folder``, named 000001.jpg, ...; an existing
    complete folder is kept. Returns the seconds and images/s it took (0 if reused)."""
    from PIL import Image

    names = [f"{i:06d}.jpg" for i in range(1, count + 1)]
    if folder.is_dir() and len(os.listdir(folder)) == count and all((folder / n).exists() for n in names[-10:]):
        return {"generated": False, "sec": 0.0, "images_per_sec": None}
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    tick = time.perf_counter()
    for name in names:  # a 5 x 6 grid of random colours, bicubically upsampled: smooth, and different per image
        small = Image.fromarray(rng.integers(0, 256, size=(6, 5, 3), dtype=np.uint8))
        small.resize((WIDTH, HEIGHT), Image.BICUBIC).save(folder / name, quality=JPEG_QUALITY)
    sec = time.perf_counter() - tick
    return {"generated": True, "sec": sec, "images_per_sec": count / sec}


def _build(root: str, resolution: int) -> dict:
    from hypersiren.data.face_cache import cache_file, cached_faces
    from hypersiren.data.faces import find_faces

    before = _status()
    tick = time.perf_counter()
    folder = find_faces(root)
    images, indices = cached_faces(folder, resolution, progress=False)
    sec = time.perf_counter() - tick
    after = _status()
    path = cache_file(folder, resolution)
    return {"files": len(folder.files), "cached": len(indices), "sec": sec, "images_per_sec": len(folder.files) / sec,
            "cache_bytes": path.stat().st_size, "cache_file": str(path), "rss_before": before["VmRSS"],
            "peak_rss": after["VmHWM"], "peak_over_start": after["VmHWM"] - before["VmRSS"]}


class _TimedStream:
    """A ``FaceStream`` that records how long each call (one step's faces) takes."""

    def __init__(self, stream):
        self.stream, self.times = stream, []

    def __call__(self, step: int):
        tick = time.perf_counter()
        faces = self.stream(step)
        self.times.append(time.perf_counter() - tick)
        return faces

    def __getattr__(self, name):
        return getattr(self.stream, name)


def _train(args: FaceLoading, root: str, workers: int) -> dict:
    from hypersiren.engine import make_optimizer, train_step
    from hypersiren.runtime import seed_everything, tune_allocator

    if args.threads:
        torch.set_num_threads(args.threads)
    tune_allocator()
    seed_everything(0)
    config = FAST.replace(data=root, resolution=args.resolution, workers=workers, eval_images=8,
                          engine={"progress": False, "summary_every": 0})
    if args.quick:
        config = config.replace(prior=config.prior.replace(hidden_features=16, hidden_layers=1, latent_dim=16))
    task = FacePrior(config, torch.device("cpu"))
    optimizer = make_optimizer(task.parameters(), config.engine.lr)
    task.faces = _TimedStream(task.faces)
    steps = []
    for step in range(args.warmup + args.steps):
        tick = time.perf_counter()
        train_step(task, task.model, optimizer, step, clip_grad=config.engine.clip_grad)
        steps.append(time.perf_counter() - tick)
    loads, steps = task.faces.times[args.warmup:], steps[args.warmup:]
    loader = task.faces.stream._batches
    worker_status = [_proc_status(w.pid) for w in getattr(loader, "_workers", [])]
    end = _status()
    task.faces.close()
    return {"workers": workers, "batch_size": config.batch_size, "target_pixels": config.target_pixels,
            "params": sum(p.numel() for p in task.parameters()), "train_faces": len(task.faces.faces),
            "steps": len(steps), "threads": torch.get_num_threads(),
            "sec_per_step": statistics.median(steps), "load_sec_per_step": statistics.median(loads),
            "load_share": sum(loads) / sum(steps), "load_share_max_step": max(loads),
            "peak_rss": end["VmHWM"], "rss_anon_end": end["RssAnon"], "rss_file_end": end["RssFile"],
            "worker_peak_rss": max((w["VmHWM"] for w in worker_status), default=0),
            "worker_rss_anon_end": max((w["RssAnon"] for w in worker_status), default=0)}


def _mb(value: float) -> str:
    return f"{value / 2**20:,.0f} MiB"


def markdown(results: dict, args: FaceLoading) -> str:
    build, n, r = results["build"], results["build"]["files"], args.resolution
    gen = results["generation"]
    float_copy = n * 3 * r * r * FLOAT32_BYTES
    lines = [f"Face cache of {n:,} images at {r}x{r} ({results['source']}):", "",
             "| measure | value |", "|---|---:|"]
    if gen.get("generated"):
        lines.append(f"| generating the synthetic JPEGs | {gen['sec']:.0f} s ({gen['images_per_sec']:,.0f} images/s) |")
    lines += [f"| cache build (library builder, {build['cached']:,} faces) | {build['sec']:.1f} s "
              f"({build['images_per_sec']:,.0f} images/s) |",
              f"| cache size on disk | {_mb(build['cache_bytes'])} |",
              f"| peak RSS while building (RSS before: {_mb(build['rss_before'])}) | {_mb(build['peak_rss'])} "
              f"(+{_mb(build['peak_over_start'])}) |",
              f"| the same faces as one float32 tensor | {_mb(float_copy)} |", "",
              f"Training the light hypernetwork at {r}x{r} from the cache (batch {results['train'][0]['batch_size']}, "
              f"{results['train'][0]['target_pixels']} target pixels, {results['train'][0]['params'] / 1e6:.2f}M "
              f"parameters, {results['train'][0]['threads']} torch thread(s), {args.steps} timed steps after "
              f"{args.warmup} warm-up):", "",
              "| workers | s / step | load s / step | data-loading share | peak RSS (main) | RssAnon at end (main) "
              "| peak RSS (per worker) |", "|---:|---:|---:|---:|---:|---:|---:|"]
    for row in results["train"]:
        worker = _mb(row["worker_peak_rss"]) if row["workers"] else "-"
        lines.append(f"| {row['workers']} | {row['sec_per_step']:.4f} | {row['load_sec_per_step'] * 1000:.2f} ms | "
                     f"{100 * row['load_share']:.2f} % | {_mb(row['peak_rss'])} | {_mb(row['rss_anon_end'])} | {worker} |")
    return "\n".join(lines)


def run(args: FaceLoading) -> None:
    out = Path(args.out)
    workdir = Path(args.workdir) if args.workdir else out / "data"
    cache = workdir / "cache"
    if cache.exists():  # the build is timed from scratch
        shutil.rmtree(cache)
    os.environ["HYPERSIREN_CACHE"] = str(cache)  # the builder's and the training task's default cache folder
    if args.data:
        root, generation, source = args.data, {"generated": False}, args.data
    else:
        root = str(workdir / "faces")
        generation = generate(Path(root), args.images)
        source = f"synthetic {WIDTH}x{HEIGHT} JPEGs"
        print(f"{args.images:,} synthetic images in {root}"
              + (f" ({generation['sec']:.0f} s, {generation['images_per_sec']:,.0f} images/s)"
                 if generation["generated"] else " (reused)"), flush=True)
    build = _in_process(_build, root, args.resolution)
    print(f"cache built in {build['sec']:.1f} s ({build['images_per_sec']:,.0f} images/s)", flush=True)
    train = []
    for workers in args.workers:
        train.append(_in_process(_train, args, root, workers))
        print(f"workers {workers}: {train[-1]['sec_per_step']:.4f} s/step, load share "
              f"{100 * train[-1]['load_share']:.2f} %", flush=True)
    results = {"source": source, "generation": generation, "build": build, "train": train}
    table = markdown(results, args)
    print(table)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps({**results, "args": args.to_dict()}, indent=2))
    (out / "results.md").write_text(table + "\n")


def main(argv: list[str] | None = None) -> int:
    return experiments.main(FaceLoading, run, argv, prog="face_loading")


if __name__ == "__main__":
    sys.exit(main())
