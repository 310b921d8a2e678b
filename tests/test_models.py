import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from revamp.models import ENCODERS, UNetConfig, UNetGenerator
from revamp.models.files import ModelFileError, load_model, read_metadata, save_model
from revamp.models.unet import fold_spectral_norm, load_encoder_weights


@pytest.mark.parametrize("encoder", ENCODERS)
@pytest.mark.parametrize("scale", [1, 2, 4])
def test_shapes_and_identity_at_init(encoder, scale):
    torch.manual_seed(0)
    model = UNetGenerator(UNetConfig(encoder=encoder, width=16, scale=scale)).eval()
    x = torch.rand(2, 3, 64, 96)
    with torch.no_grad():
        y = model(x)
    assert y.shape == (2, 3, 64 * scale, 96 * scale)
    base = x if scale == 1 else F.interpolate(x, scale_factor=scale, mode="bicubic", align_corners=False)
    # Global residual with a zero-initialised last layer: an untrained net returns its base.
    assert torch.allclose(y, base, atol=1e-6)


def test_every_encoder_stage_feeds_the_decoder():
    model = UNetGenerator(UNetConfig(encoder="mobilenetv3_small_100", width=16))
    assert len(model.up_blocks) == len(model.encoder.feature_info.channels()) - 1
    assert any(isinstance(m, type(model.up_blocks[0].attention)) and hasattr(m, "gamma") for m in model.modules())


def test_trained_corrections_flow_through_all_parts():
    """After a step of training, the output depends on the input through the decoder (not only the residual)."""
    torch.manual_seed(0)
    model = UNetGenerator(UNetConfig(encoder="mobilenetv3_small_100", width=16))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x, target = torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 64)
    for _ in range(3):
        loss = F.mse_loss(model(x), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert model.to_rgb.weight.abs().sum() > 0
    assert model.encoder.conv_stem.weight.grad is not None and model.encoder.conv_stem.weight.grad.abs().sum() > 0


def test_rejects_sizes_that_are_not_multiples_of_32():
    model = UNetGenerator(UNetConfig(encoder="mobilenetv3_small_100", width=8))
    with pytest.raises(ValueError, match="multiple of 32"):
        model(torch.rand(1, 3, 50, 64))


def test_bad_config_values():
    with pytest.raises(ValueError, match="unknown encoder"):
        UNetConfig(encoder="vgg19")
    with pytest.raises(ValueError, match="scale"):
        UNetConfig(scale=3)


def test_spectral_norm_folds_to_the_same_function(tmp_path):
    torch.manual_seed(0)
    model = UNetGenerator(UNetConfig(encoder="mobilenetv3_small_100", width=8, spectral_norm=True))
    torch.nn.init.normal_(model.to_rgb.weight, std=0.1)
    assert hasattr(model.up_full.conv, "parametrizations")
    model(torch.rand(1, 3, 64, 64))  # a training-mode pass updates the power-iteration vectors
    model.eval()
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        before = model(x)
        fold_spectral_norm(model)
        after = model(x)
    assert torch.allclose(before, after, atol=1e-5)


def test_model_file_round_trip(tmp_path):
    torch.manual_seed(1)
    model = UNetGenerator(UNetConfig(encoder="mobilenetv3_small_100", width=8, scale=2))
    torch.nn.init.normal_(model.to_rgb.weight, std=0.05)
    path = tmp_path / "m.safetensors"
    save_model(model, path, name="t", task="test", recipe={"steps": 3}, half=False)
    loaded, meta = load_model(path)
    assert meta["config"]["scale"] == 2 and meta["recipe"]["steps"] == 3
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(model.eval()(x), loaded(x), atol=1e-6)


def _rewrite_config(path, out, edit):
    """A copy of a model file at ``out``: the same tensors, its metadata's architecture config passed through ``edit``."""
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        meta, tensors = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}
    save_file(tensors, str(out), metadata=dict(meta, config=json.dumps(edit(json.loads(meta["config"])))))


def test_load_rejects_mismatching_weights(tmp_path):
    model = UNetGenerator(UNetConfig(encoder="mobilenetv3_small_100", width=8))
    path = tmp_path / "m.safetensors"
    save_model(model, path, name="t", task="test", recipe={})
    # Same tensors, metadata claiming another width: must be refused with a clear message.
    bad = tmp_path / "bad.safetensors"
    _rewrite_config(path, bad, lambda cfg: dict(cfg, width=16))
    with pytest.raises(ModelFileError, match="do not match the architecture"):
        load_model(bad)


