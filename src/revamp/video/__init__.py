"""Video restoration: real files in (PyAV), restored frames out, temporally stabilised."""
