"""x2ct: biplanar X-ray to 3D spine CT reconstruction (X2CT-GAN) with Lightning + Hydra."""

__version__ = "0.1.0"
