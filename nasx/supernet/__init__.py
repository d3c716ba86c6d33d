"""Supernet training (config group ``supernet``): path sampling and labels."""

from nasx.supernet.sampler import UniformPathSampler as UniformPathSampler
from nasx.supernet.weights import load_supernet as load_supernet

__all__ = ["UniformPathSampler", "load_supernet"]
