"""The allow-list of callables that configs may build: the project's networks and a few torch optimizers, nothing
else at any depth; every refusal names the file, the ``_target_`` and its key path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from x2ct.errors import UserError
from x2ct.models.allowed_targets import (
    ALLOWED_TARGETS,
    DISCRIMINATOR,
    GENERATOR,
    OPTIMIZER,
    DisallowedTargetError,
    build_from_config,
    check_config,
    check_module_hparams,
)
from x2ct.models.gan_module import DEFAULT_ADAM, X2CTGANModule

SOURCE = Path("shared/model.ckpt")


def test_the_list_is_exact_names_not_prefixes() -> None:
    for names in ALLOWED_TARGETS.values():
        assert all(not name.endswith((".", "*")) and name.count(".") >= 2 for name in names)
    assert "torch.optim.Adam" in ALLOWED_TARGETS[OPTIMIZER]
    assert "x2ct.models.BiplanarGenerator" in ALLOWED_TARGETS[GENERATOR]


def test_project_networks_and_optimizers_are_built(tiny_generator_kwargs: Any) -> None:
    generator = build_from_config(
        {"_target_": "x2ct.models.BiplanarGenerator", **tiny_generator_kwargs()}, GENERATOR, "g"
    )
    assert isinstance(generator, torch.nn.Module)
    optimizer = build_from_config(DEFAULT_ADAM, OPTIMIZER, "optimizer_g")(generator.parameters())
    assert isinstance(optimizer, torch.optim.Adam)
    resolved = OmegaConf.create({"cube": 32, "g": {"_target_": "x2ct.models.PatchDiscriminator3D", "n_layers": "${n}"}})
    resolved.n = 2
    assert check_config(resolved.g, DISCRIMINATOR, "d") == {
        "_target_": "x2ct.models.PatchDiscriminator3D",
        "n_layers": 2,
    }


REFUSED: dict[str, tuple[str, dict[str, Any], str, str]] = {
    # name: (role, config, offending target, key path)
    "foreign top level": (GENERATOR, {"_target_": "os.system", "_args_": ["true"]}, "os.system", "generator._target_"),
    "prefix is not trusted": (OPTIMIZER, {"_target_": "torch.optim.lr_scheduler.LambdaLR"}, "LambdaLR", "_target_"),
    "another role's class": (GENERATOR, {"_target_": "x2ct.models.PatchDiscriminator3D"}, "PatchDiscriminator3D", ""),
    "nested in a keyword": (
        GENERATOR,
        {"_target_": "x2ct.models.BiplanarGenerator", "cube": {"_target_": "builtins.exec", "_args_": ["1"]}},
        "builtins.exec",
        "generator.cube._target_",
    ),
    "nested in _args_": (
        DISCRIMINATOR,
        {"_target_": "x2ct.models.PatchDiscriminator3D", "_args_": [3, {"_target_": "os.mkdir", "path": "x"}]},
        "os.mkdir",
        "generator._args_[1]._target_",
    ),
    "an allowed class nested": (
        GENERATOR,
        {"_target_": "x2ct.models.BiplanarGenerator", "x": [{"_target_": "x2ct.models.BiplanarGenerator"}]},
        "BiplanarGenerator",
        "generator.x[0]._target_",
    ),
    "partial callable": (
        OPTIMIZER,
        {"_target_": "pathlib.Path.touch", "_partial_": True, "_args_": ["marker"]},
        "pathlib.Path.touch",
        "_target_",
    ),
    "not a name": (GENERATOR, {"_target_": ["os", "system"]}, "['os', 'system']", "generator._target_"),
}


@pytest.mark.parametrize("name", list(REFUSED))
def test_refused_configs_name_the_file_target_and_key(name: str) -> None:
    role, config, target, key = REFUSED[name]
    with pytest.raises(DisallowedTargetError) as caught:
        check_config(config, role, "generator", SOURCE)
    message = str(caught.value)
    assert message.startswith(f"{SOURCE}: refused _target_ ") and target in message and key in message
    assert "\n" not in message
    assert isinstance(caught.value, UserError) and isinstance(caught.value, ValueError)


def test_interpolations_and_configs_without_target_are_refused() -> None:
    with pytest.raises(DisallowedTargetError, match=r"generator.cube holds an unresolved interpolation"):
        check_config({"_target_": "x2ct.models.BiplanarGenerator", "cube": "${oc.env:HOME}"}, GENERATOR, "generator")
    with pytest.raises(DisallowedTargetError, match=r"optimizer_g does not build the optimizer \(no _target_"):
        check_config({"lr": 1.0}, OPTIMIZER, "optimizer_g")


def test_module_hparams_are_checked_everywhere(tiny_generator_kwargs: Any) -> None:
    generator = {"_target_": "x2ct.models.BiplanarGenerator", **tiny_generator_kwargs()}
    fine = {"generator": generator, "discriminator": {"_target_": "x2ct.models.PatchDiscriminator3D"}, "loss": {}}
    check_module_hparams(fine, SOURCE)
    bad = fine | {"loss": {"adversarial": {"_target_": "os.getcwd"}}}
    with pytest.raises(
        DisallowedTargetError, match=r"refused _target_ 'os.getcwd' at hyper_parameters.loss.adversarial"
    ):
        check_module_hparams(bad, SOURCE)


def test_the_module_refuses_a_foreign_optimizer_when_built(tiny_gan_module: Any) -> None:
    """Checked at construction, so a checkpoint is refused on loading and not only when training starts."""
    with pytest.raises(DisallowedTargetError, match=r"'shutil.rmtree' at optimizer_d._target_"):
        tiny_gan_module(optimizer_d={"_target_": "shutil.rmtree", "_partial_": True})
    assert isinstance(tiny_gan_module(), X2CTGANModule)


def test_hydra_would_have_run_the_refused_payload(tmp_path: Path) -> None:
    """The refused configs are live: plain Hydra instantiation runs them (what the allow-list prevents)."""
    marker = tmp_path / "ran"
    instantiate({"_target_": "os.mkdir", "path": str(marker)})
    assert marker.is_dir()
