"""x2ct's Conv3d: the same convolution as torch.nn.Conv3d, run on oneDNN where PyTorch would pick its slow backend."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from x2ct.models.blocks import conv_layer
from x2ct.models.onednn_conv import Conv3d, _native_backend

TOLERANCE = 1e-5


def _pair(in_channels: int, out_channels: int, **kwargs) -> tuple[Conv3d, nn.Conv3d]:
    torch.manual_seed(0)
    ours = Conv3d(in_channels, out_channels, 3, **kwargs)
    native = nn.Conv3d(in_channels, out_channels, 3, **kwargs)
    native.load_state_dict(ours.state_dict())
    return ours, native


@pytest.mark.parametrize(("stride", "padding"), [(1, 1), (2, 1), (1, 0)])
def test_equals_nn_conv3d_forward_and_gradients_on_the_slow_path(stride: int, padding: int) -> None:
    ours, native = _pair(6, 4, stride=stride, padding=padding)
    x = torch.randn(1, 6, 9, 8, 7, requires_grad=True)
    assert _native_backend(native, x) == "Slow3d"  # the case the class exists for
    y_ours, y_native = ours(x), native(x)
    assert ours._stack_by_shape[tuple(x.shape)] is True  # took the stacked two-group path
    torch.testing.assert_close(y_ours, y_native, atol=TOLERANCE, rtol=TOLERANCE)
    upstream = torch.randn_like(y_native)
    grads_ours = torch.autograd.grad(y_ours, [x, ours.weight, ours.bias], upstream)
    grads_native = torch.autograd.grad(y_native, [x, native.weight, native.bias], upstream)
    for got, expected in zip(grads_ours, grads_native, strict=True):
        torch.testing.assert_close(got, expected, atol=TOLERANCE, rtol=TOLERANCE)


def test_keeps_the_native_path_where_pytorch_already_uses_onednn_or_stacking_cannot_apply() -> None:
    ours, _ = _pair(4, 4, padding=1)
    ours(torch.randn(2, 4, 6, 6, 6))  # batch 2: oneDNN already
    assert ours._stack_by_shape == {(2, 4, 6, 6, 6): False}
    odd, native = _pair(4, 3, padding=1)  # an odd output width cannot be split into two groups
    x = torch.randn(1, 4, 6, 6, 6)
    torch.testing.assert_close(odd(x), native(x))
    assert odd._stack_by_shape == {}


def test_state_dict_and_type_are_those_of_nn_conv3d() -> None:
    ours, native = _pair(2, 4)
    assert isinstance(ours, nn.Conv3d)
    assert ours.state_dict().keys() == native.state_dict().keys()
    assert isinstance(conv_layer(3, 2, 4, 3), Conv3d)


def test_a_pytorch_that_cannot_report_its_backend_runs_plain_convolutions_and_says_so(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import x2ct.models.onednn_conv as onednn_conv

    monkeypatch.setattr(onednn_conv, "_SELECT_BACKEND", None)
    monkeypatch.setattr(onednn_conv, "_unavailable_reported", False)
    ours, native = _pair(4, 4, padding=1)
    x = torch.randn(1, 4, 6, 6, 6)
    with caplog.at_level("WARNING", logger=onednn_conv.__name__):
        torch.testing.assert_close(ours(x), native(x))
        ours(torch.randn(1, 4, 5, 5, 5))
    assert ours._stack_by_shape == {(1, 4, 6, 6, 6): False, (1, 4, 5, 5, 5): False}
    warnings = [r for r in caplog.records if "cannot report its convolution backend" in r.getMessage()]
    assert len(warnings) == 1
