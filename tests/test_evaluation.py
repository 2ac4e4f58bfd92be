"""The completion evaluation protocol: closed-form scores, seeded contexts, output files."""
import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from hypersiren.data.context import half_masks
from hypersiren.errors import InputError
from hypersiren.evaluation import (PAPER_TABLE1, PSNR_CAP_DB, SETTINGS, evaluate_completion, example_masks,
                                   write_evaluation)
from hypersiren.metrics import ssim

R = 8
SMALL = ("10", "50", "half", "full")


def faces(count=12, seed=0):
    """Images in [0.2, 0.8] so offsets of up to 0.2 stay inside [0, 1]."""
    return 0.2 + 0.6 * torch.rand(count, 3, R, R, generator=torch.Generator().manual_seed(seed))


class Recorder:
    """A completer that returns ``truth + offsets`` for the images it is asked about, in evaluation order,
    and records the masks and inputs it saw."""

    def __init__(self, truth, offsets=0.0):
        self.truth, self.offsets, self.position = truth, torch.as_tensor(offsets).reshape(-1, 1, 1, 1), 0
        self.masks, self.inputs = [], []

    def __call__(self, images, masks):
        rows = torch.arange(self.position, self.position + len(images)) % len(self.truth)
        self.position += len(images)
        self.masks.append(masks.clone())
        self.inputs.append(images.clone())
        offsets = self.offsets[rows] if self.offsets.numel() > 1 else self.offsets
        return self.truth[rows] + offsets


def test_perfect_completer_scores_zero_error_and_finite_psnr():
    truth = faces()
    metrics, examples = evaluate_completion(Recorder(truth), truth, settings=SMALL, batch_size=5, progress=False)
    assert list(metrics) == list(SMALL)
    for values in metrics.values():
        assert values == {"mse": 0.0, "psnr": PSNR_CAP_DB, "ssim": pytest.approx(1.0)}
    assert json.loads(json.dumps(metrics, allow_nan=False))  # no Infinity/NaN in what gets written


def test_constant_offset_gives_known_mse_and_psnr():
    truth = faces()
    metrics, _ = evaluate_completion(Recorder(truth, 0.1), truth, settings=SMALL, batch_size=5, progress=False)
    for values in metrics.values():
        assert values["mse"] == pytest.approx(0.01, rel=1e-6)
        assert values["psnr"] == pytest.approx(20.0, rel=1e-6)
        assert values["ssim"] < 1


def test_psnr_is_the_mean_of_per_image_psnrs():
    truth = faces(2)
    metrics, _ = evaluate_completion(Recorder(truth, [0.1, 0.01]), truth, settings=("full",), progress=False)
    assert metrics["full"]["mse"] == pytest.approx((0.01 + 0.0001) / 2, rel=1e-6)
    assert metrics["full"]["psnr"] == pytest.approx((20 + 40) / 2, rel=1e-6)