def test_training_runs_follow_init_and_whole_transfers_but_not_partial_ones():
    from revamp.models.files import training_runs

    source = {"steps": 1934}
    stage1 = {"steps": 3500, "transfer": {"file": "full.safetensors", "whole": False}, "init_recipe": source}
    stage2 = {"steps": 800, "init": "stage1.safetensors", "init_recipe": stage1}
    last = {"steps": 1800, "init": "stage2.safetensors", "init_recipe": stage2}
    assert [r["steps"] for r in training_runs(last)] == [1800, 800, 3500]  # a partly transferred source is not this model's training
    assert training_runs(source) == [source]
    grown = {"steps": 900, "transfer": {"file": "last.safetensors", "whole": True}, "init_recipe": last}  # e.g. head_blocks added
    assert [r["steps"] for r in training_runs(grown)] == [900, 1800, 800, 3500]
    older = {"steps": 900, "transfer": "full.safetensors", "init_recipe": source}  # files written before the transfer record
    assert training_runs(older) == [older]


def test_load_refuses_pickles_and_foreign_files(tmp_path):
    pth = tmp_path / "model.pth"
    pth.write_bytes(b"\x80\x04not really a pickle")
    with pytest.raises(ModelFileError, match="only .safetensors"):
        read_metadata(pth)
    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, str(foreign))
    with pytest.raises(ModelFileError, match="not a revamp model"):
        read_metadata(foreign)
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"garbage")
    with pytest.raises(ModelFileError, match="not a readable safetensors"):
        read_metadata(garbage)


def test_encoder_weights_file(tmp_path):
    import timm

    source = timm.create_model("mobilenetv3_small_100", pretrained=False)  # the full classifier's keys
    torch.nn.init.constant_(source.conv_stem.weight, 0.5)
    path = tmp_path / "enc.safetensors"
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(path))
    model = UNetGenerator(UNetConfig(encoder="mobilenetv3_small_100", width=8))
    missing = load_encoder_weights(model, str(path))
    assert missing == []
    assert torch.all(model.encoder.conv_stem.weight == 0.5)


@pytest.mark.parametrize("scale", [1, 2])
def test_light_decoder_is_the_identity_at_init_and_does_less_work(scale):
    from torch.utils.flop_counter import FlopCounterMode

    torch.manual_seed(0)
    flops = {}
    for decoder in ("full", "light"):
        model = UNetGenerator(UNetConfig(encoder="mobilenetv3_large_100", width=32, scale=scale, decoder=decoder)).eval()
        x = torch.rand(1, 3, 128, 160)
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            y = model(x)
        flops[decoder] = counter.get_total_flops()
        base = x if scale == 1 else F.interpolate(x, scale_factor=scale, mode="bicubic", align_corners=False)
        assert torch.allclose(y, base, atol=1e-6)
    assert flops["light"] < 0.5 * flops["full"]
    with pytest.raises(ValueError, match="decoder"):
        UNetConfig(decoder="heavy")


def test_codec_aware_model_takes_extra_planes_and_uses_them():
    torch.manual_seed(0)
    model = UNetGenerator(UNetConfig(encoder="mobilenetv3_small_100", width=16, decoder="light", cond_channels=2))
    x = torch.rand(2, 5, 64, 64)
    assert model(x).shape == (2, 3, 64, 64)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(3):  # after training, the planes change the output (encoder and head both see them)
        loss = F.mse_loss(model(x), torch.rand(2, 3, 64, 64))
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        told = model(x)
        x[:, 3:] = 0
        blind = model(x)
    assert (told - blind).abs().max() > 1e-4


def test_transfer_keeps_the_source_function_and_zeroes_new_input_channels(tmp_path):
    from revamp.train.generator import transfer_weights

    torch.manual_seed(0)
    source = UNetGenerator(UNetConfig(encoder="mobilenetv3_small_100", width=16))
    with torch.no_grad():  # a "trained" source: non-zero output layer
        source.to_rgb.weight.normal_(0, 0.01)
    save_model(source, tmp_path / "src.safetensors", name="src", task="test", recipe={})
    source = load_model(tmp_path / "src.safetensors")[0]  # as stored (fp16)
    aware = UNetGenerator(UNetConfig(encoder="mobilenetv3_small_100", width=16, cond_channels=2))
    copied, fresh, source_left = transfer_weights(aware, str(tmp_path / "src.safetensors"))
    assert fresh == 0 and copied == len(aware.state_dict()) and source_left == 0
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        expected = source.eval()(x)
        for planes in (torch.zeros(1, 2, 64, 64), torch.rand(1, 2, 64, 64)):
            # the stem's and the head's new input channels start at zero: the planes change nothing yet
            assert (aware.eval()(torch.cat([x, planes], 1)) - expected).abs().max() < 1e-4
    light = UNetGenerator(UNetConfig(encoder="mobilenetv3_small_100", width=16, decoder="light"))
    copied, fresh, source_left = transfer_weights(light, str(tmp_path / "src.safetensors"))
    assert copied > 0 and fresh > 0 and source_left > 0  # encoder and deep blocks fit; the light head starts fresh
    assert torch.equal(light.encoder.conv_stem.weight, source.encoder.conv_stem.weight)


