"""HyperSiren: load, complete (every input kind), encode/render, bad inputs."""
import numpy as np
import pytest
import torch
from PIL import Image

import hypersiren
from hypersiren.checkpoint import save_checkpoint
from hypersiren.errors import CheckpointError, InputError
from hypersiren.prior import HyperSiren, downsample_context


@pytest.fixture(scope="module")
def prior(tiny_prior_checkpoint):
    return hypersiren.HyperSiren.load(tiny_prior_checkpoint)


def face_array(size=20, seed=0) -> np.ndarray:
    """(size, size, 3) uint8 picture with structure (a gradient and a disc)."""
    y, x = np.mgrid[:size, :size] / (size - 1)
    rng = np.random.default_rng(seed)
    disc = ((y - 0.5) ** 2 + (x - 0.5) ** 2 < 0.1).astype(float)
    image = np.stack([x, y, disc], -1) * 0.8 + 0.2 * rng.random((size, size, 3))
    return (image * 255).round().astype(np.uint8)


def test_load_reads_method_resolution_and_weights(prior, tiny_prior_checkpoint):
    assert isinstance(prior, HyperSiren)
    assert prior.resolution == 16
    assert prior.meta["kind"] == "prior/basis"
    assert prior.prior.config.basis_features == 24


def test_every_input_kind_round_trips(prior):
    array = face_array()
    reference = prior.complete(torch.from_numpy(array).permute(2, 0, 1).float() / 255, mask="half")
    assert isinstance(reference, torch.Tensor) and reference.shape == (3, 20, 20) and reference.dtype == torch.float32
    assert 0 <= reference.min() and reference.max() <= 1

    pil = prior.complete(Image.fromarray(array), mask="half")
    assert isinstance(pil, Image.Image) and pil.mode == "RGB" and pil.size == (20, 20)
    np.testing.assert_allclose(np.asarray(pil) / 255, reference.permute(1, 2, 0).numpy(), atol=1 / 255 + 1e-6)

    uint8 = prior.complete(array, mask="half")
    assert uint8.dtype == np.uint8 and uint8.shape == (20, 20, 3)
    np.testing.assert_array_equal(uint8, np.asarray(pil))
    floats = prior.complete(array.astype(np.float64) / 255, mask="half")
    assert floats.dtype == np.float64 and floats.shape == (20, 20, 3)  # the input's dtype
    np.testing.assert_allclose(floats, reference.permute(1, 2, 0).numpy(), atol=1e-5)

    tensor_uint8 = prior.complete(torch.from_numpy(array).permute(2, 0, 1), mask="half")
    assert tensor_uint8.dtype == torch.uint8 and tensor_uint8.shape == (3, 20, 20)
    bigger = prior.complete(array, mask="half", resolution=40)
    assert bigger.shape == (40, 40, 3)


def test_batches_equal_single_images(prior):
    arrays = np.stack([face_array(seed=0), face_array(seed=1)])
    batch = prior.complete(arrays, mask="half")
    assert batch.shape == (2, 20, 20, 3)
    for i in range(2):
        np.testing.assert_array_equal(batch[i], prior.complete(arrays[i], mask="half"))
    tensors = prior.complete(torch.from_numpy(arrays).permute(0, 3, 1, 2).float() / 255, mask="half")
    assert tensors.shape == (2, 3, 20, 20)
    listed = prior.complete([Image.fromarray(a) for a in arrays], mask="half")
    assert isinstance(listed, list) and len(listed) == 2 and listed[1].size == (20, 20)
    np.testing.assert_array_equal(np.asarray(listed[1]), batch[1])


def test_gray_and_rgba_are_converted(prior):
    array = face_array()
    gray = Image.fromarray(array).convert("L")
    gray_result = prior.complete(gray, mask="half")
    assert gray_result.mode == "RGB"
    as_rgb = prior.complete(np.repeat(np.asarray(gray)[..., None], 3, axis=-1), mask="half")
    np.testing.assert_array_equal(np.asarray(gray_result), as_rgb)
    assert prior.complete(np.asarray(gray), mask="half").shape == (20, 20, 3)  # (H, W) gray array -> RGB
    rgba = np.concatenate([array, np.full((20, 20, 1), 7, np.uint8)], axis=-1)
    np.testing.assert_array_equal(prior.complete(rgba, mask="half"), prior.complete(array, mask="half"))


