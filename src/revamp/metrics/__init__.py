"""Image-quality metrics with the conventions of the restoration literature."""
from revamp.metrics.fidelity import psnr, psnr_b, rgb_to_y, ssim

__all__ = ["psnr", "psnr_b", "rgb_to_y", "ssim"]