def test_mixing_neighbours_into_the_stem_keeps_stills_and_averages_moving_frames(tmp_path):
    """scripts/neighbour_mix.py: the stem's frame weights move onto the neighbours'. Where the
    neighbours equal the frame the model computes what it did; where they differ it changes; the
    saved file keeps its source's recipe (its training counts) with the share noted."""
    import subprocess
    import sys

    from revamp.train.generator import mix_neighbours_into_stem

    torch.manual_seed(0)
    model = UNetGenerator(UNetConfig(encoder="mobilenetv3_small_100", width=16, cond_channels=2, neighbours=1)).eval()
    with torch.no_grad():
        model.to_rgb.weight.normal_(0, 0.01)
    save_model(model, tmp_path / "src.safetensors", name="src", task="test", recipe={"steps": 7, "hours": 0.5}, half=False)
    frame, codec = torch.rand(1, 3, 64, 64), torch.rand(1, 2, 64, 64)
    still = torch.cat([frame, codec, frame, frame], 1)
    moving = torch.cat([frame, codec, torch.rand(1, 6, 64, 64)], 1)
    stem = model.encoder.conv_stem.weight
    before = stem.detach().clone()
    with torch.no_grad():
        expected_still, expected_moving = model(still), model(moving)
    mix_neighbours_into_stem(model, 0.3)
    assert torch.allclose(stem[:, :3], 0.4 * before[:, :3]) and torch.equal(stem[:, 3:5], before[:, 3:5])
    for neighbour in (slice(5, 8), slice(8, 11)):
        assert torch.allclose(stem[:, neighbour], before[:, neighbour] + 0.3 * before[:, :3])
    with torch.no_grad():
        assert (model(still) - expected_still).abs().max() < 1e-5
        assert (model(moving) - expected_moving).abs().max() > 1e-3
    with pytest.raises(ValueError, match="share"):
        mix_neighbours_into_stem(model, 0.6)
    with pytest.raises(ValueError, match="share"):
        mix_neighbours_into_stem(UNetGenerator(UNetConfig(encoder="mobilenetv3_small_100", width=16)), 0.1)

    script = Path(__file__).resolve().parent.parent / "scripts/neighbour_mix.py"
    source, mixed_path = tmp_path / "src.safetensors", tmp_path / "mixed.safetensors"
    subprocess.run([sys.executable, str(script), str(source), str(mixed_path), "--share", "0.3"], check=True)
    mixed, meta = load_model(mixed_path)
    assert torch.allclose(mixed.encoder.conv_stem.weight, stem)
    assert meta["recipe"] == {"steps": 7, "hours": 0.5, "neighbour_mix": 0.3}


