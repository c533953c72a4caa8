"""Lightning callbacks: W&B/CSV media logging of reconstructions."""

from __future__ import annotations

from x2ct.callbacks.media import MediaLogger, MediaSample, extract_samples

__all__ = ["MediaLogger", "MediaSample", "extract_samples"]