def test_non_square_is_centre_cropped_with_a_warning(prior):
    wide = np.zeros((20, 30, 3), np.uint8)
    wide[:, 5:25] = face_array()
    with pytest.warns(UserWarning, match="not square"):
        result = prior.complete(wide, mask="half")
    np.testing.assert_array_equal(result, prior.complete(face_array(), mask="half"))


def test_random_pixels_are_seeded_and_unknown_pixels_are_never_read(prior):
    array = face_array()
    once = prior.complete(array, num_pixels=30, seed=3)
    np.testing.assert_array_equal(once, prior.complete(array, num_pixels=30, seed=3))
    mask = np.zeros((20, 20), bool)
    mask[:, :10] = True  # a mask at the input's size: downsampled to the prior's 16 x 16
    changed = array.copy()
    changed[:, 10:] = 255 - changed[:, 10:]  # every unknown pixel (no known low-resolution pixel covers them)
    np.testing.assert_array_equal(prior.complete(array, mask=mask), prior.complete(changed, mask=mask))


def test_downsample_context_is_a_masked_mean():
    images = torch.arange(16.0).reshape(1, 1, 4, 4).expand(1, 3, 4, 4) / 16
    masks = torch.zeros(1, 4, 4, dtype=torch.bool)
    masks[0, 0, 0] = masks[0, 1, 1] = masks[0, 3, 3] = True
    small, known = downsample_context(images, masks, 2)
    assert known.tolist() == [[[True, False], [False, True]]]
    assert small[0, 0, 0, 0].item() == pytest.approx((0 + 5) / 2 / 16)
    assert small[0, 0, 1, 1].item() == pytest.approx(15 / 16)


def test_encode_and_render_at_any_resolution(prior):
    array = face_array()
    latent = prior.encode(array, mask="half")
    assert latent.shape == (1, prior.prior.latent_dim)
    rendered = prior.render(latent, 20)
    assert rendered.shape == (1, 3, 20, 20)
    torch.testing.assert_close(rendered[0], prior.complete(torch.from_numpy(array).permute(2, 0, 1), mask="half").float() / 255,
                               atol=1 / 255 + 1e-6, rtol=0)
    assert prior.render(latent).shape == (1, 3, 16, 16)
    assert prior.render(latent, 64).shape == (1, 3, 64, 64)


@pytest.mark.parametrize("image, context, message", [
    (face_array(), dict(mask=np.ones((7, 7), bool)), "expected the image's 20x20 or the prior's 16x16"),
    (face_array(), dict(mask=np.zeros((16, 16), bool)), "no known pixel"),
    (face_array(), dict(mask=np.zeros((20, 20), bool)), "no known pixel"),
    (face_array(), dict(num_pixels=0), "impossible"),
    (face_array(), dict(), "exactly one context"),
    (face_array(), dict(mask="half", num_pixels=5), "exactly one context"),
    (np.full((20, 20, 3), np.nan, np.float32), dict(mask="half"), "NaN"),
    (np.full((20, 20, 3), 2.0, np.float32), dict(mask="half"), "expected floats in \\[0, 1\\]"),
    (np.zeros((20, 20, 5), np.uint8), dict(mask="half"), "5 channels"),
    (np.zeros((20, 20, 3), np.int64), dict(mask="half"), "dtype"),
    ("face.png", dict(mask="half"), "cannot read an image from a str"),
    ([], dict(mask="half"), "empty list"),
    ([face_array(20), face_array(24)], dict(mask="half"), "share one size"),
])
def test_bad_inputs_are_one_line_errors(prior, image, context, message):
    with pytest.raises(InputError, match=message):
        prior.complete(image, **context)


def test_checkpoint_of_another_kind_is_refused(tmp_path):
    other = tmp_path / "fit.safetensors"
    save_checkpoint(other, {"model": {"w": torch.zeros(2)}}, {"kind": "fit/image", "model": {}})
    with pytest.raises(CheckpointError, match="expected a 'prior/' checkpoint"):
        HyperSiren.load(other)
    unknown = tmp_path / "unknown.safetensors"
    save_checkpoint(unknown, {"model": {}}, {"kind": "prior/teleport", "model": {"method": "teleport"}})
    with pytest.raises(CheckpointError, match="does not know"):
        HyperSiren.load(unknown)
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError):
        HyperSiren.load(garbage)
