"""Context masks: exact pixel counts, determinism, regions, structured masks, inference specs, spread."""
import numpy as np
import pytest
import torch

from hypersiren.data.context import (context_spread, evaluation_masks, half_masks, mask_from_spec,
                                     random_pixel_masks, structured_masks, training_masks)
from hypersiren.errors import InputError


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_random_pixel_masks_exact_counts_and_shapes():
    masks = random_pixel_masks(5, 8, 17, gen())
    assert masks.shape == (5, 8, 8) and masks.dtype == torch.bool
    assert masks.sum(dim=(1, 2)).tolist() == [17] * 5
    per_sample = torch.tensor([1, 2, 3, 64])
    assert random_pixel_masks(4, 8, per_sample, gen()).sum(dim=(1, 2)).tolist() == [1, 2, 3, 64]


def test_random_pixel_masks_are_deterministic_and_vary_across_samples():
    a, b = random_pixel_masks(3, 16, 10, gen(3)), random_pixel_masks(3, 16, 10, gen(3))
    assert torch.equal(a, b)
    assert not torch.equal(a[0], a[1])
    assert not torch.equal(a, random_pixel_masks(3, 16, 10, gen(4)))


def test_random_pixel_masks_cover_every_pixel_uniformly():
    counts = random_pixel_masks(2000, 4, 4, gen()).float().mean(dim=0)
    assert torch.allclose(counts, torch.full((4, 4), 0.25), atol=0.04)


@pytest.mark.parametrize("count", [0, 65, -1])
def test_random_pixel_masks_reject_impossible_counts(count):
    with pytest.raises(InputError, match="expected 1 to 64 pixels"):
        random_pixel_masks(2, 8, count)


def test_half_masks_regions():
    top, bottom = half_masks(2, 6, "top"), half_masks(1, 6, "bottom")[0]
    left, right = half_masks(1, 6, "left")[0], half_masks(1, 6, "right")[0]
    assert top.shape == (2, 6, 6) and top[:, :3].all() and not top[:, 3:].any()
    assert bottom[3:].all() and not bottom[:3].any()
    assert left[:, :3].all() and not left[:, 3:].any()
    assert right[:, 3:].all() and not right[:, :3].any()
    odd = half_masks(1, 5, "top")[0]
    assert odd[:2].all() and not odd[2:].any()
    with pytest.raises(InputError, match="top, bottom, left, right"):
        half_masks(1, 4, "middle")


def test_evaluation_masks_settings():
    assert evaluation_masks("full", 2, 8).all()
    assert torch.equal(evaluation_masks("half", 2, 8), half_masks(2, 8, "top"))
    for setting in ("10", "100"):
        assert evaluation_masks(setting, 3, 16, gen()).sum(dim=(1, 2)).tolist() == [int(setting)] * 3
    assert torch.equal(evaluation_masks("10", 3, 16, gen(7)), evaluation_masks("10", 3, 16, gen(7)))
    with pytest.raises(InputError, match="unknown context setting 'quarter'"):
        evaluation_masks("quarter", 1, 8)
    with pytest.raises(InputError, match="1 to 64"):
        evaluation_masks("1000", 1, 8)


def test_structured_masks_contain_every_kind_and_are_never_empty():
    masks = structured_masks(300, 16, gen())
    counts = masks.sum(dim=(1, 2))
    assert (counts >= 1).all()
    halves = [half_masks(1, 16, side)[0] for side in ("top", "bottom", "left", "right")]
    is_half = torch.stack([(masks == h).flatten(1).all(dim=1) for h in halves]).any(dim=0)
    # a block (known or a hole) is a rectangle of the mask's values: known pixels of block masks fill their
    # bounding box, or missing pixels do
    def fills_box(m):
        ys, xs = m.nonzero(as_tuple=True)
        return len(ys) > 0 and len(ys) == (ys.max() - ys.min() + 1) * (xs.max() - xs.min() + 1)
    is_block = torch.tensor([fills_box(m) or fills_box(~m) for m in masks]) & ~is_half
    is_other = ~is_half & ~is_block  # free-form strokes
    for share in (is_half, is_block, is_other):
        assert 0.2 < share.float().mean() < 0.47
    assert (counts[is_other] > 16 * 16 * 0.25).all()  # strokes leave most of the image known


def test_training_masks_mix_and_determinism():
    masks = training_masks(400, 32, gen(), min_pixels=10, max_pixels=200, large_fraction=0.25,
                           structured_fraction=0.25)
    assert torch.equal(masks, training_masks(400, 32, gen(), min_pixels=10, max_pixels=200))
    counts = masks.sum(dim=(1, 2))
    assert (counts >= 1).all()
    paper = ((counts >= 10) & (counts <= 200)).float().mean()
    assert paper > 0.45  # 50 % paper-style samples, plus some large/structured ones that fall in range
    assert (counts > 200).float().mean() > 0.15
    only_random = training_masks(200, 32, gen(), large_fraction=0.0, structured_fraction=0.0)
    only_counts = only_random.sum(dim=(1, 2))
    assert only_counts.min() >= 10 and only_counts.max() <= 200 and only_counts.float().std() > 20


