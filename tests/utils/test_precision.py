"""``trainer.precision=bf16-auto``: bf16-mixed where BF16 is native, 32-true (with the reason) elsewhere."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from x2ct.train import train
from x2ct.utils import precision
from x2ct.utils.precision import AUTO_BF16, BF16_MIXED, FP32, native_bf16, resolve_precision


def fake_cuda(monkeypatch: pytest.MonkeyPatch, capability: tuple[int, int]) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *_: capability)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *_: "Fake GPU")


def test_other_precisions_pass_through() -> None:
    for value in (FP32, BF16_MIXED, "16-mixed", 32):
        assert resolve_precision(value, "cpu") == (value, None)


@pytest.mark.parametrize(("flags", "expected"), [(["avx2", "avx512_bf16"], BF16_MIXED), (["avx2"], FP32)])
def test_cpu_choice_follows_the_bf16_flags(monkeypatch: pytest.MonkeyPatch, flags: list[str], expected: str) -> None:
    monkeypatch.setattr(precision, "cpu_flags", lambda: flags)
    chosen, why = resolve_precision(AUTO_BF16, "cpu")
    assert chosen == expected
    assert why.startswith(f"trainer.precision=bf16-auto -> {expected} on cpu")
    assert ("emulated" in why) == (expected == FP32)


@pytest.mark.parametrize(("capability", "expected"), [((9, 0), BF16_MIXED), ((7, 5), FP32)])
def test_gpu_choice_follows_the_compute_capability(
    monkeypatch: pytest.MonkeyPatch, capability: tuple[int, int], expected: str
) -> None:
    fake_cuda(monkeypatch, capability)
    assert resolve_precision(AUTO_BF16, "gpu")[0] == expected
    assert resolve_precision(AUTO_BF16, "auto")[0] == expected


def test_gpu_without_cuda_gets_fp32(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert native_bf16("cuda") == (False, "no CUDA device is visible")
    assert resolve_precision(AUTO_BF16, "gpu")[0] == FP32


def test_unknown_device_type_is_an_error() -> None:
    with pytest.raises(ValueError, match="'tpu'"):
        native_bf16("tpu")


@pytest.mark.slow
def test_train_resolves_bf16_auto(
    tiny_triplets: Path,
    tiny_train_overrides: tuple[str, ...],
    compose_train_config: Callable[..., Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(precision, "cpu_flags", lambda: [])
    overrides = [f"data.root={tiny_triplets}", *tiny_train_overrides, "debug=fdr", f"trainer.precision={AUTO_BF16}"]
    with caplog.at_level(logging.INFO, logger="x2ct.train"):
        metrics = train(compose_train_config(tmp_path, overrides))
    assert "train/g_total_epoch" in metrics
    assert f"trainer.precision={AUTO_BF16} -> {FP32} on cpu" in caplog.text
