"""Pieces of the PDE zoo entries, pure torch/numpy without I/O: PML stretching, Helmholtz and wave residuals,
analytic solutions and a finite-difference reference solver."""
from hypersiren.pde.finite_difference import leapfrog_wave
from hypersiren.pde.helmholtz import (VELOCITY_MODELS, gaussian_source, hankel_solution, helmholtz_residual,
                                      squared_slowness)
from hypersiren.pde.pml import PML
from hypersiren.pde.wave import gaussian_pulse, wave_residual

__all__ = ["PML", "VELOCITY_MODELS", "gaussian_pulse", "gaussian_source", "hankel_solution", "helmholtz_residual",
           "leapfrog_wave", "squared_slowness", "wave_residual"]