def test_training_masks_small_images_and_bad_options():
    masks = training_masks(50, 4, gen())  # 16 pixels < max_pixels: counts clip to the image
    assert (masks.sum(dim=(1, 2)) >= 1).all() and (masks.sum(dim=(1, 2)) <= 16).all()
    with pytest.raises(InputError, match="min_pixels <= max_pixels"):
        training_masks(2, 8, min_pixels=20, max_pixels=10)
    with pytest.raises(InputError, match="sum to at most 1"):
        training_masks(2, 8, large_fraction=0.7, structured_fraction=0.5)


def test_masks_move_to_the_requested_device():
    assert training_masks(3, 8, gen(), device="cpu").device.type == "cpu"
    assert random_pixel_masks(3, 8, 5, device="meta").device.type == "meta"


def test_mask_from_spec_forms(tmp_path):
    from PIL import Image

    assert mask_from_spec(5, 3, 8, gen()).sum(dim=(1, 2)).tolist() == [5] * 3
    assert mask_from_spec("12", 2, 8, gen()).sum(dim=(1, 2)).tolist() == [12] * 2
    assert torch.equal(mask_from_spec("half", 2, 8), half_masks(2, 8, "top"))
    assert torch.equal(mask_from_spec("left", 2, 8), half_masks(2, 8, "left"))
    assert mask_from_spec("full", 1, 8).all()
    array = np.zeros((8, 8), dtype=bool)
    array[2, 3] = True
    from_numpy = mask_from_spec(array, 4, 8)
    assert from_numpy.shape == (4, 8, 8) and from_numpy.sum() == 4 and from_numpy[:, 2, 3].all()
    batch = torch.zeros(2, 8, 8, dtype=torch.int64)
    batch[1, 0, 0] = batch[0, 7, 7] = 1
    assert torch.equal(mask_from_spec(batch, 2, 8), batch.bool())
    picture = np.zeros((16, 16), dtype=np.uint8)
    picture[:8] = 255
    Image.fromarray(picture).save(tmp_path / "mask.png")
    assert torch.equal(mask_from_spec(tmp_path / "mask.png", 1, 8), half_masks(1, 8, "top"))


@pytest.mark.parametrize("spec, message", [
    (np.zeros((8, 8), dtype=bool), "no known pixel"),
    (np.full((8, 8), 0.5), "only 0 and 1"),
    (np.ones((4, 4), dtype=bool), r"expected \(8, 8\) or \(2, 8, 8\)"),
    (np.ones((3, 8, 8), dtype=bool), r"expected \(8, 8\) or \(2, 8, 8\)"),
    ("quarter", "unknown context 'quarter'"),
    (2.5, "not understood"),
    (True, "not a mask"),
    (100, "1 to 64"),
])
def test_mask_from_spec_rejects_bad_input(spec, message):
    with pytest.raises(InputError, match=message):
        mask_from_spec(spec, 2, 8)


def test_context_spread_closed_forms():
    one = torch.tensor([[[False, True, False]]])  # pixel centres at -1/2, 0, 1/2 image widths: mean distance 1/3
    full, empty = torch.ones(2, 8, 8, dtype=torch.bool), torch.zeros(1, 8, 8, dtype=torch.bool)
    torch.testing.assert_close(context_spread(one), torch.tensor([float(np.log(2 / 3 + 0.1))]))
    corners = torch.zeros(1, 2, 2, dtype=torch.bool)
    corners[0, 0, 0] = corners[0, 1, 1] = True  # neighbours 1 image width apart: two pixels at 0, two at 1
    torch.testing.assert_close(context_spread(corners), torch.tensor([float(np.log(2 * np.sqrt(2) / 2 + 0.1))]))
    torch.testing.assert_close(context_spread(full), torch.full((2,), float(np.log(0.1))))
    assert context_spread(empty).tolist() == [0.0]


def test_context_spread_tells_a_known_half_from_as_many_scattered_pixels():
    half = half_masks(4, 32, "top")
    scattered = random_pixel_masks(4, 32, 512, gen())
    few = random_pixel_masks(4, 32, 10, gen())
    assert context_spread(half).min() > 1.5 and context_spread(scattered).abs().max() < 0.5
    assert context_spread(few).abs().max() < 0.7  # scattered pixels give ~0 whatever their count


def test_context_spread_of_large_masks_is_measured_on_32_cells_a_side():
    coarse = random_pixel_masks(3, 32, 40, gen())
    fine = coarse.repeat_interleave(2, dim=1).repeat_interleave(2, dim=2)  # each known pixel a 2x2 block at 64
    counts = fine.flatten(1).sum(dim=1).float()
    distance = (torch.exp(context_spread(coarse)) - 0.1) / (2 * (counts / 4).sqrt())  # the mean distance
    torch.testing.assert_close(context_spread(fine), torch.log(2 * counts.sqrt() * distance + 0.1))