def test_shipping_a_model_told_a_codec_it_learnt_blind_keeps_its_training_record(tmp_path):
    """scripts/ship_model.py: an fp16 file under the product's name whose recipe still says H.265
    was learnt blind, with ``told_codecs`` (and why) deciding what `revamp video` withholds, and the
    stabiliser's mix chosen for it."""
    import subprocess
    import sys

    from revamp.defaults import H265_HINT_SCALE, STABILIZE, VIDEO_HINT_SCALE
    from revamp.inference.restorer import Restorer
    from revamp.models.files import blind_video_codecs, hint_scales, stabiliser_mix

    model = UNetGenerator(UNetConfig(encoder="mobilenetv3_small_100", width=16, cond_channels=2)).eval()
    recipe = {"steps": 7, "degradation": {"video": {"blind_codecs": ["h265", "mpeg4"]}}}
    save_model(model, tmp_path / "best.safetensors", name="campaign", task="test", recipe=recipe, half=False)
    assert blind_video_codecs(recipe) == {"h265", "mpeg4"} and stabiliser_mix(recipe) == STABILIZE
    assert hint_scales(recipe) == {"h264": VIDEO_HINT_SCALE, "h265": H265_HINT_SCALE}
    script = [sys.executable, str(Path(__file__).resolve().parent.parent / "scripts/ship_model.py"), str(tmp_path / "best.safetensors")]
    subprocess.run(script + [str(tmp_path / "out.safetensors"), "--name", "shipped", "--tell", "h265", "--stabilize", "0.45",
                             "--h265-hint-scale", "0.6", "--h264-hint-scale", "0.8", "--note", "measured"], check=True)
    shipped, meta = load_model(tmp_path / "out.safetensors")
    assert meta["name"] == "shipped" and meta["dtype"] == "float16" and next(shipped.parameters()).dtype == torch.float32
    assert meta["recipe"]["degradation"] == recipe["degradation"] and meta["recipe"]["shipping_note"] == "measured"
    assert blind_video_codecs(meta["recipe"]) == {"mpeg4"} and stabiliser_mix(meta["recipe"]) == 0.45
    shipped = Restorer(str(tmp_path / "out.safetensors"), device="cpu")
    assert (shipped.blind_codecs, shipped.stabilize, shipped.hint_scales) == ({"mpeg4"}, 0.45, {"h264": 0.8, "h265": 0.6})
    for key, read in (("stabilize", stabiliser_mix), ("h265_hint_scale", hint_scales), ("h264_hint_scale", hint_scales)):
        for bad in (True, 2.5, float("nan"), "0.5"):
            with pytest.raises(ModelFileError):
                read({key: bad})
    # Not learnt blind; no reason given (four times); a mix or scale out of range (three times); a scale for H.265 it is not told.
    for refused in (["--tell", "h264", "--note", "x"], ["--tell", "h265"], ["--stabilize", "0.45"], ["--h265-hint-scale", "0.6"],
                    ["--h264-hint-scale", "0.8"], ["--stabilize", "1", "--note", "x"],
                    ["--tell", "h265", "--h265-hint-scale", "0", "--note", "x"], ["--h264-hint-scale", "2.5", "--note", "x"],
                    ["--h265-hint-scale", "0.6", "--note", "x"]):
        run = subprocess.run(script + [str(tmp_path / "no.safetensors"), "--name", "x", *refused], capture_output=True, text=True)
        assert run.returncode == 2 and not (tmp_path / "no.safetensors").exists()


def test_shipping_the_mean_of_two_validated_weights(tmp_path):
    """scripts/ship_model.py --mean-with: the shipped tensors are the mean of the two files' (to fp16),
    the recipe says which steps were mixed (the weights' own, not their run's best validation); a file
    of another network is refused."""
    import subprocess
    import sys

    torch.manual_seed(0)
    net = UNetConfig(encoder="mobilenetv3_small_100", width=16)
    a, b = UNetGenerator(net).eval(), UNetGenerator(net).eval()
    save_model(a, tmp_path / "a.safetensors", name="run", task="test", recipe={"steps": 3000, "best_val": {"step": 3000}}, half=False)
    save_model(b, tmp_path / "b.safetensors", name="run", task="test", recipe={"steps": 3000, "best_val": {"step": 2750}}, half=False)
    newer = ("neighbour_window", "neighbour_step_gate")

    def as_written_before(cfg):  # a file written before these keys existed
        assert all(k in cfg for k in newer)
        return {k: v for k, v in cfg.items() if k not in newer}

    _rewrite_config(tmp_path / "b.safetensors", tmp_path / "b.safetensors", as_written_before)
    script = [sys.executable, str(Path(__file__).resolve().parent.parent / "scripts/ship_model.py"), str(tmp_path / "a.safetensors")]
    subprocess.run(script + [str(tmp_path / "out.safetensors"), "--name", "shipped", "--mean-with", str(tmp_path / "b.safetensors")], check=True)
    shipped, meta = load_model(tmp_path / "out.safetensors")
    sa, sb, out = a.state_dict(), b.state_dict(), shipped.state_dict()
    assert any(not torch.equal(sa[k], sb[k]) for k in sa)
    for k in sa:
        assert torch.equal(out[k], ((sa[k] + sb[k]) / 2).half().float() if sa[k].is_floating_point() else sa[k]), k
    assert meta["recipe"]["weight_mix"]["share"] == 0.5 and meta["recipe"]["weight_mix"]["with"] == [{"file": "b.safetensors", "step": 3000}]
    save_model(UNetGenerator(UNetConfig(encoder="mobilenetv3_small_100", width=8)), tmp_path / "other.safetensors", name="x", task="test", recipe={})
    run = subprocess.run(script + [str(tmp_path / "no.safetensors"), "--name", "x", "--mean-with", str(tmp_path / "other.safetensors")], capture_output=True, text=True)
    assert run.returncode == 2 and not (tmp_path / "no.safetensors").exists()


