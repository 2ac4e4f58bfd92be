"""Generative use of face priors: the latent Gaussian, sampled completions, interpolation, and the CLI."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import Tensor

from hypersiren.errors import InputError
from hypersiren.generate import LatentDensity, interpolate_latents, sample_completions
from hypersiren.priors.base import FunctionPrior
from hypersiren.priors.density import GaussianDensity
from hypersiren.priors.inner_loop import masked_mse, padded_context


def random_covariance(dim: int, seed: int = 0) -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(dim, dim, generator=g)
    return torch.randn(dim, generator=g), a @ a.T + 0.5 * torch.eye(dim)



# --- the Gaussian density ---------------------------------------------------------------------------------------

def test_gaussian_fit_recovers_mean_and_covariance():
    mean, cov = random_covariance(4)
    samples = torch.distributions.MultivariateNormal(mean, cov).sample((20000,))
    density = GaussianDensity.fit(samples)
    assert torch.allclose(density.mean, mean, atol=0.05)
    assert torch.allclose(density.covariance, cov, atol=0.08 * cov.abs().max())
    assert density.shrinkage < 0.01  # plenty of samples: (almost) no shrinkage


def test_gaussian_fit_is_ledoit_wolf_shrunk_sample_covariance():
    samples = torch.randn(5, 16, generator=torch.Generator().manual_seed(1)) * torch.linspace(0.5, 2, 16)
    density = GaussianDensity.fit(samples)
    centred = samples.double() - samples.double().mean(0)
    sample_cov = centred.T @ centred / len(samples)
    target = sample_cov.trace() / 16 * torch.eye(16, dtype=torch.float64)
    s = density.shrinkage
    assert 0 < s <= 1  # 5 samples in 16 dimensions: the sample covariance is singular and must be shrunk
    assert torch.allclose(density.covariance.double(), (1 - s) * sample_cov + s * target, atol=1e-4)
    assert torch.linalg.eigvalsh(density.covariance).min() > 0


def test_ledoit_wolf_matches_scikit_learn():
    from sklearn.covariance import LedoitWolf

    from hypersiren.priors.density import ledoit_wolf

    for n, d in ((5, 16), (100, 128), (1000, 64)):
        samples = torch.randn(n, d, dtype=torch.float64, generator=torch.Generator().manual_seed(n))
        samples = samples * torch.linspace(0.1, 3, d, dtype=torch.float64)
        mean, covariance, shrinkage = ledoit_wolf(samples)
        reference = LedoitWolf().fit(samples.numpy())
        assert shrinkage == pytest.approx(reference.shrinkage_, abs=1e-12)
        assert torch.allclose(covariance, torch.from_numpy(reference.covariance_), atol=1e-12)
        assert torch.allclose(mean, torch.from_numpy(reference.location_), atol=1e-12)


def test_gaussian_log_prob_whiten_and_state():
    mean, cov = random_covariance(3, seed=2)
    density = GaussianDensity(mean, torch.linalg.cholesky(cov))
    z = torch.randn(6, 3)
    reference = torch.distributions.MultivariateNormal(mean, cov).log_prob(z)
    assert torch.allclose(density.log_prob(z), reference, atol=1e-4)
    assert torch.allclose(density.color(density.whiten(z)), z, atol=1e-5)
    again = GaussianDensity.from_state(density.state())
    assert torch.equal(again.mean, density.mean) and torch.equal(again.scale_tril, density.scale_tril)


@pytest.mark.parametrize("temperature", [1.0, 0.5])
def test_gaussian_samples_have_the_tempered_covariance(temperature):
    mean, cov = random_covariance(3, seed=3)
    density = GaussianDensity(mean, torch.linalg.cholesky(cov))
    samples = density.sample(20000, torch.Generator().manual_seed(0), temperature)
    assert torch.allclose(samples.mean(0), mean, atol=0.05)
    assert torch.allclose(torch.cov(samples.T), temperature**2 * cov, atol=0.06 * cov.abs().max())


def test_gaussian_bad_input():
    with pytest.raises(InputError, match="at least 2 samples"):
        GaussianDensity.fit(torch.randn(1, 4))
    with pytest.raises(InputError, match="NaN"):
        GaussianDensity.fit(torch.tensor([[0.0, float("nan")], [1.0, 2.0]]))
    with pytest.raises(InputError, match="num >= 1"):
        GaussianDensity(torch.zeros(2), torch.eye(2)).sample(0)


# --- sampled completions ----------------------------------------------------------------------------------------

class LinearDecoder(FunctionPrior):
    """A prior whose render is linear in the latent: values[n, c] = sum_d cos(coords[n] . F_d) z_d G_dc."""

    method = "linear-test"

    def __init__(self, dim: int = 3):
        super().__init__()
        g = torch.Generator().manual_seed(4)
        self.register_buffer("F", 2 * torch.randn(2, dim, generator=g))
        self.register_buffer("G", torch.randn(dim, 3, generator=g))

    @property
    def latent_dim(self) -> int:
        return self.F.shape[1]

    def render(self, code: Tensor, coords: Tensor) -> Tensor:
        return torch.einsum("bnd,bd,dc->bnc", torch.cos(coords @ self.F), code, self.G)


def test_sampled_completions_are_the_exact_posterior_for_a_linear_decoder():
    prior = LinearDecoder()
    mean, cov = random_covariance(3, seed=5)
    density = LatentDensity(GaussianDensity(mean, torch.linalg.cholesky(cov)), noise=0.3, faces=0)
    image = torch.rand(1, 3, 4, 4, generator=torch.Generator().manual_seed(6)) * 2 - 1
    mask = torch.zeros(1, 4, 4, dtype=torch.bool)
    mask[0, 0, :3] = True
    latents = sample_completions(prior, density, image, mask, 2000, steps=30,
                                 generator=torch.Generator().manual_seed(7))[0].double()
    # closed form: posterior of z ~ N(mean, cov) given y = A z + N(0, noise^2 I) on the 3 known pixels x 3 channels
    coords, values, _ = padded_context(image, mask)
    a = torch.einsum("kd,dc->kcd", torch.cos(coords[0] @ prior.F), prior.G).reshape(-1, 3).double()
    precision = torch.linalg.inv(cov.double()) + a.T @ a / 0.09
    post_cov = torch.linalg.inv(precision)
    post_mean = post_cov @ (torch.linalg.solve(cov.double(), mean.double()) + a.T @ values[0].reshape(-1).double() / 0.09)
    assert torch.allclose(latents.mean(0), post_mean, atol=0.04)
    assert torch.allclose(torch.cov(latents.T), post_cov, atol=0.1 * post_cov.abs().max())
    most_probable = sample_completions(prior, density, image, mask, 3, temperature=0.0, steps=30)[0]
    assert torch.allclose(most_probable, post_mean.float().expand(3, -1), atol=1e-3)


def test_sampled_completions_differ_yet_fit_the_context_better_than_free_samples():
    from hypersiren.priors.functa import Functa

    torch.manual_seed(0)
    prior = Functa(hidden_features=16, hidden_layers=1, latent_dim=6).eval()
    density = LatentDensity(GaussianDensity(torch.zeros(6), torch.eye(6)), noise=0.05, faces=0)
    coords = torch.cartesian_prod(torch.linspace(-1, 1, 8), torch.linspace(-1, 1, 8))[None]
    truth = prior.render(density.gaussian.sample(1, torch.Generator().manual_seed(1)), coords).detach()
    image = truth.transpose(1, 2).reshape(1, 3, 8, 8).clamp(-1, 1)
    mask = torch.zeros(1, 8, 8, dtype=torch.bool)
    mask.view(-1)[torch.randperm(64, generator=torch.Generator().manual_seed(2))[:12]] = True
    latents = sample_completions(prior, density, image, mask, 6, steps=50, generator=torch.Generator().manual_seed(3))[0]
    free = density.gaussian.sample(6, torch.Generator().manual_seed(4))
    context = padded_context(image, mask)

    def context_mse(z):
        with torch.no_grad():
            return masked_mse(prior.render(z, context[0].expand(len(z), -1, -1)), context[1], context[2])

    assert context_mse(latents).max() < context_mse(free).mean()
    renders = prior.render(latents, coords.expand(6, -1, -1)).detach()
    assert torch.cdist(renders.flatten(1), renders.flatten(1)).add(torch.eye(6)).min() > 1e-2  # pairwise different
    assert all(p.grad is None for p in prior.parameters())  # the prior itself is not touched


def test_sampled_completions_bad_input():
    prior, density = LinearDecoder(), LatentDensity(GaussianDensity(torch.zeros(3), torch.eye(3)), 0.1, 0)
    image, mask = torch.zeros(1, 3, 4, 4), torch.ones(1, 4, 4, dtype=torch.bool)
    with pytest.raises(InputError, match="num >= 1"):
        sample_completions(prior, density, image, mask, 0)
    wrong = LatentDensity(GaussianDensity(torch.zeros(5), torch.eye(5)), 0.1, 0)
    with pytest.raises(InputError, match="5 dimensions"):
        sample_completions(prior, wrong, image, mask, 2)


def test_interpolate_latents_ends_exactly():
    a, b = torch.randn(5), torch.randn(5)
    path = interpolate_latents(a, b, 4)
    assert torch.equal(path[0], a) and torch.equal(path[-1], b)
    assert torch.allclose(path[1], a + (b - a) / 3)
    with pytest.raises(InputError, match="at least 2"):
        interpolate_latents(a, b, 1)


# --- HyperSiren and the CLI on a tiny trained checkpoint ---------------------------------------------------------

@pytest.fixture(scope="module")
def tiny(tiny_prior_checkpoint):
    from hypersiren.prior import HyperSiren

    return HyperSiren.load(tiny_prior_checkpoint)


def test_training_stores_the_latent_density(tiny):
    from hypersiren.data.faces import load_faces

    assert tiny.density is not None and tiny.density.gaussian.dim == tiny.prior.latent_dim == (24 + 1) * 3
    assert tiny.density.faces == len(load_faces(None, "train", 16, progress=False))
    assert 0 < tiny.density.noise < 2


def test_sample_renders_at_any_resolution(tiny):
    faces = tiny.sample(3, 20, seed=1)
    assert faces.shape == (3, 3, 20, 20) and faces.min() >= 0 and faces.max() <= 1
    assert torch.equal(faces, tiny.sample(3, 20, seed=1))  # seeded
    mean_face = tiny.sample(2, 20, temperature=0)
    assert torch.equal(mean_face[0], mean_face[1])


def test_interpolation_ends_are_the_encodings(tiny):
    from skimage import data

    a, b = data.astronaut(), data.camera()
    frames = tiny.interpolate(a, b, steps=5, resolution=24)
    assert frames.shape == (5, 3, 24, 24)
    assert torch.allclose(frames[0], tiny.render(tiny.encode(a, mask="full"), 24)[0], atol=1e-6)
    assert torch.allclose(frames[-1], tiny.render(tiny.encode(b, mask="full"), 24)[0], atol=1e-6)


def test_complete_samples_shape(tiny):
    from skimage import data

    samples = tiny.complete_samples(data.astronaut(), num_pixels=30, num=3, resolution=12, steps=5)
    assert samples.shape == (1, 3, 3, 12, 12)


def png_size(path: Path) -> tuple[int, int]:
    with Image.open(path) as image:
        return image.size


def test_cli_sample_interpolate_and_several_completions(cli, tiny_prior_checkpoint, tmp_path):
    ckpt = tiny_prior_checkpoint
    code, out, err = cli("sample", "--checkpoint", ckpt, "--num", 5, "--resolution", 20, "--out", tmp_path / "s.png")
    assert code == 0, err
    assert png_size(tmp_path / "s.png") == (3 * 20 + 2 * 2, 2 * 20 + 2)  # 3 columns, 2 rows, 2-pixel gaps
    code, out, err = cli("interpolate", "astronaut", "camera", "--checkpoint", ckpt, "--steps", 4, "--resolution", 16,
                         "--out", tmp_path / "i.png")
    assert code == 0, err
    assert png_size(tmp_path / "i.png") == (6 * 16 + 5 * 2, 16)  # A | 4 faces | B
    code, out, err = cli("complete", "--checkpoint", ckpt, "--image", "astronaut", "--pixels", 20, "--samples", 3,
                         "--resolution", 16, "--out", tmp_path / "c.png")
    assert code == 0, err
    assert png_size(tmp_path / "c.png") == (5 * 16 + 4 * 2, 16)  # context | 3 completions | truth
    assert "3 sampled completions" in out


def test_cli_refits_the_density_for_checkpoints_without_one(cli, tiny_prior_checkpoint, tmp_path):
    from hypersiren.checkpoint import load_checkpoint, save_checkpoint

    state, meta = load_checkpoint(tiny_prior_checkpoint)
    del state["latent_density"]
    old = tmp_path / "old.safetensors"
    save_checkpoint(old, state, meta)
    code, _, err = cli("sample", "--checkpoint", old, "--out", tmp_path / "s.png")
    assert code == 2 and "no latent density" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "s.png").exists()
    faces = tmp_path / "faces"
    faces.mkdir()
    rng = np.random.default_rng(0)
    for i in range(6):
        Image.fromarray(rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)).save(faces / f"{i}.png")
    code, out, err = cli("sample", "--checkpoint", old, "--data", faces, "--num", 2, "--resolution", 8,
                         "--no-progress", "--out", tmp_path / "s.png")
    assert code == 0, err
    assert "fitted the latent density on 5 faces" in out  # 6 faces, one held out (val fraction 0.1)


def test_cli_bad_input_exits_2_with_one_line(cli, tiny_prior_checkpoint, tmp_path):
    from hypersiren.checkpoint import save_checkpoint
    from hypersiren.priors import PRIORS

    maml = PRIORS["maml"](hidden_features=8, hidden_layers=1)
    maml_ckpt = tmp_path / "maml.safetensors"
    save_checkpoint(maml_ckpt, {"model": maml.state_dict()},
                    {"kind": "prior/maml", "model": {"method": "maml", **maml.config.to_dict()}, "config": {"resolution": 8}})
    cases = [
        (("sample", "--checkpoint", maml_ckpt, "--out", tmp_path / "a.png"), "no vector latent"),
        (("interpolate", "camera", "astronaut", "--checkpoint", maml_ckpt, "--out", tmp_path / "a.png"), "no vector latent"),
        (("complete", "--checkpoint", maml_ckpt, "--image", "camera", "--half", "--samples", 2, "--out",
          tmp_path / "a.png"), "no vector latent"),
        (("sample", "--checkpoint", tiny_prior_checkpoint, "--num", 0, "--out", tmp_path / "a.png"), "--num"),
        (("interpolate", tmp_path / "missing.jpg", "camera", "--checkpoint", tiny_prior_checkpoint, "--out",
          tmp_path / "a.png"), "image not found"),
        (("interpolate", "camera", "astronaut", "--checkpoint", tiny_prior_checkpoint, "--steps", 1, "--out",
          tmp_path / "a.png"), "at least 2 steps"),
        (("complete", "--checkpoint", tiny_prior_checkpoint, "--image", "camera", "--half", "--samples", 2,
          "--refine-steps", 3, "--out", tmp_path / "a.png"), "--refine-steps"),
        (("sample", "--checkpoint", tmp_path / "nothing.safetensors", "--out", tmp_path / "a.png"), "nothing.safetensors"),
    ]
    for args, message in cases:
        code, _, err = cli(*args)
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, (args, err)
    assert not (tmp_path / "a.png").exists()
