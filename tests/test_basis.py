"""The basis prior: its closed-form fit (against a direct solve and finite differences), its set transformer
(permutation and padding invariance, mixed context sizes), masking, training, checkpoints and the CLI."""
import numpy as np
import pytest
import torch

from hypersiren.data.context import context_spread, half_masks, random_pixel_masks
from hypersiren.data.grid import grid
from hypersiren.engine import make_optimizer
from hypersiren.nn.ridge import ridge_fit
from hypersiren.nn.set_transformer import SetTransformer
from hypersiren.priors import PRIORS
from hypersiren.priors.basis import BasisPrior, context_terms
from hypersiren.priors.inner_loop import padded_context
from tests.test_meta_priors import faces, random_masks

TINY = dict(hidden_features=16, hidden_layers=1, basis_features=24, encoder_latent=8, encoder_dim=16, queries=4,
            encoder_layers=1)


def _masks_with_counts(counts: list[int], points: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    masks = torch.zeros(len(counts), points, dtype=torch.bool)
    for row, count in enumerate(counts):
        masks[row, torch.randperm(points, generator=generator)[:count]] = True
    return masks


def test_ridge_fit_equals_the_direct_solution_in_every_regime():
    torch.manual_seed(0)
    points, dim = 64, 16
    features = torch.randn(points, dim, dtype=torch.float64)
    counts = [0, 1, 5, 8, 9, 31, 33, 63, 64]  # dual (<= d/2), primal from the known rows, primal from the unknown rows
    masks = _masks_with_counts(counts, points)
    residuals = torch.randn(len(counts), points, 3, dtype=torch.float64)
    lam = torch.rand(len(counts), dtype=torch.float64) + 0.1
    fitted = ridge_fit(features, masks, residuals, lam)
    for row, count in enumerate(counts):
        known = features[masks[row]]
        expected = torch.linalg.solve(known.T @ known + lam[row] * torch.eye(dim, dtype=torch.float64),
                                      known.T @ residuals[row][masks[row]])
        torch.testing.assert_close(fitted[row], expected, rtol=1e-9, atol=1e-9, msg=f"{count} known points")


def test_ridge_fit_never_reads_unknown_points_and_is_differentiable():
    torch.manual_seed(1)
    features = torch.randn(20, 6, dtype=torch.float64, requires_grad=True)
    masks = _masks_with_counts([2, 12, 19], 20)
    residuals = torch.randn(3, 20, 2, dtype=torch.float64, requires_grad=True)
    lam = torch.tensor([0.5, 1.0, 2.0], dtype=torch.float64, requires_grad=True)
    poisoned = residuals.detach().masked_fill(~masks[..., None], float("nan"))
    torch.testing.assert_close(ridge_fit(features, masks, poisoned, lam), ridge_fit(features, masks, residuals, lam))
    assert torch.autograd.gradcheck(lambda h, r, l: ridge_fit(h, masks, r, l), (features, residuals, lam))


def test_set_transformer_is_invariant_to_order_and_padding_and_mixes_sizes():
    torch.manual_seed(0)
    encoder = SetTransformer(latent_dim=8, dim=16, queries=4, layers=1).eval()
    coords, values = torch.rand(2, 7, 2) * 2 - 1, torch.rand(2, 7, 3)
    weights = torch.ones(2, 7)
    weights[1, 3:] = 0  # sample 1 has 3 points, padded to 7
    together = encoder(coords, values, weights)
    shuffled = torch.randperm(7)
    torch.testing.assert_close(encoder(coords[:1, shuffled], values[:1, shuffled], weights[:1, shuffled]), together[:1])
    torch.testing.assert_close(encoder(coords[1:, :3], values[1:, :3], weights[1:, :3]), together[1:], atol=1e-6, rtol=1e-5)
    garbage = values.clone()
    garbage[1, 3:] = 1e6  # padded values never matter
    torch.testing.assert_close(encoder(coords, garbage, weights), together)


def test_codes_render_the_known_pixels_and_never_read_the_unknown_ones():
    torch.manual_seed(0)
    prior = BasisPrior(**TINY).eval()
    images, masks = faces(3, 8), random_masks(3, 8, 0.3)
    masks[2] = True  # a full context next to sparse ones
    code = prior.infer(images, masks)
    assert code.shape == (3, prior.latent_dim) and prior.latent_dim == (24 + 1) * 3
    poisoned = images.masked_fill(~masks[:, None], float("nan"))
    torch.testing.assert_close(prior.infer(poisoned, masks), code)
    coords = grid(8, 8)
    shared = prior.render(code, coords.expand(3, -1, -1))
    torch.testing.assert_close(prior.render(code, coords.repeat(3, 1, 1)), shared, atol=1e-6, rtol=1e-6)
    values = images.flatten(2).transpose(1, 2)
    known = masks.flatten(1)[..., None]
    error = ((shared - values).pow(2) * known).sum(dim=(1, 2)) / (3 * known.sum(dim=(1, 2)))
    assert (error < 0.5).all()


def test_rendering_a_grid_matches_rendering_its_coordinates_and_the_cached_basis_follows_the_weights():
    from hypersiren.priors.base import FunctionPrior

    torch.manual_seed(0)
    prior = BasisPrior(**TINY).eval()
    images, masks = faces(2, 8), random_masks(2, 8, 0.5)
    with torch.no_grad():
        code = prior.infer(images, masks)
        expected = prior.render(code, grid(10, 10).expand(2, -1, -1))
        torch.testing.assert_close(prior.render_grid(code, 10, max_points=1 << 20), expected)
        torch.testing.assert_close(FunctionPrior.render_grid(prior, code, 10, max_points=7), expected)  # in chunks
        kept = prior.grid_features(10, code.device, code.dtype)
        assert prior.grid_features(10, code.device, code.dtype).data_ptr() == kept.data_ptr()  # not recomputed
        for resolution in (11, 12):  # only the latest grids are kept
            prior.grid_features(resolution, code.device, code.dtype)
        assert sum(kind == "features" for kind, *_ in prior._grids) == 2
    optimizer = make_optimizer(prior.parameters(), lr=0.1)  # the engine's fused Adam: it must mark its steps
    loss, _ = prior.training_loss(images, masks, grid(8, 8).expand(2, -1, -1), images.flatten(2).transpose(1, 2))
    loss.backward()
    optimizer.step()  # the weights change in place: the cached basis must not be reused
    with torch.no_grad():
        torch.testing.assert_close(prior.render_grid(code, 10, 1 << 20), prior.render(code, grid(10, 10).expand(2, -1, -1)))
        assert not torch.allclose(prior.render_grid(code, 10, 1 << 20), expected)
        prior.load_state_dict(BasisPrior(**TINY).state_dict())  # and so must loading other weights
        torch.testing.assert_close(prior.render_grid(code, 10, 1 << 20), prior.render(code, grid(10, 10).expand(2, -1, -1)))


def test_the_fit_is_the_gaussian_posterior_mean_under_the_running_statistics():
    torch.manual_seed(0)
    prior = BasisPrior(**TINY, code_momentum=1.0, shrinkage=0.05).double()
    images, masks = faces(5, 8).double(), random_masks(5, 8, 0.3)
    masks[1] = True
    features = prior.features(grid(8, 8).double()).detach()
    values = images.flatten(2).transpose(1, 2)
    gaussian = prior.code_prior
    prior.track_codes(images, features)  # momentum 1: the statistics of this batch's whole-image fits
    gram = features.T @ features
    eye = torch.eye(25, dtype=gram.dtype)
    codes = torch.linalg.solve(gram + 1e-6 * gram.diagonal().mean() * eye, features.T @ values)
    torch.testing.assert_close(gaussian.running_mean, codes.mean(dim=0))
    centred = (codes - codes.mean(dim=0)).transpose(1, 2).reshape(-1, 25)
    torch.testing.assert_close(gaussian.running_covariance, centred.T @ centred / 15)
    prior.eval()
    with torch.no_grad():
        prior.head[-1].weight.normal_(0, 0.01)  # a trained head: judges each context's noise
        prior.ridge_parameters[1:] = torch.tensor([0.2, 0.3]) / 30  # lambda's slopes in log n and in the spread
        inferred = prior.infer(images, masks).reshape(5, 25, 3)
        factor = (prior.head(prior.encoder(*padded_context(images, masks)))[:, 0] * 30).exp()  # stored / 30
        torch.testing.assert_close(prior.log_noise_factor(images, masks), factor.log())
        assert (factor - 1).abs().min() > 0.05
        covariance = gaussian.running_covariance + 0.05 * gaussian.running_covariance.diagonal().mean() * eye
        counts = masks.flatten(1).sum(dim=1).double()
        lam = (prior.ridge_parameters[0] * 30 + 0.2 * torch.log(counts / 100) + 0.3 * context_spread(masks)).exp()
        lam = lam * factor
        for face in range(5):
            known = features[masks[face].flatten()]
            residual = values[face][masks[face].flatten()] - known @ gaussian.running_mean
            noise = lam[face] * torch.eye(len(known), dtype=gram.dtype)
            gain = covariance @ known.T @ torch.linalg.inv(known @ covariance @ known.T + noise)
            torch.testing.assert_close(inferred[face], gaussian.running_mean + gain @ residual)


def test_calibration_is_the_shrunk_exact_statistics_and_used_outside_training():
    from hypersiren.priors.density import ledoit_wolf

    torch.manual_seed(0)
    prior = BasisPrior(**TINY, code_momentum=1.0).double()
    images = faces(6, 8).double()
    features = prior.features(grid(8, 8).double()).detach()
    gaussian = prior.code_prior
    prior.calibrate([images[:4], images[4:]])  # in two batches
    assert gaussian.calibrated_count == 6
    prior.track_codes(images, features)  # momentum 1: the statistics of the same faces in one batch
    torch.testing.assert_close(gaussian.calibrated_mean, gaussian.running_mean.float().double(), rtol=1e-5, atol=1e-6)
    codes = prior._whole_image_codes(images, prior._least_squares(features))
    centred = (codes - codes.mean(dim=0)).transpose(1, 2).flatten(0, 1)
    shrunk, shrinkage = ledoit_wolf(centred)[1:]
    assert 0 < shrinkage < 1  # 6 faces for 25 dimensions: shrunk, not replaced
    torch.testing.assert_close(gaussian.calibrated_covariance, shrunk, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(gaussian.running_covariance, centred.T @ centred / 18)  # the running ones are not shrunk
    with torch.no_grad():
        gaussian.running_covariance.mul_(4)  # the running statistics now differ
    assert gaussian.statistics()[1] is gaussian.running_covariance  # training: the running ones
    prior.eval()
    assert gaussian.statistics()[1] is gaussian.calibrated_covariance


def test_calibration_refits_lambda_for_the_calibrated_statistics():
    """A lambda far too large (the prior swamps the context) is refitted by ``calibrate`` on the training faces:
    new faces of the training faces' family are then completed far better, deterministically, and training (or a
    prior never calibrated) keeps the trained lambda."""
    torch.manual_seed(0)
    prior = BasisPrior(**TINY, ridge=30.0).eval()
    data = torch.Generator().manual_seed(1)
    features = prior.grid_features(8, torch.device("cpu"), torch.float32)
    base, *patterns = (features @ torch.randn(25, 3, generator=data) * 0.1 for _ in range(3))
    def make(count):
        amplitudes = torch.randn(count, 2, 1, 1, generator=data)
        faces = base + amplitudes[:, 0] * patterns[0] + amplitudes[:, 1] * patterns[1]
        return faces.transpose(1, 2).reshape(-1, 3, 8, 8)
    train, test, masks = make(40), make(8), random_masks(8, 8, 0.3)
    def error():
        with torch.no_grad():
            completed = prior.render_grid(prior.infer(test, masks), 8, 1 << 20)
            return (completed - test.flatten(2).transpose(1, 2)).pow(2).mean()
    trained = prior.trust().clone()
    prior.calibrate([train[:20], train[20:]])
    refitted = prior.trust().clone()
    assert prior.trust() is prior.calibrated_trust and refitted[0] < trained[0] - 3  # lambda e^3 times smaller at least
    fitted_error = error()
    prior.calibrate([train[:20], train[20:]])
    torch.testing.assert_close(prior.calibrated_trust, refitted)  # the same contexts every time
    with torch.no_grad():
        prior.calibrated_trust.copy_(trained)  # the calibrated statistics without the refit
    assert fitted_error < 0.2 * error()
    prior.train()
    torch.testing.assert_close(prior.trust(), trained)
    assert BasisPrior(**TINY, ridge=30.0).eval().trust()[0].item() == pytest.approx(trained[0].item())


def test_the_lambda_refit_completes_each_face_under_statistics_without_it_and_its_mirror(monkeypatch):
    from hypersiren.priors.code_gaussian import CodeGaussian

    seen = []
    calibrate = CodeGaussian.calibrate
    monkeypatch.setattr(CodeGaussian, "calibrate", lambda self, codes: (seen.append(codes), calibrate(self, codes)))
    torch.manual_seed(0)
    prior = BasisPrior(**TINY).eval()
    images = torch.cat([faces(6, 8), faces(11, 8)[6:]])  # 11 faces in two batches, each also mirrored
    prior.calibrate([images[:6], images[6:]], mirror=True)
    least_squares = prior._least_squares(prior.grid_features(8, torch.device("cpu"), torch.float32))
    codes, mirrored = (prior._whole_image_codes(x, least_squares).float() for x in (images, images.flip(-1)))
    assert len(seen) == 3 and prior.code_prior.calibrated_count == 22
    torch.testing.assert_close(seen[0], torch.cat([codes, mirrored]))  # the prior's statistics: every face
    for fold, statistics in zip((0, 1), seen[1:]):  # the refit's: the other fold's faces and their mirror images
        others = torch.arange(11) % 2 != fold
        torch.testing.assert_close(statistics, torch.cat([codes[others], mirrored[others]]))


def test_a_few_pixels_move_the_whole_face_the_way_training_faces_vary():
    """Faces that differ only by the amplitude of one pattern (per colour channel: a 3-dimensional family): the
    learned covariance is that family, so four known pixels recover the whole face, where the isotropic prior the
    statistics start from does not."""
    torch.manual_seed(0)
    prior = BasisPrior(**TINY, code_momentum=1.0, ridge=1e-3).eval()
    data = torch.Generator().manual_seed(1)
    features = prior.grid_features(8, torch.device("cpu"), torch.float32)
    base, pattern = (features @ torch.randn(25, 3, generator=data) * 0.1 for _ in range(2))  # representable faces
    def make(amplitudes):
        return (base + amplitudes[:, None, None] * pattern).transpose(1, 2).reshape(-1, 3, 8, 8)
    test, mask = make(torch.tensor([1.5])), torch.zeros(1, 8, 8, dtype=torch.bool)
    mask[0, [1, 2, 5, 6], [1, 6, 2, 5]] = True
    def error():
        with torch.no_grad():
            completed = prior.render_grid(prior.infer(test, mask), 8, 1 << 20)
            return (completed - test.flatten(2).transpose(1, 2)).pow(2).mean()
    isotropic = error()
    prior.track_codes(make(torch.randn(64, generator=data)), features)
    assert error() < 0.02 * isotropic  # 50x smaller (the shrinkage leaves other directions a little room)


def test_refining_a_code_never_fits_the_context_worse():
    from hypersiren.priors.inference import encode
    from hypersiren.priors.inner_loop import masked_mse, padded_context

    torch.manual_seed(0)
    prior = BasisPrior(**TINY, ridge=100.0).eval()  # a strong prior: the closed form leaves room on the context
    images, masks = faces(3, 8), random_masks(3, 8, 0.5)
    coords, values, weights = padded_context(images, masks)
    fits = [masked_mse(prior.render(encode(prior, (images + 1) / 2, masks, refine_steps=k, lr=0.1), coords), values,
                       weights) for k in (0, 5)]
    assert (fits[1] <= fits[0] + 1e-6).all() and (fits[1] < fits[0]).any()


def test_a_few_steps_lower_the_loss():
    torch.manual_seed(0)
    prior = BasisPrior(**TINY)
    images, masks = faces(4, 8), random_masks(4, 8, 0.4)
    coords, values = grid(8, 8).expand(4, -1, -1), images.flatten(2).transpose(1, 2)
    optimizer = torch.optim.Adam(prior.parameters(), lr=1e-3)
    losses = []
    for _ in range(20):
        loss, logs = prior.training_loss(images, masks, coords, values)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 0.1 and set(logs) == {"mse", "lambda_100"}


def test_lambda_follows_the_context_size_and_spread():
    prior = BasisPrior(**TINY, ridge=2.0)
    with torch.no_grad():
        prior.ridge_parameters[1:] = torch.tensor([0.5, 0.7]) / 30  # slopes in log pixel count and in the spread
    half, scattered = half_masks(1, 8, "top"), random_pixel_masks(1, 8, 32, torch.Generator().manual_seed(0))
    terms = context_terms(torch.cat([half, scattered]))
    torch.testing.assert_close(terms[:, 0], torch.full((2,), float(np.log(0.32))))
    torch.testing.assert_close(terms[:, 1], context_spread(torch.cat([half, scattered])))
    lam = prior.ridge_lambda(torch.tensor([[0.0, 0.0], [np.log(4), 0.0], [0.0, 1.0]]))
    torch.testing.assert_close(lam, torch.tensor([2.0, 4.0, 2.0 * float(np.exp(0.7))]))


def test_registered_and_configured_from_its_config():
    assert PRIORS["basis"] is BasisPrior
    prior = BasisPrior(BasisPrior.Config(**TINY))
    assert prior.config.basis_features == 24 and BasisPrior.Config().hidden_features == 128


@pytest.mark.parametrize("method", ["basis"])
def test_train_complete_and_reload_from_the_command_line(cli, tmp_path, method):
    from hypersiren.prior import HyperSiren

    out = tmp_path / "run"
    code, _, err = cli("train", "prior", "--method", method, "--resolution", "12", "--batch-size", "4",
                       "--hidden-features", "16", "--hidden-layers", "1", "--basis-features", "24", "--encoder-dim", "16",
                       "--queries", "4", "--encoder-layers", "1", "--eval-images", "4", "--steps", "3",
                       "--summary-every", "0", "--no-progress", "--out", out)
    assert code == 0, err
    prior = HyperSiren.load(out / "checkpoint.safetensors")
    assert isinstance(prior.prior, BasisPrior)
    # the end of training calibrated the prior on the 90 training faces of the bundled LFW set and, with --flip (the
    # default), on their mirror images
    assert prior.prior.code_prior.calibrated_count == 2 * 90
    image = (faces(1, 12)[0] + 1) / 2
    done = prior.complete(image, num_pixels=30, resolution=24)
    assert done.shape == (3, 24, 24) and torch.isfinite(done).all()
    assert prior.sample(2, 12).shape == (2, 3, 12, 12)  # the latent density was stored


def test_autocast_leaves_the_closed_form_fit_in_float32():
    """``--amp`` (bfloat16 autocast) would make the Gram matrices indefinite: the prior computes in float32."""
    torch.manual_seed(0)
    prior = BasisPrior(**TINY).eval()
    images, masks = faces(4, 8) * 2 - 1, random_masks(4, 8, 0.3)
    batch = (images, masks, grid(8, 8).expand(4, -1, -1), images.flatten(2).transpose(1, 2))
    loss = prior.training_loss(*batch)[0]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        autocast_loss = prior(*batch)[0]
        code = prior.infer(images, masks)
        prior.train()(*batch)[0].backward()
    assert autocast_loss.dtype == code.dtype == torch.float32
    torch.testing.assert_close(autocast_loss, loss, rtol=0, atol=0)
    assert all(p.grad is not None and p.grad.isfinite().all() for p in prior.siren.parameters())
