"""The 15 CIFAR-C corruptions, following ``make_cifar_c.py`` with an injected generator.

Why not ``imagecorruptions.corrupt``: every corruption function of ``imagecorruptions-imaug``
takes the severity as an index into its own table of ImageNet-C constants and draws from
NumPy's global generator, so none can be called with CIFAR-C's constants or a seeded
generator. Each corruption below is therefore written from the CIFAR-C reference formula
(``hendrycks/robustness: ImageNet-C/create_c/make_cifar_c.py``) and reuses the package's
parameterised helpers where it has them:

* ``disk`` (defocus kernel; identical to the reference's);
* ``_motion_blur`` (motion blur and snow): the package's NumPy version of ImageMagick's motion
  blur, which the reference calls through Wand (a system ImageMagick we cannot assume);
* ``_shuffle_pixels_njit_glass_blur`` (glass blur): the numba-compiled pixel shuffle, seeded
  by a draw from our generator (numba's own generator, not NumPy's global one);
* the frost textures shipped with the package.

Every function maps uint8 ``(N, H, W, 3)`` images to values in [0, 255].
"""

from __future__ import annotations

import importlib.resources
from collections.abc import Callable
from functools import lru_cache
from io import BytesIO
from typing import Any

import cv2
import numpy as np
import skimage.color
import skimage.util
from imagecorruptions.corruptions import (  # type: ignore[import-untyped]
    _motion_blur,
    _shuffle_pixels_njit_glass_blur,
    disk,
)
from PIL import Image
from scipy.ndimage import map_coordinates
from scipy.ndimage import zoom as scizoom
from skimage.filters import gaussian

Corruption = Callable[[np.ndarray, Any, np.random.Generator], np.ndarray]
_FROST_FILES = ("frost1.png", "frost2.png", "frost3.png", "frost4.jpg", "frost5.jpg")


def _clipped_zoom(x: np.ndarray, factor: float) -> np.ndarray:
    # CIFAR-C's version on a batch (N, H, W, C): zoom the central crop, then trim the *centre*
    # (imagecorruptions keeps the top-left corner instead); a zoom of 1 along the batch axis
    # is exact, so this equals zooming image by image
    h = x.shape[1]
    ch = int(np.ceil(h / factor))
    top = (h - ch) // 2
    out = scizoom(x[:, top : top + ch, top : top + ch], (1, factor, factor, 1), order=1)
    trim = (out.shape[1] - h) // 2
    return np.asarray(out[:, trim : trim + h, trim : trim + h])


def _plasma_fractal(size: int, decay: float, rng: np.random.Generator) -> np.ndarray:
    # diamond-square height map in [0, 1] (the reference's ``plasma_fractal``); rewritten
    # because the package's draws from NumPy's global generator
    grid = np.empty((size, size), dtype=np.float64)
    grid[0, 0] = 0.0
    step, wibble = size, 100.0

    def wibbled_mean(a: np.ndarray) -> np.ndarray:
        return a / 4 + wibble * rng.uniform(-wibble, wibble, a.shape)

    while step >= 2:
        half = step // 2
        corners = grid[0:size:step, 0:size:step]
        square = corners + np.roll(corners, shift=-1, axis=0)
        square += np.roll(square, shift=-1, axis=1)
        grid[half:size:step, half:size:step] = wibbled_mean(square)
        centres = grid[half:size:step, half:size:step]
        corners = grid[0:size:step, 0:size:step]
        lt = centres + np.roll(centres, 1, axis=0) + corners + np.roll(corners, -1, axis=1)
        grid[0:size:step, half:size:step] = wibbled_mean(lt)
        tt = centres + np.roll(centres, 1, axis=1) + corners + np.roll(corners, -1, axis=0)
        grid[half:size:step, 0:size:step] = wibbled_mean(tt)
        step //= 2
        wibble /= decay
    grid -= grid.min()
    return grid / grid.max()


@lru_cache(maxsize=16)
def _frost_texture(index: int, side: int) -> np.ndarray:
    ref = importlib.resources.files("imagecorruptions") / "frost" / _FROST_FILES[index]
    with importlib.resources.as_file(ref) as path:
        bgr = cv2.imread(str(path))
    if bgr is None:
        raise FileNotFoundError(f"imagecorruptions frost texture {_FROST_FILES[index]} is missing")
    # the reference shrinks the textures to 0.2 for 32x32 images; larger images need more
    scale = max(0.2, (side + 1) / min(bgr.shape[:2]))
    small = cv2.resize(bgr, (0, 0), fx=scale, fy=scale)
    return np.ascontiguousarray(small[..., ::-1])


