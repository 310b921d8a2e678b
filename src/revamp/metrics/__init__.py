"""Image-quality metrics with the conventions of the restoration literature."""
from revamp.metrics.fidelity import edge_mask, edge_psnr, psnr, psnr_b, rgb_to_y, ssim

__all__ = ["edge_mask", "edge_psnr", "psnr", "psnr_b", "rgb_to_y", "ssim"]
