"""Blind image-quality studies (the paper's Fig. 3): create, serve to raters, report."""
