"""TensorBoard summaries beyond a task's own pictures: how scalars are named, a run's configuration for the HParams
dashboard, embeddings for the Projector (kept consistent with ``--resume`` and ``--overwrite``), animated frames
and meshes. ``docs/tensorboard.md`` describes what the dashboards show.

Everything that needs tensorboard, protobuf or Pillow imports it inside a function: importing hypersiren stays light.
"""
from __future__ import annotations

import io
import re
import shutil
from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import Tensor

from hypersiren.run_dir import PROJECTOR_CONFIG  # what SummaryWriter.add_embedding writes into the run directory

UNITS = {"psnr": "_dB"}  # a metric whose name starts with the key gets the unit in its TensorBoard tag
_EMBEDDING_FOLDER = re.compile(r"(\d{5,})/([^/\\]+)/")  # "<step, 5 digits or more>/<tag>/" of an embedding's files


def scalar_tag(group: str, name: str) -> str:
    """The TensorBoard tag of scalar ``name`` in ``group`` ("train", "eval"): ``eval/psnr_100_dB``."""
    unit = next((u for prefix, u in UNITS.items() if name.startswith(prefix)), "")
    return f"{group}/{name}{unit}"


def resumable_names(schema: Any, prefix: str = "") -> set[str]:
    """The dotted names (``engine.steps``, ``out``) of the options a config object (a ``Config`` dataclass holding
    others) marks ``resumable``: those ``--resume`` may change."""
    if not is_dataclass(schema):
        return set()
    names = set()
    for f in fields(schema):
        if f.metadata.get("resumable"):
            names.add(prefix + f.name)
        else:
            names |= resumable_names(getattr(schema, f.name, None), f"{prefix}{f.name}.")
    return names


def flat_hparams(config: Mapping[str, Any], exclude: set[str] | frozenset[str] = frozenset(),
                 prefix: str = "") -> dict[str, int | float | str]:
    """A run's stored configuration (``config.json``) as the HParams dashboard takes it: nested options joined with
    dots (``engine.lr``, ``prior.method``), scalars only (lists and unset options are left out), booleans as
    "true"/"false" (discrete in the dashboard), without the dotted names in ``exclude``.

    The engine excludes the options ``--resume`` may change (``resumable_names``: ``engine.steps``, ``out``,
    ``device``, ...): TensorBoard keeps the first session a run directory logged, so only what a resumed run cannot
    change belongs there; how far the run got is the scalar ``train/steps``."""
    flat: dict[str, int | float | str] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if name in exclude:
            continue
        if isinstance(value, Mapping):
            flat.update(flat_hparams(value, exclude, f"{name}."))
        elif isinstance(value, bool):
            flat[name] = "true" if value else "false"
        elif isinstance(value, (int, float, str)):
            flat[name] = value
    return flat


def write_hparams(writer, hparams: Mapping[str, int | float | str], step: int) -> None:
    """Log the run's hyperparameters into the writer's own event file (no subdirectory, unlike
    ``SummaryWriter.add_hparams``), as the session start and end (success) the HParams dashboard reads; its metric
    columns are the run's scalars, read at their last step.

    No experiment summary is written: TensorBoard then builds the table's columns from every run's hyperparameters
    and scalars, so runs of different methods (with different options) sit side by side under one --logdir."""
    from torch.utils.tensorboard.summary import hparams as hparams_summaries

    _, start, end = hparams_summaries(dict(hparams), {})
    file_writer = writer._get_file_writer()  # what SummaryWriter's own add_* methods write through
    file_writer.add_summary(start, step)
    file_writer.add_summary(end, step)


