"""Published JPEG artifact-removal results (grayscale, Y channel), copied from ../shared/ANCHORS.md
with their sources. Values: (PSNR dB, SSIM, PSNR-B dB) at quality 10, 20, 30, 40; None = not
published.

Sources: S6 = SwinIR README grayscale table (SwinIR paper); D3 = DnCNN README (DnCNN-3);
F1 = FBCNN README "single JPEG restoration" table (FBCNN paper, blind model).
"""
from __future__ import annotations

Q = (10, 20, 30, 40)

PUBLISHED = {
    "classic5": {
        "JPEG (published)": ("F1", [(27.82, 0.760, 25.21), (30.12, 0.834, 27.50), (31.48, 0.867, 28.94), (32.43, 0.885, 29.92)]),
        "DnCNN-3": ("S6/D3", [(29.40, 0.8026, 29.13), (31.63, 0.8610, 31.19), (32.91, 0.8861, 32.38), (33.77, 0.9003, 33.20)]),
        "FBCNN (blind)": ("F1", [(30.12, 0.822, 29.80), (32.31, 0.872, 31.74), (33.54, 0.894, 32.78), (34.35, 0.907, 33.48)]),
        "SwinIR": ("S6", [(30.27, 0.8249, 29.95), (32.52, 0.8748, 31.99), (33.73, 0.8961, 33.03), (34.52, 0.9082, 33.66)]),
    },
    "live1_gray": {
        "JPEG (published)": ("F1", [(27.77, 0.773, 25.33), (30.07, 0.851, 27.57), (31.41, 0.885, 28.92), (32.35, 0.904, 29.96)]),
        "DnCNN-3": ("S6/D3", [(29.19, 0.8123, 28.90), (31.59, 0.8802, 31.07), (32.98, 0.9090, 32.34), (33.96, 0.9247, 33.28)]),
        "FBCNN (blind)": ("F1", [(29.75, 0.827, 29.40), (32.13, 0.889, 31.57), (33.54, 0.916, 32.83), (34.53, 0.931, 33.74)]),
        "SwinIR": ("S6", [(29.86, 0.8287, 29.50), (32.25, 0.8909, 31.70), (33.69, 0.9174, 33.01), (34.67, 0.9317, 33.88)]),
    },
    "bsds500_test": {
        "JPEG (published)": ("F1", [(27.80, 0.768, 25.10), (30.05, 0.849, 27.22), (31.37, 0.884, 28.53), (32.30, 0.903, 29.49)]),
        "DnCNN-3": ("F1", [(29.21, 0.809, 28.80), (31.53, 0.878, 30.79), (32.90, 0.907, 31.97), (33.85, 0.923, 32.80)]),
        "FBCNN (blind)": ("F1", [(29.67, 0.821, 29.22), (32.00, 0.885, 31.19), (33.37, 0.913, 32.32), (34.33, 0.928, 33.10)]),
    },
}

# The seed paper's own Tables I and II (Mameli, Bertini, Galteri, Del Bimbo, "A NoGAN approach for
# image and video restoration and compression artifact removal"), as printed; ../shared/ANCHORS.md
# section 5. Rows: (SSIM, LPIPS, BRISQUE, NIQE); None = not printed. Measured on DIV2K at JPEG q20
# (Table II: x2 of 512-px inputs at q20) with metrics computed on ImageNet-normalised tensors, so only
# the ordering of rows compares with ours, not the values.
PAPER_METRICS = ("ssim", "lpips", "brisque", "niqe")
PAPER_TABLE_I = {
    "LPIPS (pre-GAN)": (0.6933, 0.1243, 85.09, 16.76),
    "LPIPS (post-GAN)": (0.7374, 0.1526, 89.31, 17.57),
    "LPIPS (post-GAN, small encoder)": (0.7301, 0.1502, 84.14, 17.67),
    "MSE": (0.7293, 0.1661, 88.91, 17.82),
    "SSIM": (0.7354, 0.1830, 86.87, 17.57),
    "Target": (None, None, 85.32, 15.69),
}
PAPER_TABLE_II = {
    "LPIPS (post-GAN)": (0.5809, 0.3676, 102.40, 18.20),
    "LPIPS (post-GAN, small encoder)": (0.5830, 0.3427, 102.22, 18.38),
    "MSE": (0.5680, 0.4173, 103.11, 18.47),
    "SSIM": (0.5877, 0.4079, 100.28, 18.22),
}
# Our rows that correspond to the paper's (Table I: the ablation models; Table II has no
# counterpart: our x2 model is one loss, one stage).
PAPER_ROWS_OURS = {"LPIPS (pre-GAN)": "ablation-lpips-pregan", "LPIPS (post-GAN)": "ablation-lpips-postgan",
                   "LPIPS (post-GAN, small encoder)": "ablation-small-postgan", "MSE": "ablation-mse", "SSIM": "ablation-ssim",
                   "Target": "Target (originals)"}
