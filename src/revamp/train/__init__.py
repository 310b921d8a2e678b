"""Training: configs, checkpoints and the NoGAN stages."""
