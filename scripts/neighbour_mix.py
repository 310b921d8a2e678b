"""A multi-frame model file whose encoder stem also averages the aligned neighbours
(revamp.train.generator.mix_neighbours_into_stem): the start of a campaign leg.

    .venv/bin/python scripts/neighbour_mix.py SOURCE.safetensors OUT.safetensors --share 0.3

The file keeps the source's recipe (its training counts as the new file's) with the share noted;
it is saved in fp32, for training to start from.
"""
from __future__ import annotations

import argparse

from revamp.models.files import load_model, save_model
from revamp.train.generator import mix_neighbours_into_stem


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source")
    parser.add_argument("out")
    parser.add_argument("--share", type=float, required=True, help="of the frame's stem weights moved onto each neighbour")
    args = parser.parse_args()
    model, meta = load_model(args.source)
    mix_neighbours_into_stem(model, args.share)
    recipe = dict(meta.get("recipe") or {}, neighbour_mix=args.share)
    save_model(model, args.out, name=meta["name"], task=meta["task"], recipe=recipe, half=False)


if __name__ == "__main__":
    main()