def test_completer_sees_only_the_context():
    truth = faces(6)
    recorder = Recorder(truth)
    metrics, _ = evaluate_completion(lambda images, masks: recorder(images, masks) * 0 + images, truth,
                                     settings=("half", "full", "10"), batch_size=4, progress=False)
    # returning the input scores the hidden pixels as zeros: closed form for the top half
    bottom = truth[:, :, R // 2 :]
    assert metrics["half"]["mse"] == pytest.approx(float((bottom**2).sum(dim=(1, 2, 3)).mean() / (3 * R * R)), rel=1e-6)
    assert metrics["full"]["mse"] == 0.0
    for images, masks in zip(recorder.inputs, recorder.masks):
        assert (images[~masks[:, None].expand_as(images)] == 0).all()
    assert all(m.sum(dim=(1, 2)).eq(10).all() for m in recorder.masks[-2:])


def test_contexts_are_seeded_independent_of_batch_size_and_match_example_masks():
    truth = faces(20)
    runs = {}
    for seed, batch_size in ((0, 7), (0, 50), (1, 7)):
        recorder = Recorder(truth)
        evaluate_completion(recorder, truth, settings=("10", "half"), seed=seed, batch_size=batch_size, progress=False)
        per_setting = torch.cat(recorder.masks).split(len(truth))
        runs[seed, batch_size] = per_setting
    assert all(torch.equal(a, b) for a, b in zip(runs[0, 7], runs[0, 50]))
    assert not torch.equal(runs[0, 7][0], runs[1, 7][0])
    assert torch.equal(runs[0, 7][1], half_masks(20, R, "top"))
    first = example_masks(("10", "half"), 5, R, seed=0)
    assert torch.equal(first["10"], runs[0, 7][0][:5]) and torch.equal(first["half"], runs[0, 7][1][:5])


def test_examples_hold_the_first_completions_and_their_masks():
    truth = faces(10)
    _, examples = evaluate_completion(Recorder(truth, 0.05), truth, settings=("10", "full"), batch_size=3,
                                      num_examples=4, progress=False)
    assert set(examples) == {"10", "full"} and examples.seed == 0 and examples.count == 10
    assert torch.allclose(examples["10"], truth[:4] + 0.05)
    assert examples.masks["10"].shape == (4, R, R) and examples.masks["full"].all()


def test_bad_inputs_are_reported_before_or_instead_of_wrong_scores():
    truth = faces(4)
    never = lambda images, masks: pytest.fail("completer called despite bad settings")
    with pytest.raises(InputError, match="unknown context setting 'quarter'"):
        evaluate_completion(never, truth, settings=("10", "quarter"), progress=False)
    with pytest.raises(InputError, match="1 to 64 pixels"):
        evaluate_completion(never, truth, settings=SETTINGS, progress=False)  # 1000 pixels in an 8 x 8 image
    with pytest.raises(InputError, match=r"images must be \(N, 3, R, R\)"):
        evaluate_completion(never, truth[:, :1], settings=("10",), progress=False)
    with pytest.raises(InputError, match=r"images must be floats in \[0, 1\], got torch.uint8"):
        evaluate_completion(never, (truth * 255).to(torch.uint8), settings=("10",), progress=False)
    with pytest.raises(InputError, match=r"images must be floats in \[0, 1\]"):
        evaluate_completion(never, truth * 2, settings=("10",), progress=False)
    with pytest.raises(InputError, match=r"expected completions of shape \(4, 3, 8, 8\)"):
        evaluate_completion(lambda images, masks: images[:, :1], truth, settings=("10",), progress=False)
    with pytest.raises(InputError, match="NaN or Inf"):
        evaluate_completion(lambda images, masks: images * math.nan, truth, settings=("10",), progress=False)


@pytest.mark.parametrize("shape", [(3, 3, 32, 32), (2, 3, 8, 8), (2, 3, 4, 6)])
def test_ssim_matches_scikit_image(shape):
    from skimage.metrics import structural_similarity

    a = torch.rand(shape, generator=torch.Generator().manual_seed(0))
    b = (a + 0.1 * torch.randn(shape, generator=torch.Generator().manual_seed(1))).clamp(0, 1)
    side = min(shape[-2:])
    window = min(7, side if side % 2 else side - 1)
    expected = [structural_similarity(x.numpy(), y.numpy(), channel_axis=0, data_range=1, win_size=window)
                for x, y in zip(a, b)]
    assert torch.allclose(ssim(a, b), torch.tensor(expected, dtype=torch.float64), atol=1e-6)
    assert torch.allclose(ssim(a, a), torch.ones(len(a), dtype=torch.float64))


def test_ssim_keeps_the_numbers_of_the_earlier_torch_implementation():
    """Values the batched torch SSIM (hypersiren before it called scikit-image) gave on real pictures with noise:
    the evaluation protocol's numbers must not move."""
    from skimage import data

    earlier = {("camera", 0.05): 0.7306138712428598, ("camera", 0.2): 0.36642506042073164,
               ("astronaut", 0.05): 0.9122660013609017, ("astronaut", 0.2): 0.6094694015795382}
    rng = np.random.default_rng(0)
    pictures = {"camera": data.camera()[::8, ::8][None] / 255.0,
                "astronaut": data.astronaut()[::8, ::8].transpose(2, 0, 1) / 255.0}
    for (name, sigma), value in earlier.items():
        clean = pictures[name]
        noisy = np.clip(clean + sigma * rng.normal(size=clean.shape), 0, 1)
        assert float(ssim(torch.from_numpy(clean)[None], torch.from_numpy(noisy)[None])[0]) == pytest.approx(value, abs=1e-10)


def test_write_evaluation_files(tmp_path):
    truth = faces(6)
    settings = ("10", "half", "full")
    metrics, examples = evaluate_completion(Recorder(truth, 0.1), truth, settings=settings, seed=3,
                                            num_examples=2, progress=False)
    paths = write_evaluation(tmp_path / "eval", metrics, examples, truth)
    assert [p.name for p in paths] == ["metrics.json", "table.md", "completions.png"]
    written = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert set(written) == set(settings)
    assert all(set(v) == {"mse", "psnr", "ssim"} and v["mse"] == pytest.approx(0.01) for v in written.values())
    table = (tmp_path / "eval" / "table.md").read_text()
    assert "| top half | 32 | 0.0100 | 20.00 |" in table and "context seed 3" in table and "6 held-out faces" in table
    assert f"{PAPER_TABLE1['CNN encoder']['half']:.3f} | {PAPER_TABLE1['sine set encoder']['half']:.3f}" in table
    picture = np.asarray(Image.open(tmp_path / "eval" / "completions.png"))
    tile, pad, columns = 2 * R, 2, 2 * len(settings) + 1
    assert picture.shape == (14 + pad + 2 * tile + pad, columns * tile + (columns - 1) * pad, 3)
    # the "half" context tile of the first face: top half shows the face, bottom half is gray
    left = 2 * (tile + pad)
    top = 14 + pad
    context = picture[top : top + tile, left : left + tile]
    assert (context[tile // 2 :] == 128).all()
    expected = (truth[0, :, : R // 2].repeat_interleave(2, -1).repeat_interleave(2, -2) * 255).round().permute(1, 2, 0)
    assert np.abs(context[: tile // 2].astype(int) - expected.numpy().astype(int)).max() <= 1


def test_write_evaluation_with_explicit_masks_and_mismatched_settings(tmp_path):
    truth = faces(4)
    metrics, examples = evaluate_completion(Recorder(truth), truth, settings=("full",), progress=False)
    plain = {"full": examples["full"]}
    write_evaluation(tmp_path / "a", metrics, plain, truth)  # masks regenerated from the seed
    assert (tmp_path / "a" / "completions.png").is_file()
    with pytest.raises(InputError, match="examples cover settings"):
        write_evaluation(tmp_path / "b", {"10": metrics["full"]}, plain, truth)
    assert not (tmp_path / "b").exists()
