"""Crafted checkpoints run nothing through any command that reads one.

Each payload would create a marker folder if anything executed it (shown by :func:`test_the_payloads_are_live`,
which runs them the unsafe way): a pickled callable, a foreign ``_target_`` at the top of the generator config, one
nested in a keyword, one nested in a discriminator's ``_args_``, a ``_partial_`` callable as the optimizer (called
with the parameters, ``shutil.copytree(src, marker, params)`` copies a folder) and ``builtins.exec`` in ``_args_``
(which Hydra 1.3.8's own best-effort blocklist also refuses, so it is not shown live). Every command refuses the
file before building anything: x2ct-eval, x2ct-predict, resuming x2ct-train, x2ct-export (in-process through their
console entry points) and ``X2CTGANModule.load_from_checkpoint``; each exits non-zero with one line that names the
file and the offending entry, and the marker is never created.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate

from x2ct import evaluate, export_model, predict, train
from x2ct.models.allowed_targets import DisallowedTargetError
from x2ct.models.gan_module import X2CTGANModule


class Payload:
    """Unpickling this object calls ``os.mkdir(marker)``."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return os.mkdir, (self.marker,)


@dataclass(frozen=True)
class Crafted:
    """A payload: how it changes a checkpoint, the config that would run it, and the entry a message must name."""

    change: Callable[[dict[str, Any], Path, Path], None]  # (checkpoint, marker, an existing folder)
    entry: str
    config_key: str | None = None  # the hyper-parameter that holds it (None: the pickle stream)
    live: bool = True


def _pickled(checkpoint: dict[str, Any], marker: Path, readable: Path) -> None:
    checkpoint["payload"] = Payload(marker)


def _top_level(checkpoint: dict[str, Any], marker: Path, readable: Path) -> None:
    checkpoint["hyper_parameters"]["generator"] = {"_target_": "os.mkdir", "path": str(marker)}


def _nested(checkpoint: dict[str, Any], marker: Path, readable: Path) -> None:
    checkpoint["hyper_parameters"]["generator"]["growth_rate"] = {"_target_": "os.mkdir", "path": str(marker)}


def _nested_args(checkpoint: dict[str, Any], marker: Path, readable: Path) -> None:
    discriminator = checkpoint["hyper_parameters"]["discriminator"]
    discriminator["_args_"] = [{"_target_": "os.mkdir", "_args_": [str(marker)]}]


def _exec_in_args(checkpoint: dict[str, Any], marker: Path, readable: Path) -> None:
    code = f"import os; os.mkdir({str(marker)!r})"
    discriminator = checkpoint["hyper_parameters"]["discriminator"]
    discriminator["_args_"] = [{"_target_": "builtins.exec", "_args_": [code]}]


def _partial(checkpoint: dict[str, Any], marker: Path, readable: Path) -> None:
    # The module calls the optimizer partial with the parameters: shutil.copytree(readable, marker, <params>).
    spec = {"_target_": "shutil.copytree", "_partial_": True, "_args_": [str(readable), str(marker)]}
    checkpoint["hyper_parameters"]["optimizer_g"] = spec


PAYLOADS: dict[str, Crafted] = {
    "pickled callable": Crafted(_pickled, "posix.mkdir"),
    "foreign top-level target": Crafted(_top_level, "os.mkdir", "generator"),
    "nested target": Crafted(_nested, "os.mkdir", "generator"),
    "nested in _args_": Crafted(_nested_args, "os.mkdir", "discriminator"),
    "partial callable": Crafted(_partial, "shutil.copytree", "optimizer_g"),
    "exec in _args_": Crafted(_exec_in_args, "builtins.exec", "discriminator", live=False),
}


def craft(source: Path, name: str, folder: Path) -> tuple[Path, Path]:
    """(crafted checkpoint file, marker path) for payload ``name``, from a copy of the checkpoint ``source``."""
    folder.mkdir(parents=True, exist_ok=True)
    checkpoint = torch.load(source, map_location="cpu", weights_only=True)
    marker, existing = folder / "marker", folder / "empty"
    existing.mkdir(exist_ok=True)
    PAYLOADS[name].change(checkpoint, marker, existing)
    path = folder / f"crafted_{name.replace(' ', '_')}.ckpt"
    torch.save(checkpoint, path)
    return path, marker


def run_console(main: Callable[[], None], command: str, args: list[str], monkeypatch: pytest.MonkeyPatch) -> int:
    """Exit status of a console entry point run in-process with ``args``."""
    monkeypatch.setattr(sys, "argv", [command, *args])
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    try:
        main()
    except SystemExit as stop:
        return int(stop.code or 0)
    return 0