def test_transfer_into_a_super_resolution_model_starts_at_its_bicubic_base(tmp_path):
    """A restorer's trunk moves into an x2 model; the output layer, which would read the fresh
    upscaling head, stays at zero, so the new model returns exactly the bicubic upscale."""
    from revamp.train.generator import transfer_weights

    torch.manual_seed(0)
    source = UNetGenerator(UNetConfig(encoder="mobilenetv3_small_100", width=16))
    with torch.no_grad():
        source.to_rgb.weight.normal_(0, 0.01)
    save_model(source, tmp_path / "src.safetensors", name="src", task="test", recipe={})
    sr = UNetGenerator(UNetConfig(encoder="mobilenetv3_small_100", width=16, scale=2))
    copied, fresh, source_left = transfer_weights(sr, str(tmp_path / "src.safetensors"))
    assert copied > 0 and fresh == len(list(sr.sr_head.state_dict())) + 2 and source_left == 2  # the head and to_rgb
    assert torch.equal(sr.up_full.conv.weight, load_model(tmp_path / "src.safetensors")[0].up_full.conv.weight)
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        bicubic = torch.nn.functional.interpolate(x, scale_factor=2, mode="bicubic", align_corners=False)
        assert torch.equal(sr.eval()(x), bicubic)


@pytest.mark.parametrize("decoder", ["full", "light"])
def test_bf16_concatenation_gives_the_same_output_as_fp32_concatenation(monkeypatch, decoder):
    """cat_channels concatenates in bf16 under autocast only because the next conv would cast to
    bf16 anyway: the output must be bit-identical to concatenating in fp32 first."""
    import revamp.models.unet as unet

    torch.manual_seed(0)
    model = UNetGenerator(UNetConfig(encoder="mobilenetv3_small_100", width=16, decoder=decoder, cond_channels=2))
    for p in model.to_rgb.parameters():  # a non-zero output layer, so the decoder shows in the output
        torch.nn.init.normal_(p, std=0.1)
    model = model.eval().to(memory_format=torch.channels_last)
    x = torch.rand(1, 5, 96, 128).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        fast = model(x).float()
        monkeypatch.setattr(unet, "cat_channels", lambda *t: torch.cat(list(t), dim=1))
        promoted = model(x).float()
    assert torch.equal(fast, promoted)
    assert (fast - x[:, :3]).abs().max() > 1e-3  # the decoder did contribute


@pytest.mark.parametrize("encoder,decoder", [(e, "full") for e in ENCODERS] + [("mobilenetv3_large_100", "light")])
def test_folding_batchnorm_keeps_the_function(encoder, decoder):
    """Restorer folds the encoder's conv-BN pairs for inference: same output up to float rounding,
    with non-trivial BatchNorm statistics, and only the skip norms (which follow no conv) left."""
    from revamp.models.unet import fold_batchnorm

    torch.manual_seed(0)
    model = UNetGenerator(UNetConfig(encoder=encoder, width=16, decoder=decoder))
    for p in model.to_rgb.parameters():
        torch.nn.init.normal_(p, std=0.1)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    with pytest.raises(ValueError, match="eval"):
        fold_batchnorm(model)
    model.eval()
    x = torch.rand(1, 3, 96, 128)
    with torch.inference_mode():
        before = model(x)
        norms_before = sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
        folded = fold_batchnorm(model)
        after = model(x)
    norms_after = sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    assert folded > 10 and norms_after == norms_before - folded == len(model.up_blocks)
    assert (before - x).abs().max() > 1e-2  # the network does something, so equality means something
    assert (after - before).abs().max() < 1e-5


def test_blur_repeats_the_top_left_edge_and_stays_bf16_under_autocast():
    """Blur must compute fast.ai's ReplicationPad2d((1, 0, 1, 0)) + AvgPool2d(2, stride=1), and keep
    bf16 under CPU autocast (the replication pad is cast to fp32 there: a full-resolution fp32 copy)."""
    from revamp.models.unet import Blur

    torch.manual_seed(0)
    x = torch.randn(2, 5, 13, 22)
    legacy = torch.nn.Sequential(torch.nn.ReplicationPad2d((1, 0, 1, 0)), torch.nn.AvgPool2d(2, stride=1))
    assert torch.allclose(Blur()(x), legacy(x), atol=1e-6)
    assert Blur()(x).shape == x.shape
    x16 = x.bfloat16().contiguous(memory_format=torch.channels_last)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = Blur()(x16)
    # The next conv casts the legacy fp32 result to bf16: the same values must come out.
    assert y.dtype == torch.bfloat16 and torch.equal(y, legacy(x16.float()).bfloat16())


