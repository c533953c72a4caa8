"""What a saved config may make x2ct build: an explicit allow-list of callables for Hydra ``_target_`` configs.

A checkpoint's ``hyper_parameters`` hold the networks' and optimizers' Hydra configs, and loading a checkpoint
(x2ct-eval, x2ct-predict, x2ct-export, resuming, ``X2CTGANModule.load_from_checkpoint``) builds them. A crafted
file could name any importable callable (``os.system``, ``builtins.exec`` with ``_args_``, a ``_partial_``
``pathlib.Path.touch``, ...) and have it run. So every build from a config goes through :func:`build_from_config`,
which first walks the whole config (nested mappings and lists, ``_args_``, any depth) and refuses any ``_target_``
that is not on the list for its role, any ``_target_`` below the top level (no project config nests one) and any
unresolved ``${...}`` interpolation (a saved config is always resolved). No name prefix is trusted: adding a
class means adding its exact import path here.

Learning-rate schedulers are not built from configs (the official policy is a ``LambdaLR`` made in code), so no
scheduler is allowed. The same concern for the file's pickle stream (``torch.load``) is handled by
:func:`describe_unpickling_refusal`: x2ct reads checkpoints with ``weights_only=True`` only.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from os import PathLike
from typing import Any

from hydra.utils import instantiate
from omegaconf import OmegaConf
from torch import nn

from x2ct.errors import UserError

TARGET_KEY = "_target_"
ARGS_KEY = "_args_"
INTERPOLATION_START = "${"

GENERATOR_TARGETS: frozenset[str] = frozenset(
    {
        "x2ct.models.BiplanarGenerator",
        "x2ct.models.generator.BiplanarGenerator",
        "x2ct.models.SingleViewGenerator",
        "x2ct.models.generator.SingleViewGenerator",
        "x2ct.models.RayLiftingGenerator",
        "x2ct.models.ray_lifting_generator.RayLiftingGenerator",
        "x2ct.models.RayImplicitGenerator",
        "x2ct.models.ray_implicit_generator.RayImplicitGenerator",
    }
)
DISCRIMINATOR_TARGETS: frozenset[str] = frozenset(
    {"x2ct.models.PatchDiscriminator3D", "x2ct.models.discriminator.PatchDiscriminator3D"}
)
# conf/model/x2ct_gan.yaml uses Adam; AdamW and SGD are the usual one-word swaps (model.optimizer_g._target_=...).
OPTIMIZER_TARGETS: frozenset[str] = frozenset({"torch.optim.Adam", "torch.optim.AdamW", "torch.optim.SGD"})

GENERATOR, DISCRIMINATOR, OPTIMIZER = "generator", "discriminator", "optimizer"
ALLOWED_TARGETS: dict[str, frozenset[str]] = {
    GENERATOR: GENERATOR_TARGETS,
    DISCRIMINATOR: DISCRIMINATOR_TARGETS,
    OPTIMIZER: OPTIMIZER_TARGETS,
}
# X2CTGANModule's hyper-parameters that are built from configs, and the role of each.
HPARAM_ROLES: dict[str, str] = {
    "generator": GENERATOR,
    "discriminator": DISCRIMINATOR,
    "optimizer_g": OPTIMIZER,
    "optimizer_d": OPTIMIZER,
}
# torch.load(weights_only=True) refusing a pickled callable names it: "Unsupported global: GLOBAL module.name" or
# "unsupported GLOBAL posix.mkdir whose module posix is blocked" (an import), "Trying to call reduce for
# unrecognized function <name>" (a call). Other weights-only failures (e.g. "Unsupported operand") come from files
# that are not pickles at all.
_REFUSED_CALLABLE = re.compile(r"GLOBAL\s+([\w.]+)|reduce for unrecognized function\s+(\S+)")


class DisallowedTargetError(UserError, ValueError):
    """A config names a callable that x2ct does not build from saved configs; the message names the file (when
    known), the ``_target_`` and its key path."""


def _prefix(source: str | PathLike | None) -> str:
    return f"{source}: " if source is not None else ""


def plain_config(spec: Any) -> Any:
    """An OmegaConf node as plain containers with interpolations resolved; anything else unchanged."""
    return OmegaConf.to_container(spec, resolve=True) if OmegaConf.is_config(spec) else spec


def _walk(node: Any, path: str) -> Iterator[tuple[str, Any]]:
    """(key path, value) of ``node`` and of everything inside it, depth first (``a.b._args_[0].c``)."""
    yield path, node
    if isinstance(node, Mapping):
        for key, value in node.items():
            yield from _walk(value, f"{path}.{key}")
    elif isinstance(node, list | tuple):
        for index, value in enumerate(node):
            yield from _walk(value, f"{path}[{index}]")


def check_config(spec: Any, role: str, key: str, source: str | PathLike | None = None) -> Any:
    """Check a Hydra config that builds one ``role`` object (see :data:`ALLOWED_TARGETS`) and return it as plain
    containers.

    Args:
        spec: a mapping or OmegaConf node with a top-level ``_target_``.
        role: ``"generator"``, ``"discriminator"`` or ``"optimizer"``.
        key: where the config sits (``generator``, ``hyper_parameters.optimizer_g``), for messages.
        source: the file it was read from, for messages (None: not from a file).
    Raises:
        DisallowedTargetError: no ``_target_`` at the top, a ``_target_`` off the list (at the top) or anywhere
            below the top, a ``_target_`` that is not a string, or an unresolved ``${...}`` string.
    """
    allowed = ALLOWED_TARGETS[role]
    plain = plain_config(spec)
    where = _prefix(source)
    if not isinstance(plain, Mapping) or TARGET_KEY not in plain:
        raise DisallowedTargetError(f"{where}{key} does not build the {role} (no {TARGET_KEY} entry): {plain!r:.120}")
    for path, value in _walk(plain, key):
        if isinstance(value, str) and INTERPOLATION_START in value:
            raise DisallowedTargetError(f"{where}{path} holds an unresolved interpolation {value!r:.80}: refused")
        if not isinstance(value, Mapping) or TARGET_KEY not in value:
            continue
        target = value[TARGET_KEY]
        at_top = path == key
        if at_top and isinstance(target, str) and target in allowed:
            continue
        why = f"a {role} config may only name {', '.join(sorted(allowed))}" if at_top else "nested builds are refused"
        raise DisallowedTargetError(f"{where}refused {TARGET_KEY} {target!r:.120} at {path}.{TARGET_KEY}: {why}")
    return plain


def build_from_config(spec: Any, role: str, key: str, source: str | PathLike | None = None) -> Any:
    """:func:`check_config`, then Hydra's ``instantiate`` of the checked plain config (``_convert_="all"``).

    The one way x2ct builds a network or optimizer from a config; an optimizer config is ``_partial_`` and gives
    a callable that takes the parameters."""
    return instantiate(check_config(spec, role, key, source), _convert_="all")


def check_module_hparams(hparams: Mapping[str, Any], source: str | PathLike | None = None) -> None:
    """Check every config in X2CTGANModule hyper-parameters (a checkpoint's ``hyper_parameters``) before anything
    is built: the networks' and optimizers' configs by role, and no ``_target_`` in any other entry."""
    for key, value in hparams.items():
        role = HPARAM_ROLES.get(str(key))
        if role is not None and value is not None and not isinstance(value, nn.Module):
            check_config(value, role, f"hyper_parameters.{key}", source)
            continue
        for path, inner in _walk(plain_config(value), f"hyper_parameters.{key}"):
            if isinstance(inner, Mapping) and TARGET_KEY in inner:
                raise DisallowedTargetError(
                    f"{_prefix(source)}refused {TARGET_KEY} {inner[TARGET_KEY]!r:.120} at {path}.{TARGET_KEY}: "
                    "only the generator, discriminator and optimizer configs are built"
                )


def describe_unpickling_refusal(source: str | PathLike, error: BaseException) -> str | None:
    """One line for a checkpoint that ``torch.load(weights_only=True)`` refused to unpickle (it holds Python
    objects other than tensors and plain data, which loading would have to execute); None when ``error`` is
    another failure (a truncated or non-pickle file)."""
    found = _REFUSED_CALLABLE.search(str(error))
    if found is None:
        return None
    entry = f"it references {found.group(1) or found.group(2)}"
    return (
        f"{source}: refused: the file holds Python objects other than tensors and plain data ({entry}); loading "
        "it would run code from the file. Use a checkpoint written by x2ct-train or a folder from x2ct-export"
    )
