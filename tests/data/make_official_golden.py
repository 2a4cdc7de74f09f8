"""Make ``official_golden.npz``: outputs of the *official* SAPNet code on fixed inputs.

Run once, by hand, with a checkout of the official repository (not part of this project):

    python tests/data/make_official_golden.py --official-repo PATH/SAPNet-for-image-deraining \
        --weights ../shared/weights/sapnet_official_model11.pth

It imports ``Modeling/network.py`` from that checkout, loads the published checkpoint and saves, for
two seeded random inputs (float32 [1,3,24,20] and [2,3,9,31] in [0, 1]), the input and the six stage
outputs of the official ``SAPNet.forward``. ``tests/test_model.py`` checks this package against them
(max abs <= 1e-5), so CI compares with the official implementation without having it.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import torch


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--official-repo", required=True)
    parser.add_argument("--weights", required=True)
    parser.add_argument("--out", default="tests/data/official_golden.npz")
    args = parser.parse_args()
    sys.path.insert(0, args.official_repo)
    from Modeling.network import SAPNet as OfficialSAPNet  # noqa: PLC0415 - the checkout is on sys.path now

    model = OfficialSAPNet(recurrent_iter=6, use_dilation=True).eval()
    state = torch.load(args.weights, map_location="cpu", weights_only=True)
    model.load_state_dict({k.removeprefix("module."): v for k, v in state.items()}, strict=True)
    rng = np.random.default_rng(2022)
    arrays = {}
    for index, shape in enumerate([(1, 3, 24, 20), (2, 3, 9, 31)]):
        rainy = rng.random(shape, dtype=np.float32)
        with torch.no_grad():
            _, stages = model(torch.from_numpy(rainy))
        arrays[f"input{index}"] = rainy
        arrays[f"stages{index}"] = np.stack([s.numpy() for s in stages])
    np.savez_compressed(args.out, **arrays)
    print(f"wrote {args.out}: " + ", ".join(f"{k} {v.shape}" for k, v in arrays.items()))


if __name__ == "__main__":
    main()
