"""Clean photographs that ship with installed libraries: training data needing no download.

The toolkit's default weights are trained on these with synthetic rain (:mod:`training.rain`). None is
a Rain100L/H (BSD200) background, so Rain100L stays an honest test set. Greyscale ones become three
equal channels (texture and structure without colour).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sapnet_export.fileio import write_json
from sapnet_export.data.images import write_png


@dataclass(frozen=True)
class BundledPhoto:
    """One photograph: its name, the package and loader it comes from, and the split it goes to."""

    name: str
    package: str
    loader: str
    split: str


#: The photographs and their split. Validation ones are held out of training.
BUNDLED = (
    BundledPhoto("astronaut", "scikit-image", "skimage.data.astronaut", "train"),
    BundledPhoto("chelsea", "scikit-image", "skimage.data.chelsea", "train"),
    BundledPhoto("rocket", "scikit-image", "skimage.data.rocket", "train"),
    BundledPhoto("brick", "scikit-image", "skimage.data.brick", "train"),
    BundledPhoto("grass", "scikit-image", "skimage.data.grass", "train"),
    BundledPhoto("gravel", "scikit-image", "skimage.data.gravel", "train"),
    BundledPhoto("grace_hopper", "matplotlib", "matplotlib sample_data/grace_hopper.jpg", "train"),
    BundledPhoto("coffee", "scikit-image", "skimage.data.coffee", "val"),
    BundledPhoto("camera", "scikit-image", "skimage.data.camera", "val"),
)


def load_bundled(photo: BundledPhoto) -> np.ndarray:
    """The photograph as float32 [3, H, W] RGB in [0, 1]."""
    if photo.package == "matplotlib":
        from matplotlib import cbook
        from PIL import Image

        with Image.open(cbook.get_sample_data(Path(photo.loader).name, asfileobj=False)) as image:
            array = np.asarray(image.convert("RGB"))
    else:
        import skimage.data

        array = getattr(skimage.data, photo.loader.rsplit(".", 1)[-1])()
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=2)
    return (array[..., :3].astype(np.float32) / 255.0).transpose(2, 0, 1).copy()


def write_bundled(output: str | Path) -> dict:
    """Write every :data:`BUNDLED` photograph as ``output/<split>/<name>.png`` and a
    ``output/SOURCES.json`` that names each file's package, version and loader; return that record.

    Raises:
        InputError: the folder cannot be written.
    """
    import matplotlib
    import skimage

    output = Path(output)
    versions = {"scikit-image": skimage.__version__, "matplotlib": matplotlib.__version__}
    record = {"photos": []}
    for photo in BUNDLED:
        image = load_bundled(photo)
        path = write_png(output / photo.split / f"{photo.name}.png", image)
        record["photos"].append({"file": str(path.relative_to(output)), "package": photo.package,
                                 "version": versions[photo.package], "loader": photo.loader,
                                 "split": photo.split, "height": image.shape[1],
                                 "width": image.shape[2]})
    write_json(output / "SOURCES.json", record)
    return record
