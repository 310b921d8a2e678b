"""A campaign's model file made into a shipped one: fp16, under the product's model name, and told the
quantisers of codecs it learnt blind where that measured better (the recipe's ``told_codecs``,
revamp.models.files.blind_video_codecs; the training record itself is kept). Settings chosen for
it on the training clips, which `revamp video` then uses: ``--stabilize MIX``, the stabiliser's
mix (bench/stabilizer_mix.py; revamp.models.files.stabiliser_mix), ``--h265-hint-scale S`` and
``--h264-hint-scale S``, the share of an H.265 frame's slice-QP step or of an H.264 frame's
macroblock steps it is told (bench/video_hint_scale.py; revamp.models.files.hint_scales).
``--mean-with`` averages it tensor by tensor with other
weights of the same network (for example the run's previous validation, or the file it started
from), recorded as the recipe's ``weight_mix`` with each file's step.

    .venv/bin/python scripts/ship_model.py BEST.safetensors src/revamp/weights/video-quality.safetensors \
        --name video-quality --tell h265 --note "told H.265's slice QP: Vid4 ... (docs/models.md)"

Then update src/revamp/weights/SHA256SUMS and the evaluations the docs quote.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

from revamp.models.files import (
    ModelFileError,
    blind_video_codecs,
    hint_scales,
    load_model,
    save_model,
    stabiliser_mix,
)


def _weights_step(meta: dict) -> int | None:
    # the step the file's weights were written at (a run's best or last), not its best validation's
    return (meta.get("recipe") or {}).get("steps")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source")
    parser.add_argument("out")
    parser.add_argument("--name", required=True, help="the model name the product knows it by")
    parser.add_argument("--tell", action="append", default=[], help="a codec the model learnt blind whose quantisers it is to be told")
    parser.add_argument("--note", help="why, in the recipe's shipping_note (required with --tell, --stabilize and the hint scales)")
    parser.add_argument("--stabilize", type=float, metavar="MIX", help="the video stabiliser's mix for this model, in [0, 1)")
    parser.add_argument("--h265-hint-scale", type=float, metavar="S", help="the share of an H.265 frame's slice-QP step it is told, in (0, 2]")
    parser.add_argument("--h264-hint-scale", type=float, metavar="S",
                        help="the share of an H.264 frame's macroblock steps it is told, in (0, 2]")
    parser.add_argument("--mean-with", action="append", default=[], metavar="FILE", help="average with these weights of the same network, tensor by tensor")
    args = parser.parse_args()
    model, meta = load_model(args.source)
    recipe = dict(meta.get("recipe") or {})
    if args.mean_with:
        others = [load_model(path) for path in args.mean_with]
        if any(other.config != model.config for other, _ in others):  # compared with defaults filled in: older files omit newer keys
            parser.error("--mean-with needs files of the same network as the source")
        states = [model.state_dict()] + [other.state_dict() for other, _ in others]
        model.load_state_dict({k: torch.stack([s[k] for s in states]).mean(0) if v.is_floating_point() else v for k, v in states[0].items()})
        recipe["weight_mix"] = {"share": 1 / len(states), "with": [{"file": Path(path).name, "step": _weights_step(m)} for path, (_, m) in zip(args.mean_with, others)],
                                "note": f"the mean, tensor by tensor, of these weights (step {_weights_step(meta)} of their run) and those in `with`"}
    unknown = set(args.tell) - blind_video_codecs(recipe)
    if unknown:
        parser.error(f"{args.source} did not learn {', '.join(sorted(unknown))} blind: nothing to tell")
    settings = (args.stabilize, args.h265_hint_scale, args.h264_hint_scale)
    if (args.tell or any(v is not None for v in settings)) and not args.note:
        parser.error("--tell, --stabilize and the hint scales need a --note that says what was measured")
    if args.tell:
        recipe["told_codecs"] = sorted(args.tell)
    if args.stabilize is not None:
        recipe["stabilize"] = args.stabilize
    if args.h265_hint_scale is not None:
        if "h265" in blind_video_codecs(recipe):
            parser.error("--h265-hint-scale is for a model told H.265 (--tell h265)")
        recipe["h265_hint_scale"] = args.h265_hint_scale
    if args.h264_hint_scale is not None:
        recipe["h264_hint_scale"] = args.h264_hint_scale
    try:  # the bounds a model file is read with
        stabiliser_mix(recipe), hint_scales(recipe)
    except ModelFileError as exc:
        parser.error(str(exc))
    if args.note:
        recipe["shipping_note"] = args.note
    save_model(model, args.out, name=args.name, task=meta["task"], recipe=recipe)


if __name__ == "__main__":
    main()