def _assert_refused(stderr: str, command: str, crafted: Path, entry: str) -> None:
    errors = [line for line in stderr.splitlines() if line.startswith(f"{command}: error:")]
    assert len(errors) == 1, stderr
    assert str(crafted) in errors[0] and entry in errors[0], errors[0]
    assert "Traceback" not in stderr


@pytest.mark.parametrize("name", [name for name, crafted in PAYLOADS.items() if crafted.live])
def test_the_payloads_are_live(tiny_checkpoint: Any, name: str, tmp_path: Path) -> None:
    """Loaded the unsafe way (pickle, plain Hydra as the module did before the allow-list), each payload creates
    its marker: the tests below can fail."""
    path, marker = craft(tiny_checkpoint.path, name, tmp_path)
    checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    key = PAYLOADS[name].config_key
    if key is not None:
        try:
            built = instantiate(checkpoint["hyper_parameters"][key], _convert_="all")
            if key.startswith("optimizer"):
                built(torch.nn.Linear(1, 1).parameters())
        except InstantiationException:  # the payload ran while the arguments were built; the class rejects them
            pass
    assert marker.exists()


@pytest.mark.parametrize("name", list(PAYLOADS))
def test_x2ct_eval_runs_nothing(
    tiny_checkpoint: Any, name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    crafted, marker = craft(tiny_checkpoint.path, name, tmp_path / "crafted")
    monkeypatch.chdir(tmp_path)
    status = run_console(evaluate.main, "x2ct-eval", [f"ckpt_path={crafted}", "figures=false"], monkeypatch)
    assert status != 0 and not marker.exists()
    _assert_refused(capsys.readouterr().err, "x2ct-eval", crafted, PAYLOADS[name].entry)


@pytest.mark.parametrize("name", list(PAYLOADS))
def test_x2ct_predict_runs_nothing(
    tiny_checkpoint: Any,
    write_xray_pair: Callable[..., tuple[Path, Path]],
    name: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    crafted, marker = craft(tiny_checkpoint.path, name, tmp_path / "crafted")
    ap, lateral = write_xray_pair(tmp_path / "xrays")
    out = tmp_path / "ct.nii.gz"
    args = [f"ckpt_path={crafted}", f"ap={ap}", f"lateral={lateral}", f"out={out}"]
    status = run_console(predict.main, "x2ct-predict", args, monkeypatch)
    assert status != 0 and not marker.exists() and not out.exists()
    _assert_refused(capsys.readouterr().err, "x2ct-predict", crafted, PAYLOADS[name].entry)


@pytest.mark.parametrize("name", list(PAYLOADS))
def test_x2ct_train_resume_runs_nothing(
    tiny_checkpoint: Any,
    tiny_train_overrides: tuple[str, ...],
    name: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    crafted, marker = craft(tiny_checkpoint.path, name, tmp_path / "crafted")
    monkeypatch.setenv("WANDB_MODE", "disabled")
    args = [
        f"data.root={tiny_checkpoint.triplets}",
        *tiny_train_overrides,
        "trainer.max_epochs=2",
        f"hydra.run.dir={tmp_path / 'run'}",
        f"ckpt_path={crafted}",
    ]
    status = run_console(train.main, "x2ct-train", args, monkeypatch)
    assert status != 0 and not marker.exists()
    _assert_refused(capsys.readouterr().err, "x2ct-train", crafted, PAYLOADS[name].entry)
    assert not (tmp_path / "run" / "checkpoints").exists()


@pytest.mark.parametrize("name", list(PAYLOADS))
def test_x2ct_export_runs_nothing(
    tiny_checkpoint: Any, name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    crafted, marker = craft(tiny_checkpoint.path, name, tmp_path / "crafted")
    out = tmp_path / "shared"
    status = run_console(export_model.main, "x2ct-export", [f"ckpt_path={crafted}", f"out={out}"], monkeypatch)
    assert status != 0 and not marker.exists() and not out.exists()
    _assert_refused(capsys.readouterr().err, "x2ct-export", crafted, PAYLOADS[name].entry)


@pytest.mark.parametrize("name", list(PAYLOADS))
def test_load_from_checkpoint_runs_nothing(tiny_checkpoint: Any, name: str, tmp_path: Path) -> None:
    crafted, marker = craft(tiny_checkpoint.path, name, tmp_path / "crafted")
    with pytest.raises(DisallowedTargetError) as caught:
        X2CTGANModule.load_from_checkpoint(crafted)
    assert not marker.exists()
    message = str(caught.value)
    assert "\n" not in message and str(crafted) in message and PAYLOADS[name].entry in message


def test_load_from_checkpoint_still_loads_a_real_checkpoint(tiny_checkpoint: Any) -> None:
    model = X2CTGANModule.load_from_checkpoint(tiny_checkpoint.path)
    assert isinstance(model, X2CTGANModule) and model.generator.cube == tiny_checkpoint.cube
