"""Synthetic rain rendered on clean photographs, deterministic by seed.

The image model is the one of Yang et al., "Deep Joint Rain Detection and Removal from a Single Image"
(CVPR 2017, eq. 3), which generated Rain100L/H::

    O = a * (B + sum_t S_t R) + (1 - a) * A

``B`` the clean background, ``S_t`` streak layers of different directions, ``R`` the binary rain
region (here: everywhere a streak is), ``a`` the atmospheric transmission and ``A`` the atmospheric
light (rain accumulation, i.e. haze). Each streak layer follows the Photoshop recipe behind Rain800
(Zhang et al., TCSVT 2019) and Rain1400 (Fu et al., "Removing rain from single images via a deep detail
network", CVPR 2017): sparse random noise -> a slight blur for the drop width -> a levels stretch ->
a motion blur of some length at some angle -> blended on the background, additively (``B + S``) or
with the screen mode (``1 - (1 - B)(1 - S)``). Streak length stands for the exposure time of the
camera (Garg and Nayar, "Photorealistic rendering of rain streaks", SIGGRAPH 2006).

The numeric ranges of :class:`RainRanges` are not published by those papers; they are this project's
choice, made by looking at Rain100L/H and the real rainy photographs of ``../shared`` at their sizes
(streaks tens of pixels long, mostly within 30 degrees of vertical, 1-3 pixels wide). They are listed
in ``training/README.md`` (training imports this module). :data:`PRESETS` adds named densities for
calibration and held-out sets (``light``: about Rain100L's amount of rain; ``heavy``: dense,
long, bright streaks with haze, heavier than Rain100H; see ``calibration/README.md``).

Images are NumPy float32 RGB in [0, 1], [3, H, W] (the toolkit's layout, :func:`sapnet_export.data.images.read_image`). Randomness comes only from the
``numpy.random.Generator`` passed in, so one seed gives one rendering on any machine.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from scipy import ndimage


@dataclass(frozen=True)
class RainRanges:
    """Ranges the renderer samples from (uniform unless said otherwise).

    Attributes:
        layers: number of streak layers, inclusive range.
        density: share of pixels that seed a drop in one layer, before the motion blur.
        length_px: motion-blur length of a streak, pixels.
        angle_deg: direction of the main layer from vertical, degrees (positive leans right).
        angle_spread_deg: largest deviation of the other layers' direction from the main one, degrees.
        width_sigma_px: Gaussian blur of the seeds (drop width), pixels.
        opacity: peak brightness of a layer after the levels stretch, in [0, 1].
        screen_probability: chance of the screen blend instead of the additive one.
        haze_probability: chance that the frame has haze (atmospheric light) at all.
        transmission: ``a`` of the image model when there is haze.
        atmospheric_light: ``A`` (grey level) when there is haze.
    """

    layers: tuple[int, int] = (1, 3)
    density: tuple[float, float] = (0.0005, 0.008)
    length_px: tuple[float, float] = (8.0, 40.0)
    angle_deg: tuple[float, float] = (-30.0, 30.0)
    angle_spread_deg: float = 15.0
    width_sigma_px: tuple[float, float] = (0.3, 1.0)
    opacity: tuple[float, float] = (0.15, 0.6)
    screen_probability: float = 0.5
    haze_probability: float = 0.1
    transmission: tuple[float, float] = (0.85, 0.97)
    atmospheric_light: tuple[float, float] = (0.7, 1.0)


#: Named rain densities (``calib build --synthetic-rain``, ``benchmarks/heavy_rain_set.py``). ``light``
#: stays near Rain100L (mean rainy - clean about 0.02); ``moderate`` is the training default
#: (:class:`RainRanges`); ``heavy`` has 2-3 dense layers of long bright streaks and haze in 30 % of the
#: frames (mean rainy - clean 0.165 on Rain100L's 100 backgrounds, seed 17: 7 times Rain100L). Changing a preset changes every set built from it: the manifests record its values.
PRESETS: dict[str, RainRanges] = {
    "light": RainRanges(layers=(1, 2), density=(0.0005, 0.004), length_px=(8.0, 30.0),
                        opacity=(0.15, 0.45), haze_probability=0.0),
    "moderate": RainRanges(),
    "heavy": RainRanges(layers=(2, 3), density=(0.004, 0.012), length_px=(20.0, 50.0),
                        width_sigma_px=(0.5, 1.2), opacity=(0.35, 0.7), haze_probability=0.3,
                        transmission=(0.8, 0.95)),
}
#: ``mixed`` alternates these presets frame by frame (even frames the first).
MIXED = ("light", "heavy")


def preset_for(name: str, index: int) -> tuple[str, RainRanges]:
    """The preset frame ``index`` of a ``name`` set uses: ``name`` itself, or for ``mixed`` the
    presets of :data:`MIXED` in turn. Raises ValueError for an unknown name."""
    if name == "mixed":
        name = MIXED[index % len(MIXED)]
    if name not in PRESETS:
        raise ValueError(f"unknown synthetic rain {name!r}: choose one of "
                         f"{', '.join((*PRESETS, 'mixed'))}")
    return name, PRESETS[name]


@dataclass(frozen=True)
class StreakLayer:
    """One sampled streak layer: seed density, length (px), angle from vertical (degrees), drop width
    (Gaussian sigma, px) and peak opacity in [0, 1]."""

    density: float
    length_px: float
    angle_deg: float
    width_sigma_px: float
    opacity: float


@dataclass(frozen=True)
class RainParams:
    """One sampled rendering: its layers, the blend (``add`` or ``screen``) and the haze, where
    ``transmission`` 1.0 means no haze."""

    layers: tuple[StreakLayer, ...]
    blend: str
    transmission: float
    atmospheric_light: float

    def as_dict(self) -> dict:
        """Plain-type form, for logs and checkpoint metadata."""
        return asdict(self)


def sample_params(rng: np.random.Generator, ranges: RainRanges = RainRanges()) -> RainParams:
    """Draw one rendering's parameters from ``ranges`` with ``rng``."""
    count = int(rng.integers(ranges.layers[0], ranges.layers[1] + 1))
    main_angle = rng.uniform(*ranges.angle_deg)
    layers = []
    for index in range(count):
        angle = main_angle if index == 0 else main_angle + rng.uniform(-ranges.angle_spread_deg,
                                                                       ranges.angle_spread_deg)
        layers.append(StreakLayer(density=float(rng.uniform(*ranges.density)),
                                  length_px=float(rng.uniform(*ranges.length_px)),
                                  angle_deg=float(angle),
                                  width_sigma_px=float(rng.uniform(*ranges.width_sigma_px)),
                                  opacity=float(rng.uniform(*ranges.opacity))))
    blend = "screen" if rng.random() < ranges.screen_probability else "add"
    if rng.random() < ranges.haze_probability:
        transmission = float(rng.uniform(*ranges.transmission))
        light = float(rng.uniform(*ranges.atmospheric_light))
    else:
        transmission, light = 1.0, 1.0
    return RainParams(tuple(layers), blend, transmission, light)


