"""A multi-frame model file whose encoder stem also averages the aligned neighbours
(revamp.train.generator.mix_neighbours_into_stem), or one widened to more neighbours a side whose
stem averages the farther ones in as well (transfer_weights, then spread_neighbours_outward): the
start of a campaign leg.

    .venv/bin/python scripts/neighbour_mix.py SOURCE.safetensors OUT.safetensors --share 0.3
    .venv/bin/python scripts/neighbour_mix.py SOURCE.safetensors OUT.safetensors --neighbours 2 --outward 0.4

The file keeps the source's recipe (its training counts as the new file's) with the change noted;
it is saved in fp32, for training to start from.
"""
from __future__ import annotations

import argparse
from dataclasses import replace

from revamp.models.files import load_model, save_model
from revamp.models.unet import UNetGenerator
from revamp.train.generator import mix_neighbours_into_stem, spread_neighbours_outward, transfer_weights


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source")
    parser.add_argument("out")
    parser.add_argument("--share", type=float, help="of the frame's stem weights moved onto each neighbour")
    parser.add_argument("--neighbours", type=int, help="widen the model to this many neighbours a side")
    parser.add_argument("--outward", type=float, help="with --neighbours: of each side's nearest neighbour's stem weights moved onto each new one")
    args = parser.parse_args()
    if (args.share is None) == (args.neighbours is None) or (args.neighbours is None) != (args.outward is None):
        parser.error("give either --share, or --neighbours with --outward")
    model, meta = load_model(args.source)
    recipe = dict(meta.get("recipe") or {})
    if args.share is not None:
        mix_neighbours_into_stem(model, args.share)
        recipe["neighbour_mix"] = args.share
    else:
        inner = model.config.neighbours
        model = UNetGenerator(replace(model.config, neighbours=args.neighbours))
        transfer_weights(model, args.source)
        spread_neighbours_outward(model, inner, args.outward)
        recipe["neighbours_widened"] = {"from": inner, "outward": args.outward}
    save_model(model, args.out, name=meta["name"], task=meta["task"], recipe=recipe, half=False)


if __name__ == "__main__":
    main()