def add_embedding(writer, tag: str, codes: Tensor, step: int, *, images: Tensor | None = None,
                  metadata: list[list[Any]] | None = None, header: list[str] | None = None) -> bool:
    """``SummaryWriter.add_embedding`` of ``codes`` (N, D) into ``<run>/<step, 5 digits>/<tag>/`` with images
    (N, 3, H, W) in [0, 1] as the Projector's thumbnails and metadata rows (one list per code, columns ``header``).
    Once per tag and step (an evaluation and the final one may fall on the same step): returns whether it wrote."""
    if not re.fullmatch(r"[\w.-]+", tag):
        raise ValueError(f"embedding tag {tag!r}: letters, digits, '_', '.', '-' only (it names a folder)")
    if (Path(writer.get_logdir()) / f"{step:05d}" / tag).exists():
        return False
    writer.add_embedding(codes.detach().float().cpu(), metadata=metadata, metadata_header=header,
                         label_img=None if images is None else images.detach().float().cpu().clamp(0, 1),
                         global_step=step, tag=tag)
    return True


def prune_embeddings(out_dir: str | Path, before: int | None = None):
    """Remove from run directory ``out_dir`` the Projector's embeddings logged at step ``before`` or later (None:
    all of them): their folders and entries in ``projector_config.pbtxt``, which is rewritten with those kept (or
    deleted when none are). What ``--resume`` (events past the checkpoint are purged) and ``--overwrite`` (the
    earlier run goes) need. Returns the kept ``ProjectorConfig`` (None if there was no config)."""
    out_dir = Path(out_dir)
    path = out_dir / PROJECTOR_CONFIG
    if not path.is_file():
        return None
    from google.protobuf import text_format
    from tensorboard.plugins.projector.projector_config_pb2 import ProjectorConfig

    try:
        config = text_format.Parse(path.read_text(), ProjectorConfig())
    except (text_format.ParseError, UnicodeDecodeError, OSError):
        config = ProjectorConfig()  # unreadable: start it again (its folders are left where they are)
    kept = ProjectorConfig()
    for embedding in config.embeddings:
        folder = _EMBEDDING_FOLDER.match(embedding.tensor_path)
        if folder and before is not None and int(folder[1]) < before:
            kept.embeddings.append(embedding)
        elif folder:
            shutil.rmtree(out_dir / folder[1] / folder[2], ignore_errors=True)
            try:
                (out_dir / folder[1]).rmdir()  # the step's folder, once no other tag is left in it
            except OSError:
                pass
    if kept.embeddings:
        path.write_text(text_format.MessageToString(kept))
    else:
        path.unlink(missing_ok=True)
    return kept


def add_frames(writer, tag: str, frames: Tensor, step: int, fps: float = 10.0) -> None:
    """Frames (T, 3, H, W) in [0, 1] as an animated picture in the Images dashboard: the summary
    ``SummaryWriter.add_video`` writes (an animated GIF), encoded with Pillow. ``add_video`` itself needs moviepy
    1.x (it imports ``moviepy.editor``, which moviepy 2 removed), which hypersiren does not depend on."""
    from PIL import Image
    from tensorboard.compat.proto.summary_pb2 import Summary

    pixels = (frames.detach().float().cpu().clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    pictures = [Image.fromarray(frame) for frame in pixels]
    buffer = io.BytesIO()
    pictures[0].save(buffer, format="GIF", save_all=True, append_images=pictures[1:], loop=0,
                     duration=max(20, round(1000 / fps)), optimize=False)
    _, height, width, channels = pixels.shape
    image = Summary.Image(height=height, width=width, colorspace=channels, encoded_image_string=buffer.getvalue())
    writer._get_file_writer().add_summary(Summary(value=[Summary.Value(tag=tag, image=image)]), step)


def add_mesh(writer, tag: str, vertices, faces, step: int) -> None:
    """A triangle mesh (vertices (V, 3), faces (F, 3) vertex indices) in the Mesh dashboard (a 3-D view)."""
    vertices = torch.as_tensor(vertices, dtype=torch.float32)[None]
    faces = torch.as_tensor(faces, dtype=torch.int32)[None]
    writer.add_mesh(tag, vertices=vertices, faces=faces, global_step=step)