def test_self_attention_equals_the_conv1d_formulation_and_survives_torch_compile():
    """SelfAttention applies its 1x1 Conv1d weights as linear maps on (b, hw, c) tokens: the same
    function as DeOldify's Conv1d on (b, c, hw). The Conv1d form, fed the (b, c, hw) view of a
    channels_last tensor, came out of torch.compile (CPU, bf16 autocast) as NaN."""
    import shutil

    from revamp.models.unet import SelfAttention

    torch.manual_seed(0)
    attention = SelfAttention(64).eval()
    attention.gamma.data.fill_(0.5)
    x = torch.randn(1, 64, 32, 48).contiguous(memory_format=torch.channels_last)  # NaN at this size, not at 12x20
    with torch.inference_mode():
        flat = x.reshape(1, 64, 32 * 48)
        q, k, v = (m(flat).transpose(1, 2).unsqueeze(1) for m in (attention.query, attention.key, attention.value))
        conv1d_form = x + 0.5 * F.scaled_dot_product_attention(q, k, v).squeeze(1).transpose(1, 2).reshape(1, 64, 32, 48)
        assert torch.allclose(attention(x), conv1d_form, atol=1e-5)
        if shutil.which("g++") or shutil.which("c++"):  # torch.compile's CPU code generation needs a C++ compiler
            with torch.autocast("cpu", dtype=torch.bfloat16):
                eager, compiled = attention(x.bfloat16()), torch.compile(attention)(x.bfloat16())
            assert not compiled.isnan().any() and (compiled.float() - eager.float()).abs().max() < 0.05


def test_multi_frame_model_starts_as_the_single_frame_model_it_came_from(tmp_path):
    """neighbours=1 adds six input planes (the frames before and after) after the codec planes;
    transferred from a codec-aware model they start at zero weight, so the new model computes
    what its source did, whatever the neighbours hold, until training teaches it to use them."""
    from revamp.train.generator import transfer_weights

    torch.manual_seed(1)
    config = UNetConfig(encoder="mobilenetv3_small_100", width=16, decoder="light", cond_channels=2)
    source = UNetGenerator(config)
    with torch.no_grad():
        source.to_rgb.weight.normal_(0, 0.01)
    save_model(source, tmp_path / "src.safetensors", name="src", task="test", recipe={})
    source = load_model(tmp_path / "src.safetensors")[0].eval()
    multi = UNetGenerator(UNetConfig(**dict(config.to_dict(), neighbours=1)))
    assert multi.config.input_planes == 11
    copied, fresh, source_left = transfer_weights(multi, str(tmp_path / "src.safetensors"))
    assert fresh == 0 and copied == len(multi.state_dict()) and source_left == 0
    x = torch.rand(1, 5, 64, 64)
    with torch.no_grad():
        expected = source(x)
        for around in (x[:, :3].repeat(1, 2, 1, 1), torch.rand(1, 6, 64, 64)):
            assert (multi.eval()(torch.cat([x, around], 1)) - expected).abs().max() < 1e-4
        with torch.no_grad():  # once trained, the neighbours matter
            multi.encoder.conv_stem.weight[:, 5:].normal_(0, 0.1)
        assert (multi(torch.cat([x, torch.rand(1, 6, 64, 64)], 1)) - expected).abs().max() > 1e-4


