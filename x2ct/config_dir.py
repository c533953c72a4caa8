"""Where the Hydra configs live: ``x2ct/conf`` inside a built wheel, the repository's ``conf/`` otherwise."""

from __future__ import annotations

from pathlib import Path

_PACKAGED = Path(__file__).resolve().parent / "conf"
_REPOSITORY = Path(__file__).resolve().parent.parent / "conf"

CONFIG_DIR: str = str(_PACKAGED if _PACKAGED.is_dir() else _REPOSITORY)
