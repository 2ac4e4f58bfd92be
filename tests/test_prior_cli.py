"""``train prior``, ``complete``, ``eval prior`` and ``demo`` end to end on tiny settings."""
import json

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import TINY_HYPERNET, TINY_PRIOR
from hypersiren.checkpoint import load_checkpoint, save_checkpoint


@pytest.fixture
def face_folder(tmp_path):
    """12 generated 24 x 20 'faces' (an ellipse on a gradient) as PNGs: a plain folder without a split."""
    folder = tmp_path / "faces"
    folder.mkdir()
    y, x = np.mgrid[:24, :20] / 20
    for i in range(12):
        face = ((y - 0.6) ** 2 / 0.2 + (x - 0.5) ** 2 / 0.1 < 0.5 + 0.03 * i)[..., None] * [200, 160, 120 + 10 * i]
        face = face + (40 * x)[..., None]
        Image.fromarray(face.clip(0, 255).astype(np.uint8)).save(folder / f"face{i:02d}.png")
    return folder


def test_train_prior_writes_a_complete_run(tiny_prior_checkpoint):
    run = tiny_prior_checkpoint.parent
    state, meta = load_checkpoint(tiny_prior_checkpoint)
    assert meta["kind"] == "prior/basis" and meta["model"]["method"] == "basis"  # the default method
    assert meta["model"]["basis_features"] == 24 and meta["config"]["resolution"] == 16
    assert state["step"] == 3
    metrics = json.loads((run / "metrics.json").read_text())
    assert {"psnr_10", "psnr_100", "psnr_half", "ssim_half"} <= set(metrics)  # 1000 pixels > 16 x 16: skipped
    assert {"log_noise_factor_10", "log_noise_factor_half"} <= set(metrics)  # the encoder's judgement, per context
    assert metrics["steps"] == 3 and 5 < metrics["psnr_half"] < 40
    assert (run / "completions.png").is_file() and (run / "config.json").is_file()
    assert list(run.glob("events.out.tfevents.*"))


@pytest.mark.parametrize("model", [TINY_PRIOR, [*TINY_HYPERNET, "--encoder", "cnn", "--hypernet", "light",
                                                "--target-pixels", "50", "--no-flip", "--workers", "2"]])
def test_resume_ends_with_the_same_weights(cli, tmp_path, face_folder, model):
    common = ["train", "prior", *model, "--data", face_folder, "--val-fraction", "0.25", "--summary-every", "2"]
    assert cli(*common, "--steps", "4", "--out", tmp_path / "straight")[0] == 0
    assert cli(*common, "--steps", "2", "--out", tmp_path / "resumed")[0] == 0
    assert cli(*common, "--steps", "4", "--out", tmp_path / "resumed", "--resume")[0] == 0
    straight, _ = load_checkpoint(tmp_path / "straight" / "checkpoint.safetensors")
    resumed, _ = load_checkpoint(tmp_path / "resumed" / "checkpoint.safetensors")
    assert resumed["step"] == 4
    for name, tensor in straight["model"].items():
        torch.testing.assert_close(resumed["model"][name], tensor, atol=0, rtol=0, msg=name)


@pytest.mark.parametrize("budget", ["--minutes", "--cpu-minutes"])
def test_minutes_budget_stops_early(cli, tmp_path, budget):
    code, out, _ = cli("train", "prior", *TINY_PRIOR, "--steps", "100000", budget, "0.0001", "--out", tmp_path)
    assert code == 0
    state, _ = load_checkpoint(tmp_path / "checkpoint.safetensors")
    assert 1 <= state["step"] < 100000
    assert json.loads((tmp_path / "metrics.json").read_text())["steps"] == state["step"]


def test_the_cpu_budget_counts_this_process_only():
    import time

    from hypersiren.engine import EngineConfig, _budget_spent

    cpu = EngineConfig(cpu_minutes=1.0)
    assert not _budget_spent(cpu, time.perf_counter() - 3600, time.process_time())  # an hour waiting for the CPU
    assert _budget_spent(cpu, time.perf_counter(), time.process_time() - 61)
    assert _budget_spent(EngineConfig(minutes=1.0), time.perf_counter() - 61, time.process_time())
    assert not _budget_spent(EngineConfig(), time.perf_counter() - 3600, time.process_time() - 3600)


