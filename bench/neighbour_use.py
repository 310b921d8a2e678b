"""How much a multi-frame model takes from its neighbours, and what averaging them into its encoder
stem gives before any training (scripts/neighbour_mix.py; docs/models.md, `video-quality`).

    .venv/bin/python bench/neighbour_use.py --model video-quality [--data DIR] [--json FILE]

Each clip of DATA (default ../shared/data/video/train_clips) is compressed as `revamp eval --video`
does and restored frame by frame as `revamp video` restores it: without neighbours (each frame
given as its own neighbours, as a still is), with its aligned neighbours, and with them after the
stem's weights on the frame were moved onto the neighbours' at each share of SHARES that the model's
neighbours allow (revamp.train.generator.mix_neighbours_into_stem). Printed: ΔPSNR-Y over the compressed input
(BT.601 Y, no crop, mean over frames, then over clips), and the mean |weight| of the stem on the
frame's planes and on the neighbours'.
"""
from __future__ import annotations

import json

import torch
from training_clips import arguments, compressed_clips, frame_by_frame, mean_psnr_y, mean_row, summary_row, write_json

from revamp.inference.restorer import Restorer
from revamp.train.generator import mix_neighbours_into_stem, stem_planes
from revamp.video.job import restore_video_frame

DEGRADATIONS = [("h264", 37), ("h265", 37)]
SHARES = (0.15, 0.3)


def main() -> None:
    args = arguments(__doc__)
    plain = Restorer(args.model, backend="torch")
    if not plain.neighbours:
        raise SystemExit(f"{args.model} is not a multi-frame model")
    mixed = {}
    for share in (s for s in SHARES if s <= 1 / (2 * plain.neighbours)):  # more would leave the frame a negative share
        mixed[f"stem share {share:g}"] = restorer = Restorer(args.model, backend="torch")
        mix_neighbours_into_stem(restorer.eager_model, share)
    weights = stem_weights(plain.eager_model)
    print(json.dumps({"stem mean |weight|": weights}), flush=True)
    rows = []
    for kind, q, clips in compressed_clips(args, DEGRADATIONS, exact=plain.exact_video_rgb):
        gains: dict[str, list[float]] = {}
        for refs, comp, _, hints in clips:
            base = mean_psnr_y(comp, refs)
            alone = [restore_video_frame(plain, rgb, hint) for rgb, hint in zip(comp, hints)]
            gains.setdefault("without neighbours", []).append(mean_psnr_y(alone, refs) - base)
            gains.setdefault("with neighbours", []).append(mean_psnr_y(frame_by_frame(plain, comp, hints), refs) - base)
            for name, restorer in mixed.items():
                gains.setdefault(name, []).append(mean_psnr_y(frame_by_frame(restorer, comp, hints), refs) - base)
        rows.append(summary_row(kind, q, gains))
    write_json(args, stem_mean_abs_weight=weights, rows=rows, mean=mean_row(rows))


def stem_weights(model) -> dict[str, float]:
    """Mean |weight| of the encoder stem on the frame's RGB planes and on the neighbours' (after the
    restorer folded the BatchNorm into it)."""
    stem, frame, neighbours = stem_planes(model)
    weight = stem.weight.detach().float()
    return {"frame": round(weight[:, frame].abs().mean().item(), 4),
            "neighbours": round(torch.cat([weight[:, planes] for planes in neighbours], 1).abs().mean().item(), 4)}


if __name__ == "__main__":
    main()
