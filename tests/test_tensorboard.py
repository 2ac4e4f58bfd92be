"""What TensorBoard shows of a run, read back with TensorBoard's own event reader: scalar names, the HParams
session in the run's own event file, the Projector's embeddings (kept consistent on --resume and --overwrite),
the generative views of a prior, the SDF's mesh and the video's animated frames."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import TINY_HYPERNET, TINY_NET, TINY_PRIOR
from tests.test_reproducible import ENTRIES, _sphere_xyz

QUICK = ["--steps", "2", "--seed", "0", "--device", "cpu"]  # seed 0: the tiny SDF has a zero level set


def events(run: Path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(run), size_guidance={"images": 0, "scalars": 0, "tensors": 0, "histograms": 0})
    accumulator.Reload()
    return accumulator


def session_hparams(accumulator) -> dict:
    """The hyperparameters of the run's HParams session; checks it ended successfully and that no experiment
    summary was written (TensorBoard then builds the table from every run's hyperparameters)."""
    from tensorboard.plugins.hparams import metadata

    content = accumulator.PluginTagToContent(metadata.PLUGIN_NAME)
    assert set(content) == {metadata.SESSION_START_INFO_TAG, metadata.SESSION_END_INFO_TAG}
    end = metadata.parse_session_end_info_plugin_data(content[metadata.SESSION_END_INFO_TAG])
    assert end.status == 1  # STATUS_SUCCESS
    start = metadata.parse_session_start_info_plugin_data(content[metadata.SESSION_START_INFO_TAG])
    return {name: value.WhichOneof("kind") and getattr(value, value.WhichOneof("kind"))
            for name, value in start.hparams.items()}


def embeddings(run: Path) -> list[str]:
    """The tensor paths the run's projector_config.pbtxt lists (checking that the files it names exist)."""
    from google.protobuf import text_format
    from tensorboard.plugins.projector.projector_config_pb2 import ProjectorConfig

    config = text_format.Parse((run / "projector_config.pbtxt").read_text(), ProjectorConfig())
    for embedding in config.embeddings:
        for path in (embedding.tensor_path, embedding.metadata_path, embedding.sprite.image_path):
            assert not path or (run / path).is_file(), path
    return [embedding.tensor_path for embedding in config.embeddings]


@pytest.fixture(scope="module")
def prior_run(tmp_path_factory) -> Path:
    """A tiny basis prior (the default method) evaluated after steps 1 and 2."""
    from hypersiren.cli import main

    run = tmp_path_factory.mktemp("tb-prior") / "run"
    assert main(["train", "prior", *TINY_PRIOR, *QUICK, "--summary-every", "1", "--out", str(run)]) == 0
    return run


def test_prior_scalars_are_grouped_with_units(prior_run):
    scalars = set(events(prior_run).Tags()["scalars"])
    assert {"train/loss", "train/mse", "train/sec_per_step", "model/params"} <= scalars
    assert {"eval/psnr_10_dB", "eval/psnr_100_dB", "eval/psnr_half_dB", "eval/ssim_100"} <= scalars
    assert not {"eval/psnr_100", "loss"} & scalars  # the unit is in the name; every scalar has its group
    assert all(tag.split("/")[0] in ("train", "eval", "model") for tag in scalars)
    assert [e.step for e in events(prior_run).Scalars("eval/psnr_100_dB")] == [1, 2]


def test_prior_hparams_are_the_run_config_in_its_own_event_file(prior_run):
    hparams = session_hparams(events(prior_run))
    assert hparams["kind"] == "prior/basis" and hparams["prior.method"] == "basis"
    assert hparams["engine.lr"] == pytest.approx(3e-4) and hparams["engine.clip_grad"] == 1
    assert hparams["prior.basis_features"] == 24 and hparams["flip"] == "true" and hparams["resolution"] == 16
    # what --resume may change is left out (TensorBoard keeps a run's first session); the steps done are a scalar
    assert not {"out", "device", "engine.steps", "engine.resume", "engine.progress", "data"} & set(hparams)
    assert [(e.step, e.value) for e in events(prior_run).Scalars("train/steps")] == [(2, 2)]
    nested = [p for p in prior_run.rglob("events.out.tfevents.*") if p.parent != prior_run]
    assert nested == []  # unlike SummaryWriter.add_hparams: no subdirectory, the run is the HParams session


def test_prior_projector_holds_the_held_out_codes(prior_run):
    assert embeddings(prior_run) == ["00001/held_out_codes/tensors.tsv", "00002/held_out_codes/tensors.tsv"]
    folder = prior_run / "00002" / "held_out_codes"
    codes = np.loadtxt(folder / "tensors.tsv")
    faces = 8  # --eval-images; each face twice: codes from its top half and from every pixel
    assert codes.shape == (2 * faces, 25 * 3)  # the basis prior's code: (--basis-features + 1) x RGB
    rows = (folder / "metadata.tsv").read_text().splitlines()
    assert rows[0] == "face\tcontext" and rows[1] == "0\ttop half" and rows[-1] == f"{faces - 1}\tfull face"
    assert len(rows) == 1 + 2 * faces
    sprite = Image.open(folder / "sprite.png")
    assert sprite.size == (4 * 16, 4 * 16)  # 16 thumbnails of the 16 x 16 faces, 4 x 4


def test_prior_pictures_and_generative_views(prior_run):
    accumulator = events(prior_run)
    tags = accumulator.Tags()
    assert "completions" in tags["images"] and "latent (top half known)" in tags["histograms"]
    # rendered at twice the 16 x 16 training resolution, 2-pixel gaps: 4 x 4 samples; 8 steps between two faces
    for tag, size in (("generative/samples", (134, 134)), ("generative/interpolation", (10 * 32 + 9 * 2, 32))):
        (picture,) = accumulator.Images(tag)  # at the end of training only
        assert picture.step == 2 and (picture.width, picture.height) == size


def test_hypernet_prior_has_the_same_views(cli, tmp_path):
    code, _, err = cli("train", "prior", *TINY_HYPERNET, *QUICK, "--out", tmp_path / "run")
    assert code == 0, err
    accumulator = events(tmp_path / "run")
    assert {"generative/samples", "generative/interpolation"} <= set(accumulator.Tags()["images"])
    assert session_hparams(accumulator)["prior.method"] == "hypernet"
    assert embeddings(tmp_path / "run") == ["00002/held_out_codes/tensors.tsv"]
    assert np.loadtxt(tmp_path / "run" / "00002" / "held_out_codes" / "tensors.tsv").shape == (16, 8)


def test_resume_and_overwrite_keep_the_projector_consistent(tmp_path, capsys):
    """On resume the embeddings logged after the checkpoint go (like the purged events) and those before stay
    listed; --overwrite removes them all with the earlier run."""
    import torch

    from hypersiren.engine import EngineConfig
    from hypersiren.run_dir import earlier_run, run_directory, summary_writer
    from hypersiren.summaries import add_embedding

    run = tmp_path / "run"
    run.mkdir()
    writer = summary_writer(run)
    for step in (1, 2, 3):
        assert add_embedding(writer, "codes", torch.randn(4, 3), step, images=torch.rand(4, 3, 8, 8),
                             metadata=[[i, "x"] for i in range(4)], header=["face", "context"])
    assert not add_embedding(writer, "codes", torch.randn(4, 3), 3)  # once per step
    writer.close()
    assert (run / "projector_config.pbtxt") in earlier_run(run)

    writer = summary_writer(run, purge_step=2)  # resumed from the checkpoint of step 1
    assert embeddings(run) == ["00001/codes/tensors.tsv"] and not (run / "00002").exists()
    add_embedding(writer, "codes", torch.randn(4, 3), 2)
    writer.close()
    assert embeddings(run) == ["00001/codes/tensors.tsv", "00002/codes/tensors.tsv"]
    assert "exists" not in capsys.readouterr().out  # no "Embedding dir exists" warning from torch

    with run_directory(run, EngineConfig(overwrite=True)):
        pass
    assert not (run / "projector_config.pbtxt").exists() and not (run / "00001").exists()
    assert not (run / "00002").exists() and earlier_run(run) == []


@pytest.mark.parametrize("entry", ["sdf", "video"])
def test_fit_sdf_mesh_and_video_frames(cli, tmp_path, tiny_mp4, entry):
    argv = ENTRIES[entry]({"mp4": tiny_mp4, "xyz": _sphere_xyz(tmp_path / "sphere.xyz")})
    run = tmp_path / "run"
    code, _, err = cli("fit", entry, *argv, *QUICK, "--summary-every", "0", *TINY_NET, "--out", run)
    assert code == 0, err
    accumulator = events(run)
    hparams = session_hparams(accumulator)
    assert hparams["kind"] == f"fit/{entry}" and hparams["hidden_features"] == 16 and hparams["engine.seed"] == 0
    if entry == "sdf":
        assert {"zero_level_set_VERTEX", "zero_level_set_FACE"} <= set(accumulator.Tags()["tensors"])
        assert {"sdf_slices", "mesh"} <= set(accumulator.Tags()["images"])
        assert {"eval/chamfer", "train/eikonal"} <= set(accumulator.Tags()["scalars"])
        return
    assert {"train/psnr_dB", "eval/psnr_dB", "eval/mse"} <= set(accumulator.Tags()["scalars"])
    (video,) = accumulator.Images("video_fit_beside_ground_truth")
    gif = Image.open(io.BytesIO(video.encoded_image_string))
    assert gif.format == "GIF" and gif.n_frames == 2  # --frames 2
    assert gif.size == (video.width, video.height) == (2 * 8 + 2, 5)  # fit | ground truth: 24 x 16 frames at --size 8


def test_scalar_tags_and_flat_hparams():
    from hypersiren.summaries import flat_hparams, scalar_tag

    assert scalar_tag("eval", "psnr_100") == "eval/psnr_100_dB" and scalar_tag("train", "loss") == "train/loss"
    flat = flat_hparams({"out": "runs/x", "kind": "fit/image", "size": 12, "inputs": ["a", "b"], "data": None,
                         "engine": {"lr": 1e-4, "amp": False, "resume": True}}, exclude={"out", "engine.resume"})
    assert flat == {"kind": "fit/image", "size": 12, "engine.lr": 1e-4, "engine.amp": "false"}


def test_hparams_leave_out_what_resume_may_change():
    from hypersiren.summaries import resumable_names
    from hypersiren.tasks.face_prior import FacePrior

    names = resumable_names(FacePrior.Config())
    assert {"out", "device", "engine.steps", "engine.summary_every", "eval_images"} <= names
    assert not {"engine.lr", "resolution", "prior", "prior.hidden_features", "engine"} & names


def test_a_prior_without_vector_codes_has_no_projector_nor_generative_views(cli, tmp_path):
    run = tmp_path / "run"
    code, _, err = cli("train", "prior", "--method", "maml", "--resolution", "16", "--batch-size", "3", "--eval-images",
                       "2", "--hidden-features", "16", "--hidden-layers", "1", "--inner-steps", "1", "--summary-every",
                       "0", "--no-progress", *QUICK, "--out", run)
    assert code == 0, err
    accumulator = events(run)
    assert accumulator.Tags()["images"] == ["completions"] and accumulator.Tags()["histograms"] == []
    assert not (run / "projector_config.pbtxt").exists() and not (run / "00002").exists()
    assert session_hparams(accumulator)["prior.method"] == "maml"
