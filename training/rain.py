"""The synthetic-rain renderer, kept for training's imports: it lives in
:mod:`sapnet_export.data.synthetic_rain` so that calibration (in the package) can use it too; ``training``
depends on ``sapnet_export``, never the other way round."""

from sapnet_export.data.synthetic_rain import (PRESETS, RainParams, RainRanges, StreakLayer, make_rainy,
                                               motion_kernel, preset_for, render_layer, render_rain,
                                               sample_params)

__all__ = ["PRESETS", "RainParams", "RainRanges", "StreakLayer", "make_rainy", "motion_kernel",
           "preset_for", "render_layer", "render_rain", "sample_params"]