def _per_image(fn: Callable[[np.ndarray, Any, np.random.Generator], np.ndarray]) -> Corruption:
    def batch(x: np.ndarray, c: Any, rng: np.random.Generator) -> np.ndarray:
        return np.stack([fn(img, c, rng) for img in x]).astype(np.float32)

    return batch


def gaussian_noise(x: np.ndarray, c: Any, rng: np.random.Generator) -> np.ndarray:
    """Additive N(0, c^2) noise on [0, 1] pixels."""
    y = x / 255.0
    return np.clip(y + rng.normal(size=y.shape, scale=c), 0, 1) * 255


def shot_noise(x: np.ndarray, c: Any, rng: np.random.Generator) -> np.ndarray:
    """Poisson noise: ``Poisson(x * c) / c``."""
    return np.clip(rng.poisson(x / 255.0 * c) / c, 0, 1) * 255


def impulse_noise(x: np.ndarray, c: Any, rng: np.random.Generator) -> np.ndarray:
    """Salt-and-pepper noise on a fraction ``c`` of the values (scikit-image)."""
    y = skimage.util.random_noise(x / 255.0, mode="s&p", rng=rng, amount=c)
    return np.clip(y, 0, 1) * 255


def contrast(x: np.ndarray, c: Any, rng: np.random.Generator) -> np.ndarray:
    """Scale each channel's deviation from its image mean by ``c``."""
    y = x / 255.0
    means = y.mean(axis=(1, 2), keepdims=True)
    return np.clip((y - means) * c + means, 0, 1) * 255


def brightness(x: np.ndarray, c: Any, rng: np.random.Generator) -> np.ndarray:
    """Add ``c`` to the HSV value channel."""
    hsv = skimage.color.rgb2hsv(x / 255.0)
    hsv[..., 2] = np.clip(hsv[..., 2] + c, 0, 1)
    return np.clip(skimage.color.hsv2rgb(hsv), 0, 1) * 255


@_per_image
def defocus_blur(img: np.ndarray, c: Any, rng: np.random.Generator) -> np.ndarray:
    """Convolve with an anti-aliased disk of radius ``c[0]``."""
    kernel = disk(radius=c[0], alias_blur=c[1])
    return np.clip(cv2.filter2D(img / 255.0, -1, kernel), 0, 1) * 255


@_per_image
def glass_blur(img: np.ndarray, c: Any, rng: np.random.Generator) -> np.ndarray:
    """Gaussian blur, local pixel shuffling, Gaussian blur."""
    y = (gaussian(img / 255.0, sigma=c[0], channel_axis=-1) * 255).astype(np.uint8)
    seed = int(rng.integers(0, 2**31 - 1))
    y = _shuffle_pixels_njit_glass_blur(y.shape[0], y.shape[1], y, tuple(c), seed)
    return np.clip(gaussian(y / 255.0, sigma=c[0], channel_axis=-1), 0, 1) * 255


@_per_image
def motion_blur(img: np.ndarray, c: Any, rng: np.random.Generator) -> np.ndarray:
    """Motion blur of radius/sigma ``c`` at a random angle in [-45, 45] degrees."""
    angle = rng.uniform(-45, 45)
    return np.clip(_motion_blur(img, radius=c[0], sigma=c[1], angle=angle), 0, 255)


def zoom_blur(x: np.ndarray, c: Any, rng: np.random.Generator) -> np.ndarray:
    """Average of the image and its central zooms by ``numpy.arange(*c)``."""
    y = (x / 255.0).astype(np.float32)
    factors = np.arange(*c)
    out = np.zeros_like(y)
    for f in factors:
        out += _clipped_zoom(y, f)
    return np.clip((y + out) / (len(factors) + 1), 0, 1) * 255


@_per_image
def snow(img: np.ndarray, c: Any, rng: np.random.Generator) -> np.ndarray:
    """Motion-blurred random snow layers over a brightened, greyed image."""
    y = img.astype(np.float32) / 255.0
    layer = rng.normal(size=y.shape[:2], loc=c[0], scale=c[1])
    layer = _clipped_zoom(layer[np.newaxis, ..., np.newaxis], c[2])[0]
    layer[layer < c[3]] = 0
    layer_u8 = (np.clip(layer.squeeze(-1), 0, 1) * 255).astype(np.uint8)
    blurred = _motion_blur(layer_u8, radius=c[4], sigma=c[5], angle=rng.uniform(-135, -45))
    # the reference reads the blurred layer back from an 8-bit PNG
    flakes = np.clip(np.round(blurred), 0, 255)[..., np.newaxis] / 255.0
    gray = cv2.cvtColor(y, cv2.COLOR_RGB2GRAY)[..., np.newaxis]
    y = c[6] * y + (1 - c[6]) * np.maximum(y, gray * 1.5 + 0.5)
    return np.clip(y + flakes + np.rot90(flakes, k=2), 0, 1) * 255