def test_a_model_widened_to_more_neighbours_starts_as_its_source_then_averages_the_farther_frames(tmp_path):
    """Widened from one neighbour a side to two (scripts/neighbour_mix.py --neighbours 2): each
    plane keeps its weights at its offset (the -1 frame's are no longer the 6 planes after the
    codec's but 3 further on) and the new frames start at zero, so the model computes what its
    source did whatever they hold; spread outward, the +-2 frames get a share of the +-1 frames'
    stem weights, which changes nothing where each side's frames agree."""
    import subprocess
    import sys

    from revamp.train.generator import input_plane_index, spread_neighbours_outward, transfer_weights

    torch.manual_seed(4)
    config = UNetConfig(encoder="mobilenetv3_small_100", width=16, cond_channels=2, neighbours=1, neighbour_window=7)
    source = UNetGenerator(config)
    with torch.no_grad():  # a "trained" source: it uses its neighbours
        source.to_rgb.weight.normal_(0, 0.01)
        source.encoder.conv_stem.weight[:, 5:].normal_(0, 0.1)
    save_model(source, tmp_path / "src.safetensors", name="src", task="test", recipe={"steps": 7}, half=False)
    source = source.eval()
    wide = UNetGenerator(UNetConfig(**dict(config.to_dict(), neighbours=2))).eval()
    assert input_plane_index(config, wide.config) == [0, 1, 2, 3, 4, 8, 9, 10, 11, 12, 13]
    assert input_plane_index(wide.config, config) is None
    copied, fresh, source_left = transfer_weights(wide, str(tmp_path / "src.safetensors"))
    assert fresh == 0 and copied == len(wide.state_dict()) and source_left == 0
    frame, codec, before, after = torch.rand(1, 3, 64, 64), torch.rand(1, 2, 64, 64), torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 64)
    far_before, far_after = torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        expected = source(torch.cat([frame, codec, before, after], 1))
        assert (wide(torch.cat([frame, codec, far_before, before, after, far_after], 1)) - expected).abs().max() < 1e-4
        spread_neighbours_outward(wide, 1, 0.4)
        assert (wide(torch.cat([frame, codec, before, before, after, after], 1)) - expected).abs().max() < 1e-4
        assert (wide(torch.cat([frame, codec, far_before, before, after, far_after], 1)) - expected).abs().max() > 1e-3
    with pytest.raises(ValueError, match="share"):
        spread_neighbours_outward(wide, 1, 1.5)

    script = Path(__file__).resolve().parent.parent / "scripts/neighbour_mix.py"
    out = tmp_path / "wide.safetensors"
    subprocess.run([sys.executable, str(script), str(tmp_path / "src.safetensors"), str(out), "--neighbours", "2", "--outward", "0.4"],
                   check=True)
    widened, meta = load_model(out)
    assert widened.config == wide.config and widened.config.neighbour_window == 7
    assert torch.allclose(widened.encoder.conv_stem.weight, wide.encoder.conv_stem.weight)
    assert meta["recipe"] == {"steps": 7, "neighbours_widened": {"from": 1, "outward": 0.4}}


def test_neighbour_quality_planes_start_at_zero_weight_on_a_multi_frame_model(tmp_path):
    """neighbour_quality adds a plane per neighbour after the neighbours' RGB; transferred from a
    multi-frame model the model computes what its source did, whatever the planes hold."""
    from revamp.models.contract import NEUTRAL_QUALITY, model_input
    from revamp.train.generator import transfer_weights

    torch.manual_seed(3)
    config = UNetConfig(encoder="mobilenetv3_small_100", width=16, decoder="light", cond_channels=2, neighbours=1)
    source = UNetGenerator(config)
    with torch.no_grad():
        source.to_rgb.weight.normal_(0, 0.01)
    save_model(source, tmp_path / "src.safetensors", name="src", task="test", recipe={})
    source = load_model(tmp_path / "src.safetensors")[0].eval()
    quality = UNetGenerator(UNetConfig(**dict(config.to_dict(), neighbour_quality=True))).eval()
    assert quality.config.input_planes == 13 and quality.config.neighbour_planes == 8
    copied, fresh, _ = transfer_weights(quality, str(tmp_path / "src.safetensors"))
    assert fresh == 0 and copied == len(quality.state_dict())
    x = torch.rand(1, 11, 64, 64)
    with torch.no_grad():
        expected = source(x)
        assert (quality(torch.cat([x, torch.rand(1, 2, 64, 64)], 1)) - expected).abs().max() < 1e-4
        quality.encoder.conv_stem.weight[:, 11:].normal_(0, 0.1)  # once trained, the planes matter
        assert (quality(torch.cat([x, torch.rand(1, 2, 64, 64)], 1)) - expected).abs().max() > 1e-4
    # A still: itself as its neighbours, of neutral quality; planes of the wrong count are refused.
    image, planes = torch.rand(3, 32, 32), torch.zeros(2, 32, 32)
    still = model_input(image, 2, 1, planes, quality=True)
    assert still.shape == (13, 32, 32) and torch.equal(still[5:8], image) and (still[11:] == NEUTRAL_QUALITY).all()
    with pytest.raises(ValueError, match="8 neighbour planes"):
        model_input(image, 2, 1, planes, torch.rand(6, 32, 32), quality=True)