def test_train_prior_bad_options_are_one_line_errors(cli, tmp_path):
    code, _, err = cli("train", "prior", *TINY_PRIOR, "--data", tmp_path / "missing", "--out", tmp_path / "run")
    assert code == 2 and err.startswith("hypersiren: error:") and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_complete_cli(cli, tmp_path, tiny_prior_checkpoint):
    image = tmp_path / "face.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (30, 40, 3), dtype=np.uint8)).save(image)
    mask = tmp_path / "mask.png"
    Image.fromarray(np.tile(np.uint8([0, 255]), (30, 15))).save(mask)  # known columns, mask of the image's size
    for context in (["--pixels", "20"], ["--half"], ["--mask", mask]):
        out = tmp_path / f"out{len(context)}{context[0]}.png"
        code, stdout, err = cli("complete", "--checkpoint", tiny_prior_checkpoint, "--image", image, *context,
                                "--out", out, "--resolution", "24")
        assert code == 0, err
        assert "not square" in stdout  # 30 x 40: centre-cropped, with a note
        assert Image.open(out).size == (3 * 24 + 2 * 2, 24)  # context | completion | ground truth


def test_complete_cli_bad_inputs(cli, tmp_path, tiny_prior_checkpoint):
    image = tmp_path / "face.png"
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(image)
    black = tmp_path / "black.png"
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(black)
    other = tmp_path / "fit.safetensors"
    save_checkpoint(other, {"model": {}}, {"kind": "fit/image", "model": {}})
    cases = [
        (["--checkpoint", other, "--image", image, "--half"], "expected a 'prior/' checkpoint"),
        (["--checkpoint", tiny_prior_checkpoint, "--image", image, "--mask", black], "no known pixel"),
        (["--checkpoint", tiny_prior_checkpoint, "--image", tmp_path / "nope.png", "--half"], "image not found"),
        (["--checkpoint", tiny_prior_checkpoint, "--image", image, "--mask", tmp_path / "nope.png"], "mask picture not found"),
        (["--checkpoint", tiny_prior_checkpoint, "--image", image, "--pixels", "1000"], "impossible"),
    ]
    for args, message in cases:
        code, _, err = cli("complete", *args, "--out", tmp_path / "out.png")
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "out.png").exists()


def test_eval_prior_cli(cli, tmp_path, tiny_prior_checkpoint, face_folder):
    code, out, err = cli("eval", "prior", "--checkpoint", tiny_prior_checkpoint, "--data", face_folder,
                         "--out", tmp_path / "eval", "--no-progress")
    assert code == 0, err
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert set(metrics) == {"10", "100", "half", "full"}  # every image of the folder, 1000 skipped at 16 x 16
    assert "paper" in (tmp_path / "eval" / "table.md").read_text()
    assert (tmp_path / "eval" / "completions.png").is_file() and "PSNR" in out


def test_demo_runs_end_to_end(cli, tmp_path):
    from hypersiren.cli.demo import mean_face_psnr
    from hypersiren.data.faces import load_faces

    code, out, err = cli("demo", "--steps", "2", "--batch-size", "4", "--out", tmp_path / "demo", "--no-progress")
    assert code == 0, err
    assert "training a basis prior on 90 faces" in out  # the default method
    mean_face = mean_face_psnr(load_faces(None, "train", 32, progress=False), load_faces(None, "val", 32, progress=False))
    row = next(line.split() for line in out.splitlines() if line.startswith("100 "))
    assert float(row[3]) == pytest.approx(mean_face, abs=0.006) and float(row[4]) == pytest.approx(float(row[1]) - mean_face,
                                                                                                 abs=0.011)
    assert f"tensorboard --logdir {tmp_path / 'demo'}" in out and "half" in out
    assert (tmp_path / "demo" / "eval" / "completions.png").is_file()
    assert (tmp_path / "demo" / "train" / "checkpoint.safetensors").is_file()
    assert list((tmp_path / "demo" / "train").glob("events.out.tfevents.*"))


