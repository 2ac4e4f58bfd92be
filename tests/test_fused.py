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


def test_failing_compiler_warns_once_and_falls_back(fresh, monkeypatch):
    calls = []

    def broken_compile(fn, **kwargs):
        def compiled(*args):
            calls.append(args)
            raise RuntimeError("C++ compiler not found\nlong details")
        return compiled

    monkeypatch.setattr(fused, "MIN_ELEMENTS", 0)
    monkeypatch.setattr(torch, "compile", broken_compile)
    x = torch.rand(16)
    with pytest.warns(RuntimeWarning, match="compiling fused kernels failed .*C\\+\\+ compiler not found"):
        result = fused.kernel(_chain, x)(x, 2.0)
    torch.testing.assert_close(result, _chain(x, 2.0))
    assert not fused.enabled()
    assert fused.kernel(_chain, x) is _chain  # no second attempt
    assert len(calls) == 1