def motion_kernel(length_px: float, angle_deg: float) -> np.ndarray:
    """Normalised linear motion-blur kernel, float32 [K, K] summing to 1, for a streak of ``length_px``
    pixels at ``angle_deg`` from vertical. Samples along the segment are spread bilinearly, so
    fractional lengths and any angle give a smooth line."""
    length = max(float(length_px), 1.0)
    size = int(math.ceil(length)) | 1
    kernel = np.zeros((size, size), np.float32)
    centre = (size - 1) / 2.0
    theta = math.radians(angle_deg)
    dx, dy = math.sin(theta), math.cos(theta)
    for t in np.linspace(-(length - 1) / 2.0, (length - 1) / 2.0, max(int(length * 2), 2)):
        x, y = centre + t * dx, centre + t * dy
        x0, y0 = int(math.floor(x)), int(math.floor(y))
        fx, fy = x - x0, y - y0
        for yy, xx, w in ((y0, x0, (1 - fx) * (1 - fy)), (y0, x0 + 1, fx * (1 - fy)),
                          (y0 + 1, x0, (1 - fx) * fy), (y0 + 1, x0 + 1, fx * fy)):
            if 0 <= yy < size and 0 <= xx < size:
                kernel[yy, xx] += w
    return kernel / kernel.sum()


def render_layer(shape: tuple[int, int], layer: StreakLayer, rng: np.random.Generator) -> np.ndarray:
    """One streak layer, float32 [H, W] in [0, ``layer.opacity``]: noise seeds, drop-width blur,
    motion blur, then a levels stretch that maps the brightest 0.1 % to the opacity."""
    height, width = shape
    seeds = (rng.random((height, width)) < layer.density).astype(np.float32)
    seeds *= rng.uniform(0.5, 1.0, size=(height, width)).astype(np.float32)
    seeds = ndimage.gaussian_filter(seeds, layer.width_sigma_px, mode="wrap")
    streaks = ndimage.convolve(seeds, motion_kernel(layer.length_px, layer.angle_deg), mode="wrap")
    peak = float(np.percentile(streaks, 99.9))
    if peak <= 0.0:
        return np.zeros(shape, np.float32)
    return (np.clip(streaks / peak, 0.0, 1.0) * layer.opacity).astype(np.float32)


def render_rain(clean: np.ndarray, params: RainParams, rng: np.random.Generator) -> np.ndarray:
    """Render ``params`` on ``clean``.

    Args:
        clean: float32 [3, H, W] RGB in [0, 1].
        params: from :func:`sample_params`.
        rng: the generator the streak noise is drawn from.

    Returns:
        float32 [3, H, W] in [0, 1]: ``a * blend(B, sum S_t) + (1 - a) * A``.

    Raises:
        ValueError: ``clean`` is not [3, H, W] or not in [0, 1].
    """
    if clean.ndim != 3 or clean.shape[0] != 3:
        raise ValueError(f"clean image must be [3, H, W], got shape {clean.shape}")
    if clean.size and (float(clean.min()) < 0.0 or float(clean.max()) > 1.0):
        raise ValueError("clean image values must be in [0, 1]")
    streaks = np.zeros(clean.shape[1:], np.float32)
    for layer in params.layers:
        streaks += render_layer(clean.shape[1:], layer, rng)
    streaks = np.clip(streaks, 0.0, 1.0)[None]
    background = clean.astype(np.float32)
    if params.blend == "screen":
        rainy = 1.0 - (1.0 - background) * (1.0 - streaks)
    else:
        rainy = np.clip(background + streaks, 0.0, 1.0)
    rainy = params.transmission * rainy + (1.0 - params.transmission) * params.atmospheric_light
    return np.clip(rainy, 0.0, 1.0).astype(np.float32)


def make_rainy(clean: np.ndarray, seed: int | tuple[int, ...],
               ranges: RainRanges = RainRanges()) -> tuple[np.ndarray, RainParams]:
    """Sample parameters and render them with one generator seeded by ``seed``; the same seed and
    image always give the same float32 [3, H, W] result."""
    rng = np.random.default_rng(seed)
    params = sample_params(rng, ranges)
    return render_rain(clean, params, rng), params
