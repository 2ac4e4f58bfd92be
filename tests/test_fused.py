"""Fused kernels: compiled only for large CPU work, and a failing compiler falls back to eager mode."""
import pytest
import torch

from hypersiren.nn import fused


def _chain(x: torch.Tensor, scale: float) -> torch.Tensor:
    return torch.sin(x * scale) + torch.cos(x)


@pytest.fixture
def fresh(monkeypatch):
    monkeypatch.setattr(fused, "_compiled", {})
    monkeypatch.setattr(fused, "_failed", False)
    monkeypatch.delenv("HYPERSIREN_FUSED_KERNELS", raising=False)


def test_small_work_and_switched_off_run_eagerly(fresh, monkeypatch):
    x = torch.rand(8)
    assert fused.kernel(_chain, x) is _chain  # below MIN_ELEMENTS
    monkeypatch.setattr(fused, "MIN_ELEMENTS", 0)
    monkeypatch.setenv("HYPERSIREN_FUSED_KERNELS", "0")
    assert not fused.enabled() and fused.kernel(_chain, x) is _chain
    monkeypatch.setenv("HYPERSIREN_FUSED_KERNELS", "1")
    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)
    assert fused.kernel(_chain, x) is _chain  # an outer torch.compile traces the plain function


@pytest.mark.parametrize("when", ["compiling", "running"])
def test_failing_compiler_warns_once_and_falls_back(fresh, monkeypatch, when):
    """torch.compile failing when it is called (e.g. an unsupported Python) or when the kernel first runs (e.g. no
    C++ compiler): one warning, the eager result, no second attempt."""
    calls = []

    def broken_compile(fn, **kwargs):
        calls.append(fn)
        if when == "compiling":
            raise RuntimeError("torch.compile is not supported here\nlong details")

        def compiled(*args):
            raise RuntimeError("C++ compiler not found\nlong details")
        return compiled

    monkeypatch.setattr(fused, "MIN_ELEMENTS", 0)
    monkeypatch.setattr(torch, "compile", broken_compile)
    x = torch.rand(16)
    reason = "torch.compile is not supported here" if when == "compiling" else "C\\+\\+ compiler not found"
    with pytest.warns(RuntimeWarning, match=f"compiling fused kernels failed .*{reason}"):
        result = fused.kernel(_chain, x)(x, 2.0)
    torch.testing.assert_close(result, _chain(x, 2.0))
    assert not fused.enabled()
    assert fused.kernel(_chain, x) is _chain  # no second attempt
    assert len(calls) == 1


def _compiler_available() -> bool:
    import shutil

    return any(shutil.which(name) for name in ("c++", "g++", "clang++"))


def _siren_and_batch():
    from hypersiren.nn import Siren

    torch.manual_seed(0)
    model = Siren(2, 3, hidden_features=16, hidden_layers=2).double()
    coords = torch.rand(2, 40, 2, dtype=torch.float64) * 2 - 1
    return model, coords, torch.randn(2, 40, 3, dtype=torch.float64)


def test_fused_sine_layers_train_like_plain_autograd(fresh, monkeypatch):
    """A Siren training step through the fused sine layers (compiled kernels) gives the plain path's outputs,
    parameter gradients and second-order gradients (create_graph), and is taken only for training."""
    if not _compiler_available():
        pytest.skip("no C++ compiler for torch.compile")
    from hypersiren.nn import fused_sine

    model, coords, target = _siren_and_batch()
    params = list(model.parameters())

    def step():
        loss = ((model(coords) - target) ** 2).mean()
        grads = torch.autograd.grad(loss, params, create_graph=True)
        return (loss, *grads, *torch.autograd.grad(sum((g ** 2).sum() for g in grads), params))

    monkeypatch.setenv("HYPERSIREN_FUSED_KERNELS", "0")
    assert not fused_sine.applies(coords, 16)
    plain = step()
    monkeypatch.setenv("HYPERSIREN_FUSED_KERNELS", "1")
    monkeypatch.setattr(fused, "MIN_ELEMENTS", 0)
    assert fused_sine.applies(coords, 16)
    fast = step()
    assert set(fused._compiled) == {fused_sine._forward_rows, fused_sine._backward_rows} and fused.enabled()
    for a, b in zip(fast, plain):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)
    # never for inference, autograd derivatives of the network, or inside torch.func transforms
    with torch.no_grad():
        assert not fused_sine.applies(coords, 16)
    assert not fused_sine.applies(coords.clone().requires_grad_(True), 16)
    seen = []
    torch.func.grad(lambda w: (seen.append(fused_sine.applies(coords, 16)), (w * coords).sum())[1])(torch.ones(2))
    assert seen == [False]
