"""revamp: restore compressed pictures and archive video (NoGAN U-Net, Mameli et al.)."""
__version__ = "0.1.0"

__all__ = ["Restorer", "__version__"]


def __getattr__(name: str):
    # Lazy so that `import revamp` (and `revamp --help`) does not pay for torch.
    if name == "Restorer":
        from revamp.inference.restorer import Restorer

        return Restorer
    raise AttributeError(name)
