"""DeOldify-style dynamic U-Net generator with a timm encoder.

The encoder is any timm backbone built with ``features_only=True``; the decoder
has one PixelShuffle up-block per encoder stage (each with a skip connection),
SAGAN self-attention in a low-resolution block, a light full-resolution stage
that sees the input pixels, optional super-resolution heads, and a global
residual so an untrained network is the identity (bicubic for SR).

Two variants of the decoder's shallow end (``UNetConfig.decoder``):
- ``full``: stride-2 block at 2 x width, full-resolution stage of width channels with a residual
  block (DeOldify's layout; at 720p that stage alone is 54 of 139 GFLOPs);
- ``light``: stride-2 block at width, full-resolution head of width/2 channels and one conv, so
  most of the work happens at stride 2 or deeper (about 2.5x fewer FLOPs).
``head_blocks`` adds residual blocks after the full-resolution stage, each starting as the identity,
so a trained model gains capacity where the network sees the input's pixels without changing what
it computes until trained.

A codec-aware model (``cond_channels`` > 0) takes extra input planes after the image channels:
what the file says about its quantiser (``revamp.codec.CodecHint.planes``). A multi-frame model
(``neighbours`` > 0) takes, after those, the RGB of that many frames on each side, aligned to the
frame being restored (``revamp.video.neighbours``), and with ``neighbour_quality`` one plane per
neighbour that says how much finer than the frame it was quantised. All enter the encoder and the
full-resolution head; a model that gains them starts with zero weights for them
(``revamp.train.generator.transfer_weights``), so it starts as the model it came from.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import timm
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrizations

from revamp.models.contract import NEUTRAL_QUALITY

ENCODERS = ("mobilenetv3_small_100", "mobilenetv3_large_100", "resnet34")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class UNetConfig:
    """Everything needed to rebuild the generator; stored in model files."""

    encoder: str = "mobilenetv3_large_100"
    width: int = 32  # channels of the full-resolution stage; deeper blocks use multiples
    scale: int = 1  # 1: artifact removal, 2 or 4: super-resolution
    self_attention: bool = True
    spectral_norm: bool = False
    in_channels: int = 3
    decoder: str = "full"  # "full" or "light" (see the module docstring)
    cond_channels: int = 0  # extra input planes (codec conditioning), after the image channels
    neighbours: int = 0  # frames on each side, as aligned RGB planes after the codec planes
    head_blocks: int = 0  # residual blocks added at full resolution, each starting as the identity
    neighbour_quality: bool = False  # a quality plane per neighbour, after the neighbours' RGB
    neighbour_window: int = 1  # pixels square over which a neighbour's gate measures its mismatch (revamp.video.neighbours)
    neighbour_step_gate: bool = False  # the gate's tolerance follows the frame's quantiser step (revamp.video.neighbours)

    def __post_init__(self) -> None:
        if self.encoder not in ENCODERS:
            raise ValueError(f"unknown encoder {self.encoder!r}; choose from {', '.join(ENCODERS)}")
        if self.scale not in (1, 2, 4):
            raise ValueError(f"scale must be 1, 2 or 4, not {self.scale}")
        if self.decoder not in ("full", "light"):
            raise ValueError(f"decoder must be 'full' or 'light', not {self.decoder!r}")
        # Checked before anything is built: a model file's metadata is untrusted input, and an
        # absurd width would allocate gigabytes before the weights could disagree with it.
        for name, kind, low, high in (("width", int, 8, 512), ("in_channels", int, 1, 4), ("cond_channels", int, 0, 8),
                                      ("neighbours", int, 0, 4), ("head_blocks", int, 0, 4), ("self_attention", bool, 0, 1), ("spectral_norm", bool, 0, 1),
                                      ("neighbour_quality", bool, 0, 1), ("neighbour_window", int, 1, 15),
                                      ("neighbour_step_gate", bool, 0, 1)):
            value = getattr(self, name)
            if not isinstance(value, kind) or (kind is int and isinstance(value, bool)) or not low <= value <= high:
                raise ValueError(f"{name} must be {'true or false' if kind is bool else f'an integer from {low} to {high}'}, not {value!r}")

    @property
    def input_planes(self) -> int:
        """Channels of the network's input: image, codec planes, neighbouring frames, their quality."""
        return self.in_channels + self.cond_channels + self.neighbour_planes

    @property
    def neighbour_planes(self) -> int:
        """Planes of the neighbouring frames: their RGB, then (``neighbour_quality``) one each."""
        return 2 * self.neighbours * (self.in_channels + self.neighbour_quality)

    def to_dict(self) -> dict:
        return asdict(self)