@pytest.mark.parametrize("decoder", ["full", "light"])
def test_head_blocks_start_as_the_identity_so_a_transferred_model_computes_its_source(tmp_path, decoder):
    from revamp.train.generator import transfer_weights

    torch.manual_seed(2)
    config = UNetConfig(encoder="mobilenetv3_small_100", width=16, decoder=decoder, cond_channels=2)
    source = UNetGenerator(config)
    with torch.no_grad():
        source.to_rgb.weight.normal_(0, 0.01)
    save_model(source, tmp_path / "src.safetensors", name="src", task="test", recipe={})
    source = load_model(tmp_path / "src.safetensors")[0].eval()
    grown = UNetGenerator(UNetConfig(**dict(config.to_dict(), head_blocks=2))).eval()
    taken = transfer_weights(grown, str(tmp_path / "src.safetensors"))
    assert taken.copied == len(source.state_dict()) and taken.fresh == 8  # two blocks of two convs, weight and bias
    assert taken.record(str(tmp_path / "src.safetensors"))["whole"]  # so the source's training counts as this model's
    x = torch.rand(1, 5, 64, 64)
    with torch.no_grad():
        expected = source(x)
        assert (grown(x) - expected).abs().max() < 1e-5
        grown.head[1].body[-1].weight.normal_(0, 0.1)  # once trained, the blocks matter
        assert (grown(x) - expected).abs().max() > 1e-4


def test_training_compute_sums_the_init_chain():
    from revamp.models.files import training_compute

    first = {"device": "NVIDIA H200", "hours": 0.2, "steps": 300, "phases": [{"batch": 128, "steps": 200}, {"batch": 16, "steps": 500}]}
    second = {"device": "cpu", "hours": 0.5, "steps": 90, "init": "first.safetensors", "init_recipe": first,
              "phases": [{"batch": 16, "steps": 100}]}  # stopped at step 90 of 100
    assert training_compute(second) == {"cpu_hours": 0.5, "gpu_minutes": 12.0, "steps": 390, "samples": 90 * 16 + 200 * 128 + 100 * 16}
    assert training_compute({**second, "init": None})["steps"] == 90  # a transfer or a fresh start ends the chain


def test_every_shipped_file_matches_its_sha256_and_a_damaged_one_is_refused(tmp_path, monkeypatch):
    """SHA256SUMS lists every file of revamp/weights and each file hashes to it; a file that does
    not (damaged in the install, or replaced without updating SHA256SUMS) is refused on load."""
    import shutil

    from revamp.models import registry
    from revamp.models.registry import SHIPPED, DamagedWeightsError, resolve_model, weights_dir

    listed = registry._expected_sha256()
    files = {p.name for p in weights_dir().iterdir() if p.suffix in (".safetensors", ".npz")}
    assert files == set(listed) and {m.file for m in SHIPPED.values()} <= files
    for name in files:
        registry.weights_file(name)  # raises if it does not match
    copy = tmp_path / "weights"
    shutil.copytree(weights_dir(), copy)
    data = bytearray((copy / "default.safetensors").read_bytes())
    data[-1] ^= 1
    (copy / "default.safetensors").write_bytes(data)
    monkeypatch.setattr(registry, "weights_dir", lambda: copy)
    registry._expected_sha256.cache_clear()
    try:
        with pytest.raises(DamagedWeightsError, match="default.safetensors"):
            resolve_model("default")
        assert resolve_model("video").parent == copy  # the others still load
    finally:
        registry._expected_sha256.cache_clear()


def test_the_call_contract_builds_the_input_and_returns_the_picture_size(tmp_path):
    """revamp.models.contract: RGB, then codec planes, then neighbours (a still: itself); any size
    in, padded to the network's multiple, cropped back to H*scale x W*scale, clamped."""
    from revamp.models.contract import forward, model_input

    image = torch.rand(1, 3, 37, 50)
    planes = np.full((2, 37, 50), 0.25, np.float32)
    x = model_input(image, 2, 1, planes)
    assert x.shape == (1, 11, 37, 50)
    assert torch.equal(x[:, 3:5], torch.full((1, 2, 37, 50), 0.25)) and torch.equal(x[:, 5:8], image) and torch.equal(x[:, 8:], image)
    with pytest.raises(ValueError, match="codec planes"):
        model_input(image, 2, 0, None)
    with pytest.raises(ValueError, match="neighbour planes"):
        model_input(image, 0, 1, None, torch.rand(1, 3, 37, 50))
    seen = []

    def network(t):
        seen.append(tuple(t.shape))
        return torch.nn.functional.interpolate(t[:, :3], scale_factor=2) * 3 - 1  # out of [0, 1] on purpose

    y = forward(network, x, 32, scale=2)
    assert seen == [(1, 11, 64, 64)] and y.shape == (1, 3, 74, 100) and y.dtype == torch.float32
    assert float(y.min()) == 0.0 and float(y.max()) == 1.0
