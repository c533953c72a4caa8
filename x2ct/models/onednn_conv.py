"""A drop-in ``nn.Conv3d`` that keeps batch-1 float32 CPU convolutions on oneDNN.

PyTorch chooses a convolution backend for every call with a heuristic tuned for 2D images: on the CPU, a float32
convolution of one sample with a kernel of at most 3 whose ``C * D * H`` is at most 20,480 goes to the native
"slow" 3D backend, whose backward pass is several times slower than oneDNN's (16 channels at 32^3: 108 ms forward
+ backward against 34 ms, 2-core Xeon; ``benchmarks/bench_conv3d.py``). At batch 1 that is most levels of the
64^3 demo model and the coarse levels of the 128^3 models. Grouped convolutions always go to oneDNN, and a
convolution equals a two-group convolution of the input stacked twice along the channels with the same weight
(group g sees every input channel and makes output channels ``g * out/2 .. (g + 1) * out/2 - 1``): the same
result up to float rounding, the same FLOPs, the same parameters and state dict. :class:`Conv3d` uses that form
only where PyTorch would otherwise choose the slow backend (asked once per input shape), never on a GPU, under
``torch.compile`` or for other dtypes.
"""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F
from torch import nn

log = logging.getLogger(__name__)

SLOW_BACKENDS: tuple[str, ...] = ("Slow3d",)
STACKED_GROUPS: int = 2
_SELECT_BACKEND = getattr(torch._C, "_select_conv_backend", None)  # private: may go away in a later PyTorch
_unavailable_reported = False


def _report_unavailable(reason: str) -> None:
    """Say once that :class:`Conv3d` leaves every call to PyTorch's own backend choice, and why."""
    global _unavailable_reported
    if not _unavailable_reported:
        log.warning(
            "PyTorch %s cannot report its convolution backend (%s): batch-1 CPU 3D convolutions run on the backend "
            "PyTorch picks, which may be its slow one",
            torch.__version__,
            reason,
        )
        _unavailable_reported = True


def _native_backend(conv: nn.Conv3d, x: torch.Tensor) -> str | None:
    """The backend PyTorch picks for ``conv(x)`` (its enum name, e.g. ``"Mkldnn"`` or ``"Slow3d"``); None when this
    PyTorch cannot say (then :class:`Conv3d` leaves every call to PyTorch, and says so once)."""
    global _SELECT_BACKEND
    if _SELECT_BACKEND is None:
        _report_unavailable("no torch._C._select_conv_backend")
        return None
    try:
        backend = _SELECT_BACKEND(
            x, conv.weight, conv.bias, conv.stride, conv.padding, conv.dilation, False, (0, 0, 0), conv.groups
        )
    except (TypeError, RuntimeError) as error:  # a changed private signature
        _SELECT_BACKEND = None
        _report_unavailable(str(error))
        return None
    return backend.name


class Conv3d(nn.Conv3d):
    """``nn.Conv3d`` (same arguments, parameters and state dict) that avoids PyTorch's slow CPU 3D backend.

    Input and output as ``nn.Conv3d``: (N, C_in, D, H, W) -> (N, C_out, D', H', W').
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._stack_by_shape: dict[tuple, bool] = {}

    def _stacks(self, x: torch.Tensor) -> bool:
        if (
            x.device.type != "cpu"
            or x.dtype != torch.float32
            or self.groups != 1
            or self.padding_mode != "zeros"
            or isinstance(self.padding, str)
            or self.out_channels % STACKED_GROUPS
            or torch.compiler.is_compiling()
            or torch.is_autocast_enabled("cpu")
        ):
            return False
        key = tuple(x.shape)
        if key not in self._stack_by_shape:
            self._stack_by_shape[key] = _native_backend(self, x) in SLOW_BACKENDS
        return self._stack_by_shape[key]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self._stacks(x):
            return super().forward(x)
        stacked = torch.cat((x,) * STACKED_GROUPS, dim=1)
        return F.conv3d(stacked, self.weight, self.bias, self.stride, self.padding, self.dilation, STACKED_GROUPS)