def test_the_mean_face_baseline_is_the_psnr_of_the_training_mean():
    import torch

    from hypersiren.cli.demo import mean_face_psnr

    train = torch.stack([torch.full((3, 4, 4), 0.4), torch.full((3, 4, 4), 0.6)])  # mean 0.5
    held_out = torch.stack([torch.full((3, 4, 4), 0.6), torch.full((3, 4, 4), 0.5 + 0.01)])  # MSE 0.01 and 1e-4
    assert mean_face_psnr(train, held_out) == pytest.approx((20 + 40) / 2)
    assert mean_face_psnr((train * 255).round().to(torch.uint8), held_out) == pytest.approx(30, abs=0.01)


@pytest.mark.parametrize("preset, method", [([], "hypernet"), (["--fast"], "hypernet"), (["--basis"], "basis")])
def test_celeba_prior_script_trains_its_presets(tmp_path, capsys, face_folder, preset, method):
    import runpy
    from pathlib import Path

    from hypersiren.tasks.face_prior import BASIS, FAST, PAPER

    script = Path(__file__).resolve().parents[1] / "train" / "celeba_prior.py"
    main = runpy.run_path(str(script), run_name="celeba_prior")["main"]
    tiny = TINY_PRIOR if method == "basis" else TINY_HYPERNET[2:]  # the preset picks the method
    out = tmp_path / "run"
    args = [*preset, *tiny, "--data", str(face_folder), "--val-fraction", "0.25", "--steps", "2", "--workers", "0",
            "--out", str(out)]
    assert main(args) == 0, capsys.readouterr().err
    state, meta = load_checkpoint(out / "checkpoint.safetensors")
    expected = {(): PAPER, ("--fast",): FAST, ("--basis",): BASIS}[tuple(preset)]
    assert meta["model"]["method"] == method and state["step"] == 2
    assert meta["config"]["flip"] == expected.flip and meta["config"]["engine"]["lr"] == expected.engine.lr
    assert meta["config"]["target_pixels"] == expected.target_pixels
    assert main(["--fast", "--basis", "--data", str(face_folder), "--out", str(tmp_path / "both")]) == 2
    assert "--fast and --basis" in capsys.readouterr().err


def test_context_trust_script(tmp_path, capsys, tiny_prior_checkpoint, face_folder):
    import runpy
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "eval" / "context_trust.py"
    main = runpy.run_path(str(script), run_name="context_trust")["main"]
    out = tmp_path / "trust"
    assert main(["--checkpoint", str(tiny_prior_checkpoint), "--pixels", "10,100,1000", "--eval-images", "5",
                 "--out", str(out)]) == 0
    result = json.loads((out / "trust.json").read_text())
    assert result["faces"] == 5  # 1000 pixels do not fit 16 x 16 faces: left out
    assert set(result["contexts"]) == {"10 random pixels", "100 random pixels", "top half", "bottom half",
                                       "left half", "right half"}
    assert all(row["t_min"] <= row["t_mean"] <= row["t_max"] and row["lambda_median"] > 0
               for row in result["contexts"].values())
    assert result["contexts"]["top half"]["known"] == 128 and "| top half | 128 |" in (out / "trust.md").read_text()
    assert result["contexts"]["top half"]["spread_mean"] > result["contexts"]["100 random pixels"]["spread_mean"] + 1
    from hypersiren.prior import HyperSiren  # the lambda of the checkpoint's calibration, which completions use
    trust = HyperSiren.load(tiny_prior_checkpoint).prior.calibrated_trust.tolist()
    assert [result["trust"][k] for k in ("a", "c", "e", "beta")] == pytest.approx(trust)
    hypernet = tmp_path / "hypernet"
    from hypersiren.cli import main as cli_main
    assert cli_main(["train", "prior", *TINY_HYPERNET, "--data", str(face_folder), "--val-fraction", "0.25",
                     "--steps", "1", "--out", str(hypernet)]) == 0
    capsys.readouterr()
    assert main(["--checkpoint", str(hypernet / "checkpoint.safetensors"), "--out", str(tmp_path / "bad")]) == 2
    assert "holds a hypernet prior" in capsys.readouterr().err