def icnr_(weight: torch.Tensor, upscale: int) -> None:
    """ICNR init (Aitken et al. 2017): a sub-pixel conv that starts as nearest upsampling."""
    out_ch, in_ch, kh, kw = weight.shape
    sub = torch.empty(out_ch // upscale**2, in_ch, kh, kw)
    nn.init.kaiming_normal_(sub)
    weight.data.copy_(sub.repeat_interleave(upscale**2, dim=0))


class Blur(nn.Module):
    """2x2 box blur, stride 1, the top and left edges repeated (fast.ai's PixelShuffle_ICNR blur).
    Written as a padded average that leaves padding out of the count rather than as
    ReplicationPad2d + AvgPool2d: same values, but CPU autocast runs replication padding in fp32,
    which made a full-resolution fp32 copy. Without it `full` (the full decoder) is 1.26x faster in
    bf16 (median of 8 runs of `bench/model_ab.py --change blur`), with bit-identical output."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        return F.avg_pool2d(x, 2, stride=1, padding=1, count_include_pad=False)[..., :h, :w]


class PixelShuffleICNR(nn.Module):
    """x2 upsampling: 1x1 conv to 4x channels, PixelShuffle, then a 2x2 blur against checkerboards
    (``blur=False`` leaves that to the 3x3 conv that follows: the blur is memory-bound and slow at
    full resolution on a CPU)."""

    def __init__(self, in_ch: int, out_ch: int, blur: bool = True):
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch * 4, 1)
        icnr_(self.conv.weight, 2)
        nn.init.zeros_(self.conv.bias)
        self.shuffle = nn.PixelShuffle(2)
        self.blur = Blur() if blur else nn.Identity()
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blur(self.shuffle(self.act(self.conv(x))))


class SelfAttention(nn.Module):
    """SAGAN self-attention as in DeOldify; gamma starts at 0 so it is off at init."""

    def __init__(self, ch: int):
        super().__init__()
        self.query = nn.Conv1d(ch, max(ch // 8, 1), 1, bias=False)
        self.key = nn.Conv1d(ch, max(ch // 8, 1), 1, bias=False)
        self.value = nn.Conv1d(ch, ch, 1, bias=False)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        # Positions as tokens, (b, hw, c): a free view of a channels_last tensor. The 1x1 Conv1d
        # weights act as linear maps; the same function as Conv1d on (b, c, hw), which
        # torch.compile's CPU code got wrong on a channels_last view (NaN; tests/test_models.py).
        tokens = x.permute(0, 2, 3, 1).reshape(b, h * w, c)
        q, k, v = (F.linear(tokens, conv.weight.squeeze(-1)).unsqueeze(1) for conv in (self.query, self.key, self.value))
        out = F.scaled_dot_product_attention(q, k, v).squeeze(1)  # (b, hw, c)
        return x + self.gamma * out.reshape(b, h, w, c).permute(0, 3, 1, 2)


def conv_relu(in_ch: int, out_ch: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, 3, padding=1), nn.ReLU(inplace=True))


def cat_channels(*tensors: torch.Tensor) -> torch.Tensor:
    """Concatenate along channels in the narrowest float dtype present. Under bf16 autocast the
    conv that follows casts its input to bf16 anyway, so the result is the same, but a cat of
    bf16 with fp32 would first build a full-resolution fp32 copy (a third of the time per
    frame on CPU)."""
    dtype = min((t.dtype for t in tensors), key=lambda d: torch.finfo(d).bits)
    return torch.cat([t.to(dtype) for t in tensors], dim=1)


class UpBlock(nn.Module):
    """Upsample the deeper features x2, concatenate the skip, two 3x3 convs."""

    def __init__(self, in_ch: int, skip_ch: int, out_ch: int, attention: bool, blur: bool = True):
        super().__init__()
        self.up = PixelShuffleICNR(in_ch, in_ch // 2, blur)
        self.skip_norm = nn.BatchNorm2d(skip_ch)
        self.conv = nn.Sequential(conv_relu(in_ch // 2 + skip_ch, out_ch), conv_relu(out_ch, out_ch))
        self.attention = SelfAttention(out_ch) if attention else nn.Identity()

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = self.up(x)
        if x.shape[-2:] != skip.shape[-2:]:
            x = F.interpolate(x, size=skip.shape[-2:], mode="nearest")
        return self.attention(self.conv(cat_channels(x, self.skip_norm(skip))))


class ResBlock(nn.Module):
    def __init__(self, ch: int, identity: bool = False):
        super().__init__()
        self.body = nn.Sequential(conv_relu(ch, ch), nn.Conv2d(ch, ch, 3, padding=1))
        if identity:  # the last conv at zero: the block starts as the identity (a trained model keeps its function)
            nn.init.zeros_(self.body[-1].weight)
            nn.init.zeros_(self.body[-1].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class UNetGenerator(nn.Module):
    """Restores (and optionally upscales) an RGB image in [0, 1].

    Input height and width must be multiples of ``size_multiple`` (32); the
    inference code pads. Output = base(input) + correction, where base is the
    input itself (scale 1) or its bicubic upscale.
    """

    size_multiple = 32

    def __init__(self, config: UNetConfig = UNetConfig()):
        super().__init__()
        self.config = config
        w = config.width
        self.encoder = timm.create_model(
            config.encoder, pretrained=False, features_only=True, in_chans=config.input_planes
        )
        enc_ch = self.encoder.feature_info.channels()
        enc_strides = self.encoder.feature_info.reduction()
        if enc_strides[-1] != 32:
            raise ValueError(f"encoder {config.encoder} must reach stride 32, got {enc_strides}")
        # ImageNet normalisation of the RGB channels (the neighbours' too); the codec planes pass
        # through (mean 0, std 1); the quality planes are centred on their neutral 0.5.
        cond, frames, quality = config.cond_channels, 1 + 2 * config.neighbours, 2 * config.neighbours * config.neighbour_quality
        mean = IMAGENET_MEAN + (0.0,) * cond + IMAGENET_MEAN * (frames - 1) + (NEUTRAL_QUALITY,) * quality
        std = IMAGENET_STD + (1.0,) * cond + IMAGENET_STD * (frames - 1) + (0.5,) * quality
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1), persistent=False)

        # Bottleneck on the deepest features (1x1 squeeze keeps it light), then one
        # up-block per shallower stage.
        # Self-attention: at stride 16 in the full decoder (DeOldify); at stride 32 in the light one,
        # where it costs 16x less (at 720p, 3680 positions at stride 16 took 0.12 s of 0.57 s).
        light = config.decoder == "light"
        in_ch = 8 * w
        middle: list[nn.Module] = [nn.Conv2d(enc_ch[-1], in_ch, 1), nn.ReLU(inplace=True), conv_relu(in_ch, in_ch)]
        if light and config.self_attention:
            middle.append(SelfAttention(in_ch))
        self.middle = nn.Sequential(*middle)
        self.up_blocks = nn.ModuleList()
        skips = list(zip(enc_ch[:-1], enc_strides[:-1]))[::-1]  # deep to shallow
        for skip_ch, stride in skips:
            out_ch = w * min(stride // 2, 8) if stride > 2 else w * (1 if light else 2)
            attention = config.self_attention and stride == 16 and not light
            self.up_blocks.append(UpBlock(in_ch, skip_ch, out_ch, attention, blur=not (light and stride == 2)))
            in_ch = out_ch
        # Full-resolution stage (DeOldify's "last cross"): sees the raw input pixels.
        full_ch = w // 2 if light else w
        self.up_full = PixelShuffleICNR(in_ch, full_ch, blur=not light)
        cross = conv_relu(full_ch + config.input_planes, full_ch)
        self.full_res = nn.Sequential(cross, ResBlock(full_ch)) if config.decoder == "full" else cross
        # Capacity where the network sees the input's pixels, added to a trained model without changing it.
        self.head = nn.Sequential(*(ResBlock(full_ch, identity=True) for _ in range(config.head_blocks)))
        sr_layers: list[nn.Module] = []
        for _ in range({1: 0, 2: 1, 4: 2}[config.scale]):
            sr_layers += [PixelShuffleICNR(full_ch, full_ch), conv_relu(full_ch, full_ch)]
        self.sr_head = nn.Sequential(*sr_layers)
        self.to_rgb = nn.Conv2d(full_ch, config.in_channels, 3, padding=1)
        # Zero init of the last layer: the untrained network returns its base exactly.
        nn.init.zeros_(self.to_rgb.weight)
        nn.init.zeros_(self.to_rgb.bias)
        if config.spectral_norm:
            apply_spectral_norm(self)

    def decoder_modules(self) -> list[nn.Module]:
        return [self.middle, self.up_blocks, self.up_full, self.full_res, self.head, self.sr_head, self.to_rgb]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        m = self.size_multiple
        if h % m or w % m:
            raise ValueError(f"input size {h}x{w} must be a multiple of {m}; pad it first")
        n = self.config.in_channels
        image = x[:, :n]
        feats = self.encoder((x - self.mean) / self.std)
        y = self.middle(feats[-1])
        for block, skip in zip(self.up_blocks, feats[-2::-1]):
            y = block(y, skip)
        y = self.up_full(y)
        if y.shape[-2:] != x.shape[-2:]:
            y = F.interpolate(y, size=x.shape[-2:], mode="nearest")
        y = self.head(self.full_res(cat_channels(y, x)))
        correction = self.to_rgb(self.sr_head(y))
        if self.config.scale == 1:
            base = image
        else:
            base = F.interpolate(image, scale_factor=self.config.scale, mode="bicubic", align_corners=False)
        return base + correction


def apply_spectral_norm(model: UNetGenerator) -> None:
    """Spectral norm on every decoder conv (DeOldify's NormType.Spectral), except the
    zero-initialised output layer, whose spectral norm would start at 0."""
    for part in model.decoder_modules()[:-1]:
        for module in part.modules():
            if isinstance(module, (nn.Conv2d, nn.Conv1d)):
                parametrizations.spectral_norm(module)


def fold_spectral_norm(model: nn.Module) -> None:
    """Replace spectral-norm parametrizations with plain weights (for export/shipping)."""
    from torch.nn.utils import parametrize

    for module in model.modules():
        if parametrize.is_parametrized(module, "weight"):
            parametrize.remove_parametrizations(module, "weight", leave_parametrized=True)


def fold_batchnorm(model: nn.Module) -> int:
    """Fold every BatchNorm that directly follows a conv (the encoder's conv-BN pairs) into that
    conv, for inference: the same function up to float rounding, one pass over the activations
    fewer per pair (`bench/model_ab.py --change fold-batchnorm` measures the gain). timm's BatchNormAct2d keeps its
    activation. The decoder's skip BatchNorms follow no conv and stay. Returns the pairs folded."""
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    if model.training:
        raise ValueError("fold_batchnorm is for inference: call model.eval() first")
    folded = 0
    for parent in list(model.modules()):
        children = list(parent.named_children())
        # Child order is execution order in timm's blocks and in ours (conv, then its norm).
        for (conv_name, conv), (bn_name, bn) in zip(children, children[1:]):
            if type(conv) is nn.Conv2d and isinstance(bn, nn.BatchNorm2d) and bn.running_mean is not None:
                setattr(parent, conv_name, fuse_conv_bn_eval(conv, bn))
                setattr(parent, bn_name, nn.Sequential(getattr(bn, "drop", nn.Identity()), getattr(bn, "act", nn.Identity())))
                folded += 1
    return folded


def load_encoder_weights(model: UNetGenerator, path: str) -> list[str]:
    """Load encoder weights from a safetensors file (e.g. converted ImageNet weights).

    Keys may be those of the full timm classifier; head keys are ignored. Returns
    the encoder keys the file did not provide.
    """
    from safetensors.torch import load_file

    state = load_file(path)
    state = {k.removeprefix("encoder."): v for k, v in state.items()}
    own = model.encoder.state_dict()
    usable = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    if not usable:
        raise ValueError(f"{path}: no tensor matches the {model.config.encoder} encoder")
    model.encoder.load_state_dict(usable, strict=False)
    return sorted(set(own) - set(usable))
