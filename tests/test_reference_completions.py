"""The completions without a SIREN that comparisons read the priors against: the pixel Gaussian's closed form,
what it recovers, and its errors."""
import pytest
import torch

from hypersiren.errors import InputError
from hypersiren.reference_completions import PixelGaussian


def _family(count: int, resolution: int = 6, seed: int = 0) -> torch.Tensor:
    """Faces (N, 3, R, R) in [0, 1] in a 2-dimensional family per channel: a base plus two patterns shared by the
    channels, with amplitudes of each channel's own."""
    generator = torch.Generator().manual_seed(seed)
    base = torch.rand(3, resolution, resolution, generator=torch.Generator().manual_seed(10)) * 0.2
    first, second = (torch.rand(1, resolution, resolution, generator=torch.Generator().manual_seed(k)) * 0.2
                     for k in (11, 12))
    amplitudes = torch.rand(count, 2, 3, 1, 1, generator=generator)
    return (0.3 + base + amplitudes[:, 0] * first + amplitudes[:, 1] * second).clamp(0, 1)


def test_the_completion_is_the_gaussian_conditional_mean():
    faces = _family(40)
    gaussian = PixelGaussian(faces, noise=0.05, shrinkage=0.1, mirror=False)
    samples = faces.double().flatten(2)  # (N, 3, P): each channel about its own mean, the covariance pooled
    centred = (samples - samples.mean(dim=0)).transpose(0, 1).reshape(-1, 36)
    covariance = centred.T @ centred / len(centred)
    scale = covariance.diagonal().mean()
    covariance += 0.1 * scale * torch.eye(36, dtype=covariance.dtype)
    image = _family(1, seed=5)
    known = torch.zeros(36, dtype=torch.bool)
    known[[0, 7, 20, 33]] = True
    completed = gaussian.complete(image, known.reshape(1, 6, 6))
    mean = samples.mean(dim=0)
    gain = covariance[:, known] @ torch.linalg.inv(covariance[known][:, known] + 0.05 * scale * torch.eye(4))
    expected = mean + (gain @ (image.double().flatten(2)[0, :, known] - mean[:, known]).T).T
    torch.testing.assert_close(completed, expected.float().reshape(1, 3, 6, 6).clamp(0, 1))


def test_a_few_pixels_recover_a_face_of_the_training_faces_family():
    gaussian = PixelGaussian(_family(200), noise=1e-4, shrinkage=1e-4, mirror=False)
    test = _family(4, seed=7)
    masks = torch.zeros(4, 6, 6, dtype=torch.bool)
    masks[:, [0, 2, 5], [1, 4, 3]] = True  # 3 of 36 pixels: two amplitudes per channel to find
    error = (gaussian.complete(test, masks) - test).pow(2).mean()
    mean_error = (gaussian.mean_face() - test).pow(2).mean()
    assert error < 1e-3 * mean_error


def test_faces_sharing_a_mask_share_a_solve_with_the_same_result():
    gaussian = PixelGaussian(_family(30))
    images = _family(5, seed=3)
    masks = torch.rand(5, 6, 6, generator=torch.Generator().manual_seed(0)) < 0.3
    masks[1] = masks[3] = masks[0]
    masks[4] = False  # no context: the mean face
    together = gaussian.complete(images, masks)
    one_by_one = torch.cat([gaussian.complete(images[i:i + 1], masks[i:i + 1]) for i in range(5)])
    torch.testing.assert_close(together, one_by_one)
    torch.testing.assert_close(together[4], gaussian.mean_face().clamp(0, 1))


def test_uint8_faces_and_mirror_images():
    faces = _family(10)
    as_bytes = (faces * 255).round().to(torch.uint8)
    gaussian = PixelGaussian(as_bytes)
    torch.testing.assert_close(gaussian.mean_face(), (as_bytes.double() / 255).mean(0).add(
        (as_bytes.double() / 255).flip(-1).mean(0)).div(2).float())  # the mirror images count too


def test_bad_inputs_get_one_line_errors():
    with pytest.raises(InputError, match="at most 64x64"):
        PixelGaussian(torch.zeros(2, 3, 65, 65))
    with pytest.raises(InputError, match="at least 2 training faces"):
        PixelGaussian(torch.zeros(1, 3, 6, 6))
    with pytest.raises(InputError, match=r"completes \(B, 3, 6, 6\) faces"):
        PixelGaussian(_family(4)).complete(torch.zeros(1, 3, 8, 8), torch.ones(1, 8, 8, dtype=torch.bool))
