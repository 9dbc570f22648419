"""affectkit: 3D/4D facial expression recognition with a vision-language model (AffectVLM)."""

from affectkit.hookspecs import hookimpl

__version__ = "0.1.0"
__all__ = ["__version__", "hookimpl"]
