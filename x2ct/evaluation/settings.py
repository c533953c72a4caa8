"""The evaluation settings from a composed config: the keys of the ``conf/evaluation`` group.

x2ct-eval mounts the group at the top level of its config, x2ct-train under ``evaluation``; both build their
:class:`~x2ct.evaluation.loop.EvaluationSettings` here, so the keys are read in one place.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from typing import Any

from omegaconf import OmegaConf

from x2ct.evaluation.loop import EvaluationSettings

SETTING_NAMES: tuple[str, ...] = tuple(field.name for field in fields(EvaluationSettings))


def evaluation_settings(node: Mapping[str, Any]) -> EvaluationSettings:
    """:class:`EvaluationSettings` from the group's keys in ``node`` (other keys, e.g. ``ckpt_path`` or
    ``enabled``, are ignored; a missing key keeps its dataclass default). Lists become tuples."""
    values: dict[str, Any] = {}
    for name in SETTING_NAMES:
        if name not in node:
            continue
        value = node[name]
        if OmegaConf.is_config(value):
            value = OmegaConf.to_container(value, resolve=True)
        values[name] = tuple(value) if isinstance(value, list) else value
    return EvaluationSettings(**values)
