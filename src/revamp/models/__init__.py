"""Generator architectures and model files."""
from revamp.models.unet import ENCODERS, UNetConfig, UNetGenerator

__all__ = ["ENCODERS", "UNetConfig", "UNetGenerator"]