@_per_image
def frost(img: np.ndarray, c: Any, rng: np.random.Generator) -> np.ndarray:
    """Blend with a random crop of a frost texture: ``c[0] * x + c[1] * frost``."""
    # the reference draws among the first five textures only
    texture = _frost_texture(int(rng.integers(5)), img.shape[0])
    h, w = img.shape[:2]
    top = int(rng.integers(0, texture.shape[0] - h))
    left = int(rng.integers(0, texture.shape[1] - w))
    crop = texture[top : top + h, left : left + w]
    return np.clip(c[0] * img.astype(np.float64) + c[1] * crop, 0, 255)


@_per_image
def fog(img: np.ndarray, c: Any, rng: np.random.Generator) -> np.ndarray:
    """Add a plasma-fractal fog of strength ``c[0]`` and decay ``c[1]``."""
    y = img / 255.0
    max_val = y.max()
    h, w = y.shape[:2]
    size = 1 << (max(h, w) - 1).bit_length()  # 32 for CIFAR, as the reference
    y = y + c[0] * _plasma_fractal(size, c[1], rng)[:h, :w, np.newaxis]
    return np.clip(y * max_val / (max_val + c[0]), 0, 1) * 255


def _displacement(
    rng: np.random.Generator, shape: tuple[int, int], sigma: float, scale: float
) -> np.ndarray:
    field = gaussian(rng.uniform(-1, 1, size=shape), sigma, mode="reflect", truncate=3) * scale
    return field.astype(np.float32)[..., np.newaxis]


@_per_image
def elastic_transform(img: np.ndarray, c: Any, rng: np.random.Generator) -> np.ndarray:
    """Random affine jitter, then a smooth random displacement field."""
    y = img.astype(np.float32) / 255.0
    h, w = y.shape[:2]
    scale, sigma, jitter = (h * v for v in c)
    # random affine of three points around the centre
    centre = np.array((h // 2, w // 2), dtype=np.float32)
    square = min(h, w) // 3
    pts1 = np.array(
        [centre + square, [centre[0] + square, centre[1] - square], centre - square],
        dtype=np.float32,
    )
    pts2 = pts1 + rng.uniform(-jitter, jitter, size=pts1.shape).astype(np.float32)
    affine = cv2.getAffineTransform(pts1, pts2)
    y = np.asarray(cv2.warpAffine(y, affine, (w, h), borderMode=cv2.BORDER_REFLECT_101))
    # smooth random displacement field (dx drawn before dy, as the reference)
    dx = _displacement(rng, (h, w), sigma, scale)
    dy = _displacement(rng, (h, w), sigma, scale)
    gx, gy, gz = np.meshgrid(np.arange(w), np.arange(h), np.arange(y.shape[2]))
    coords = (gy + dy).reshape(-1, 1), (gx + dx).reshape(-1, 1), gz.reshape(-1, 1)
    out = map_coordinates(y, coords, order=1, mode="reflect").reshape(y.shape)
    return np.clip(out, 0, 1) * 255


@_per_image
def pixelate(img: np.ndarray, c: Any, rng: np.random.Generator) -> np.ndarray:
    """BOX down-sampling by ``c`` and BOX up-sampling back."""
    h, w = img.shape[:2]
    small = Image.fromarray(img).resize((int(w * c), int(h * c)), Image.Resampling.BOX)
    return np.asarray(small.resize((w, h), Image.Resampling.BOX))


@_per_image
def jpeg_compression(img: np.ndarray, c: Any, rng: np.random.Generator) -> np.ndarray:
    """JPEG round trip at quality ``c``."""
    buf = BytesIO()
    Image.fromarray(img).save(buf, "JPEG", quality=c)
    buf.seek(0)
    return np.asarray(Image.open(buf).convert("RGB"))


_TABLE: dict[str, Corruption] = {
    "gaussian_noise": gaussian_noise,
    "shot_noise": shot_noise,
    "impulse_noise": impulse_noise,
    "defocus_blur": defocus_blur,
    "glass_blur": glass_blur,
    "motion_blur": motion_blur,
    "zoom_blur": zoom_blur,
    "snow": snow,
    "frost": frost,
    "fog": fog,
    "brightness": brightness,
    "contrast": contrast,
    "elastic_transform": elastic_transform,
    "pixelate": pixelate,
    "jpeg_compression": jpeg_compression,
}


def apply(x: np.ndarray, corruption: str, c: Any, rng: np.random.Generator) -> np.ndarray:
    """Corrupt uint8 ``(N, H, W, 3)`` images with one severity's constants ``c``."""
    return _TABLE[corruption](x, c, rng)
