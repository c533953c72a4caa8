"""The fingerprint of the settings that shape a prepared triplet file, so that a re-run rebuilds stale files.

A *record* is a nested, JSON-able dict of everything that decides a case's ``ct_xray_data.h5``: the volume fit
(``volume``: cube, spacing, crop mode, ...), the DRR config (``drr``: mode, geometry, distances, ...), the rendered
``lateral_angles`` (sorted), the X-ray settings (``xray``: aligned or paper mode, size, preprocessing), what the
source says about the case (``source``: e.g. the phantom seed and config, or a dataset's label scheme and file
names) and the HDF5 ``schema_version``. Run-level options that do not change a file (workers, split, previews)
are not part of it.

The file stores two attributes: ``prepare.fingerprint`` (SHA-256 of the record's canonical JSON) and
``prepare.settings`` (that JSON), so that a re-run can tell which option changed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from x2ct.io.hdf5 import ATTRIBUTE_SEPARATOR, SCHEMA_VERSION

ATTRIBUTE_GROUP = "prepare"
FINGERPRINT_KEY = "fingerprint"
SETTINGS_KEY = "settings"
FINGERPRINT_ATTRIBUTE = f"{ATTRIBUTE_GROUP}{ATTRIBUTE_SEPARATOR}{FINGERPRINT_KEY}"
SETTINGS_ATTRIBUTE = f"{ATTRIBUTE_GROUP}{ATTRIBUTE_SEPARATOR}{SETTINGS_KEY}"
NO_FINGERPRINT_REASON = "no settings fingerprint (written by an older x2ct-prepare)"
MAX_NAMED_CHANGES = 5  # options named in a rebuild reason; more are counted


def settings_record(
    *, fit: Any, drr: Any, xray: Any, lateral_angles: Sequence[float], source: Mapping[str, Any]
) -> dict[str, Any]:
    """The record of one case's file: ``fit``, ``drr`` and ``xray`` are the run's config dataclasses,
    ``source`` is :meth:`~x2ct.sources.base.CaseSource.file_settings` of the case."""
    record = {
        "schema_version": SCHEMA_VERSION,
        "volume": dataclasses.asdict(fit),
        "drr": dataclasses.asdict(drr),
        "xray": dataclasses.asdict(xray),
        "lateral_angles": sorted(float(angle) for angle in lateral_angles),
        "source": dict(source),
    }
    return json.loads(canonical_json(record))  # tuples -> lists, paths -> str: what a file will hold


def canonical_json(record: Mapping[str, Any]) -> str:
    """Compact JSON with sorted keys (the same record always gives the same text)."""
    return json.dumps(record, sort_keys=True, separators=(",", ":"), default=_jsonable)


def _jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot record a setting of type {type(value).__name__} in the preparation fingerprint")


def fingerprint(record: Mapping[str, Any]) -> str:
    """SHA-256 hex digest of the record's canonical JSON."""
    return hashlib.sha256(canonical_json(record).encode("utf-8")).hexdigest()


def fingerprint_attrs(record: Mapping[str, Any]) -> dict[str, dict[str, str]]:
    """The attributes to write into the triplet (nested: ``write_triplet`` flattens them to ``prepare.*``)."""
    return {ATTRIBUTE_GROUP: {FINGERPRINT_KEY: fingerprint(record), SETTINGS_KEY: canonical_json(record)}}


def changed_settings(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """Dotted names of the options that differ between two records (added and removed ones included), sorted."""
    flat_old, flat_new = _flatten(old), _flatten(new)
    return sorted(name for name in flat_old.keys() | flat_new.keys() if flat_old.get(name) != flat_new.get(name))


def _flatten(record: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in record.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(_flatten(value, prefix=f"{name}."))
        else:
            flat[name] = value
    return flat


def stale_reason(path: Path, record: Mapping[str, Any]) -> str | None:
    """Why the file at ``path`` does not match ``record`` (None when it does): no fingerprint (an older run), or
    ``"settings changed (drr.geometry, lateral_angles)"`` naming the options that differ when the file says."""
    with h5py.File(path, "r") as h5:
        stored = _text(h5.attrs.get(FINGERPRINT_ATTRIBUTE))
        stored_settings = _text(h5.attrs.get(SETTINGS_ATTRIBUTE))
    if stored is None:
        return NO_FINGERPRINT_REASON
    if stored == fingerprint(record):
        return None
    try:
        changed = changed_settings(json.loads(stored_settings or ""), record)
    except (json.JSONDecodeError, AttributeError):
        changed = []
    if not changed:
        return "settings changed"
    named = ", ".join(changed[:MAX_NAMED_CHANGES])
    more = f" and {len(changed) - MAX_NAMED_CHANGES} more" if len(changed) > MAX_NAMED_CHANGES else ""
    return f"settings changed ({named}{more})"


def _text(value: Any) -> str | None:
    if isinstance(value, bytes):
        return value.decode("utf-8")
    return None if value is None else str(value)
