"""X2CT-GAN generators: the biplanar network of the paper and its single-view (X2CT-CNN-style) baseline.

Faithful to the official ``multiview_network_denseUNetFuse_transposed`` (kylekma/X2CT, ``3DGAN/``).

Axis convention (see :mod:`x2ct.io.volume`): a CT tensor is ``(N, C, D, H, W)``. View 1 (AP, ``xray1``) has
its rays along H and its image plane is D x W, so ``xray1[r, c]`` lines up with ``ct[r, :, c]``. View 2
(lateral, ``xray2``) has its rays along W and its image plane is D x H, so ``xray2[r, c]`` lines up with
``ct[r, c, :]``.

Inside a view branch, 3D tensors are in *view layout* ``(N, C, ray, row, col)``: a 2D feature map
``(N, C, row, col)`` of that view is copied along a new ray axis (Connection-B). :func:`view_to_ct` and
:func:`ct_to_view` convert between view layout and CT order; Connection-C averages the two branches in CT order
and hands the average back to each branch in its own layout.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from x2ct.models.axes import ViewName, check_view, ct_to_view, fuse_views, lift_along_ray, view_to_ct
from x2ct.models.blocks import (
    ConvNormAct,
    DenseBlock,
    NormActConv,
    OutputHead3D,
    ReflectionStem2D,
    Transition,
    UpConvNormAct3D,
    run_checkpointed,
)

# The paper configuration (official d2_multiview2500.yml), used as constructor defaults.
PAPER_CUBE: int = 128
PAPER_ENCODER_CHANNELS: int = 64
PAPER_GROWTH_RATE: int = 32
PAPER_BOTTLENECK_CHANNELS: int = 128  # DenseNet bn_size 4 x growth rate 32
PAPER_DENSE_LAYERS: tuple[int, ...] = (6, 12, 24, 16, 6)
PAPER_SKIP_CHANNELS: tuple[int, ...] = (16, 16, 32, 64, 128)
PAPER_DECODER_CHANNELS: tuple[int, ...] = (256, 128, 64, 32, 16, 16)
PAPER_VIEW_DECODER_CONVS: tuple[int, ...] = (2, 2, 2, 2, 1)
PAPER_FUSED_DECODER_CONVS: tuple[int, ...] = (1, 1, 1, 1, 1)
PAPER_DROPOUT: float = 0.5
XRAY_CHANNELS: int = 1
CT_CHANNELS: int = 1


def check_architecture(
    cube: int,
    dense_layers: Sequence[int],
    skip_channels: Sequence[int],
    decoder_channels: Sequence[int],
    decoder_convs: dict[str, Sequence[int]],
) -> None:
    """Raise ValueError unless the lists describe one consistent encoder/decoder.

    With ``n = len(dense_layers)`` down blocks: ``cube`` is a positive multiple of ``2**n``; ``skip_channels``
    has ``n`` entries (fine to coarse), ``decoder_channels`` ``n + 1`` (coarse to fine) and each list in
    ``decoder_convs`` ``n`` non-negative entries (coarse to fine).
    """
    n_down = len(dense_layers)
    if n_down < 1:
        raise ValueError("dense_layers needs at least one dense block")
    if any(int(n) < 1 for n in dense_layers):
        raise ValueError(f"dense_layers entries must be >= 1, got {tuple(dense_layers)}")
    if cube < 1 or cube % (2**n_down) != 0:
        raise ValueError(f"cube={cube} must be a positive multiple of 2**{n_down}={2**n_down} (one halving per block)")
    if len(skip_channels) != n_down:
        raise ValueError(f"skip_channels needs {n_down} entries (one per dense block), got {tuple(skip_channels)}")
    if len(decoder_channels) != n_down + 1:
        raise ValueError(
            f"decoder_channels needs {n_down + 1} entries (dense blocks + 1), got {tuple(decoder_channels)}"
        )
    if any(int(c) < 1 for c in (*skip_channels, *decoder_channels)):
        raise ValueError(f"channel counts must be >= 1, got {tuple(skip_channels)} and {tuple(decoder_channels)}")
    for name, convs in decoder_convs.items():
        if len(convs) != n_down or any(int(k) < 0 for k in convs):
            raise ValueError(f"{name} needs {n_down} non-negative entries (one per decoder level), got {tuple(convs)}")


class DenseEncoder2D(nn.Module):
    """DenseNet encoder of one X-ray.

    ``ReflectionPad(3) + Conv7 (in -> stem) + IN + ReLU``, then per block ``IN-ReLU-Conv3 stride 2 (c -> c)``,
    a :class:`DenseBlock` and a halving :class:`Transition`, except the last block, which ends in a global average
    pool. Input ``(N, in, S, S)``; returns the pooled vector ``(N, out_features)`` and the skip features (each
    block's input, fine to coarse): ``(N, skip_channels[i], S / 2**i, S / 2**i)``.
    """

    def __init__(
        self,
        in_channels: int = XRAY_CHANNELS,
        stem_channels: int = PAPER_ENCODER_CHANNELS,
        dense_layers: Sequence[int] = PAPER_DENSE_LAYERS,
        growth_rate: int = PAPER_GROWTH_RATE,
        bottleneck_channels: int = PAPER_BOTTLENECK_CHANNELS,
    ) -> None:
        super().__init__()
        self.stem = ReflectionStem2D(in_channels, stem_channels)
        blocks: list[nn.Module] = []
        skip_channels: list[int] = []
        channels = stem_channels
        for index, n_layers in enumerate(dense_layers):
            skip_channels.append(channels)
            down = NormActConv(2, channels, channels, kernel_size=3, stride=2, padding=1)
            dense = DenseBlock(2, n_layers, channels, growth_rate, bottleneck_channels)
            if index == len(dense_layers) - 1:
                tail: nn.Module = nn.AdaptiveAvgPool2d(1)
                channels = dense.out_channels
            else:
                tail = Transition(2, dense.out_channels)
                channels = dense.out_channels // 2
            blocks.append(nn.Sequential(down, dense, tail))
        self.blocks = nn.ModuleList(blocks)
        self.skip_channels: tuple[int, ...] = tuple(skip_channels)
        self.out_features: int = channels

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        x = self.stem(image)
        skips: list[torch.Tensor] = []
        for block in self.blocks:
            skips.append(x)
            x = block(x)
        return x.flatten(1), skips


class ConnectionA(nn.Module):
    """2D -> 3D bottleneck link: ``Linear(F -> C * s^3) -> Dropout -> ReLU``, reshaped to ``(N, C, s, s, s)``."""

    def __init__(self, in_features: int, out_channels: int, size: int, dropout: float = PAPER_DROPOUT) -> None:
        super().__init__()
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.out_channels, self.size = out_channels, size
        self.link = nn.Sequential(
            nn.Linear(in_features, out_channels * size**3), nn.Dropout(dropout), nn.ReLU(inplace=True)
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        s = self.size
        return self.link(features).view(features.shape[0], self.out_channels, s, s, s)


class ConnectionB(nn.Module):
    """2D -> 3D skip link: ``Conv1x1 2D + IN + ReLU``, copy along the ray axis, ``Conv3^3 3D + IN + ReLU``.

    ``(N, in, R, R) -> (N, out, R, R, R)`` in view layout (ray axis first after the channels).
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.compress = ConvNormAct(2, in_channels, out_channels, kernel_size=1)
        self.refine = ConvNormAct(3, out_channels, out_channels, kernel_size=3)

    def forward(self, feature: torch.Tensor) -> torch.Tensor:
        compressed = self.compress(feature)
        return self.refine(lift_along_ray(compressed, ray_length=compressed.shape[-2]))


class DecoderLevel(nn.Module):
    """One decoder resolution: optional merge ``Conv3^3 (merge_in -> c) + IN + ReLU`` of concatenated inputs,
    ``n_convs`` x ``[Conv3^3 (c -> c) + IN + ReLU]`` and an optional transposed-conv upsampling ``c -> up``.

    :meth:`merge` and :meth:`refine_up` are separate because Connection-C fuses the views between them.
    """

    def __init__(self, channels: int, merge_channels: int | None, n_convs: int, up_channels: int | None) -> None:
        super().__init__()
        self.merge_conv = None if merge_channels is None else ConvNormAct(3, merge_channels, channels)
        self.refine = nn.Sequential(*(ConvNormAct(3, channels, channels) for _ in range(n_convs)))
        self.up = None if up_channels is None else UpConvNormAct3D(channels, up_channels)

    def merge(self, *tensors: torch.Tensor) -> torch.Tensor:
        if self.merge_conv is None:
            if len(tensors) != 1:
                raise ValueError(f"this level has no merge conv and takes one tensor, got {len(tensors)}")
            return tensors[0]
        return self.merge_conv(torch.cat(tensors, dim=1))

    def refine_up(self, x: torch.Tensor) -> torch.Tensor:
        x = self.refine(x)
        return x if self.up is None else self.up(x)

    def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
        return self.refine_up(self.merge(*tensors))


def _view_head(channels: int, n_convs: int) -> nn.Sequential:
    """A branch's own output: its finest-level refinement convs and ``Conv3d(c -> 1, k7) + ReLU``."""
    return nn.Sequential(*(ConvNormAct(3, channels, channels) for _ in range(n_convs)), OutputHead3D(channels))


class ViewBranch(nn.Module):
    """One view's encoder, Connection-A/B and 3D decoder levels (all in view layout ``(N, C, ray, row, col)``).

    Level 0 (size ``cube / 2**n``) only upsamples the Connection-A volume; level ``L >= 1`` merges the upsampled
    tensor with the Connection-B skip of the same size, refines it with ``decoder_convs[L - 1]`` convs and
    upsamples it (not at the finest level, whose refinement convs belong to the optional ``head``).

    ``checkpointing`` (a plain attribute, not in the state dict): in training mode, recompute each Connection-B
    link, each level's merge and refine/upsample step and the head in the backward pass (:meth:`run`).
    """

    def __init__(
        self,
        view: ViewName,
        cube: int,
        encoder_channels: int,
        growth_rate: int,
        bottleneck_channels: int,
        dense_layers: Sequence[int],
        skip_channels: Sequence[int],
        decoder_channels: Sequence[int],
        decoder_convs: Sequence[int],
        dropout: float,
        build_head: bool,
        checkpointing: bool = False,
    ) -> None:
        super().__init__()
        check_view(view)
        check_architecture(cube, dense_layers, skip_channels, decoder_channels, {"view_decoder_convs": decoder_convs})
        self.view: ViewName = view
        self.cube = cube
        self.checkpointing = bool(checkpointing)
        n_down = len(dense_layers)
        self.encoder = DenseEncoder2D(XRAY_CHANNELS, encoder_channels, dense_layers, growth_rate, bottleneck_channels)
        self.connection_a = ConnectionA(self.encoder.out_features, decoder_channels[0], cube // 2**n_down, dropout)
        self.connection_b = nn.ModuleList(
            ConnectionB(c_in, c_out) for c_in, c_out in zip(self.encoder.skip_channels, skip_channels, strict=True)
        )
        levels = [DecoderLevel(decoder_channels[0], None, 0, decoder_channels[1])]
        for level in range(1, n_down + 1):
            channels = decoder_channels[level]
            merge_channels = channels + skip_channels[n_down - level]
            if level == n_down:
                levels.append(DecoderLevel(channels, merge_channels, 0, None))
            else:
                levels.append(
                    DecoderLevel(channels, merge_channels, decoder_convs[level - 1], decoder_channels[level + 1])
                )
        self.levels = nn.ModuleList(levels)
        self.head = _view_head(decoder_channels[-1], decoder_convs[-1]) if build_head else None

    def run(self, function: Callable[..., torch.Tensor], *inputs: torch.Tensor) -> torch.Tensor:
        """``function(*inputs)``, checkpointed when :attr:`checkpointing` is on in training mode with grad enabled."""
        return run_checkpointed(self.checkpointing and self.training, function, *inputs)

    def encode(self, image: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """``(N, 1, cube, cube)`` -> Connection-A volume and Connection-B skips, coarse to fine, view layout."""
        expected = (XRAY_CHANNELS, self.cube, self.cube)
        if image.dim() != 4 or tuple(image.shape[1:]) != expected:
            raise ValueError(
                f"{self.view} must have shape (N, {', '.join(map(str, expected))}), got {tuple(image.shape)}"
            )
        pooled, features = self.encoder(image)
        skips = [self.run(link, feature) for link, feature in zip(self.connection_b, features, strict=True)]
        return self.connection_a(pooled), skips[::-1]

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """Decode this view alone: ``(N, 1, S, S)`` -> CT ``(N, 1, S, S, S)`` in CT order, values >= 0."""
        if self.head is None:
            raise RuntimeError(f"the {self.view} branch was built without its output head")
        x, skips = self.encode(image)
        for index, level in enumerate(self.levels):
            if index > 0:
                x = self.run(level.merge, x, skips[index - 1])
            x = self.run(level.refine_up, x)
        return view_to_ct(self.run(self.head, x), self.view)


class FusedDecoder(nn.Module):
    """Connection-C decoder: level 0 upsamples the fused bottom volume; level ``L >= 1`` merges
    ``cat(view average, previous fused) (2c -> c)``, refines it with ``decoder_convs[L - 1]`` convs and upsamples
    it (except at the finest level). Output ``Conv3d(c -> 1, k7) + ReLU``. All tensors in CT order."""

    def __init__(self, decoder_channels: Sequence[int], decoder_convs: Sequence[int]) -> None:
        super().__init__()
        n_levels = len(decoder_channels)
        levels = [DecoderLevel(decoder_channels[0], None, 0, decoder_channels[1])]
        for level in range(1, n_levels):
            channels = decoder_channels[level]
            up = decoder_channels[level + 1] if level + 1 < n_levels else None
            levels.append(DecoderLevel(channels, 2 * channels, decoder_convs[level - 1], up))
        self.levels = nn.ModuleList(levels)
        self.head = OutputHead3D(decoder_channels[-1], CT_CHANNELS)


class BiplanarGenerator(nn.Module):
    """X2CT-GAN generator: two view branches fused by Connection-C into one CT.

    ``forward(xray1, xray2)``: two ``(N, 1, cube, cube)`` X-rays in [0, 1] (AP: rows D, cols W; lateral: rows D,
    cols H) -> CT ``(N, 1, cube, cube, cube)`` in CT order (D, H, W), values >= 0 (final ReLU, not clamped;
    the data range is [0, 1] = (HU + 1024) / 2500).

    Per level, each branch merges its upsampled tensor with its skip; the two results are averaged in CT order
    (Connection-C); the fused branch takes ``cat(average, previous fused)``; the average, permuted back into each
    view's layout, is what each branch refines and upsamples next. Only the fused output is the CT.

    Args:
        cube: input image side and output volume side; a multiple of ``2**len(dense_layers)``.
        encoder_channels: channels of the 7x7 encoder stem (paper 64).
        growth_rate, bottleneck_channels: DenseNet growth (32) and 1x1 bottleneck width (128).
        dense_layers: layers per dense block, one block per halving (paper (6, 12, 24, 16, 6)).
        skip_channels: Connection-B output channels per encoder level, fine to coarse (paper (16, 16, 32, 64, 128)).
        decoder_channels: decoder channels coarse to fine, ``len(dense_layers) + 1`` entries
            (paper (256, 128, 64, 32, 16, 16)); the first is the Connection-A volume's.
        view_decoder_convs: refinement convs per view-branch level with a skip, coarse to fine (paper (2, 2, 2, 2, 1)).
        fused_decoder_convs: the same for the fused branch (paper (1, 1, 1, 1, 1)).
        dropout: dropout of Connection-A (paper 0.5; active in training mode only).
        build_view_heads: also build each branch's own output head (its finest-level refinement convs and
            output conv), as the official code does. Those heads never reach the CT and get no gradient, so the
            default is False: identical CT output, 24,834 fewer parameters in the paper configuration, and DDP
            needs no ``find_unused_parameters``. Set True to match the official parameter count (61,740,467)
            and to use :meth:`forward_with_view_outputs`.
        checkpointing: activation checkpointing of the 3D decoder: in training mode with grad enabled, each
            Connection-B link and each decoder level's 3D convs (both branches' merge and refine/upsample steps,
            the fused levels) are recomputed in the backward pass instead of keeping their activations (less
            memory, about one more decoder forward of time; the same outputs and gradients). Not in the state
            dict; may be switched after construction.
    """

    def __init__(
        self,
        cube: int = PAPER_CUBE,
        encoder_channels: int = PAPER_ENCODER_CHANNELS,
        growth_rate: int = PAPER_GROWTH_RATE,
        bottleneck_channels: int = PAPER_BOTTLENECK_CHANNELS,
        dense_layers: Sequence[int] = PAPER_DENSE_LAYERS,
        skip_channels: Sequence[int] = PAPER_SKIP_CHANNELS,
        decoder_channels: Sequence[int] = PAPER_DECODER_CHANNELS,
        view_decoder_convs: Sequence[int] = PAPER_VIEW_DECODER_CONVS,
        fused_decoder_convs: Sequence[int] = PAPER_FUSED_DECODER_CONVS,
        dropout: float = PAPER_DROPOUT,
        build_view_heads: bool = False,
        checkpointing: bool = False,
    ) -> None:
        super().__init__()
        check_architecture(
            cube,
            dense_layers,
            skip_channels,
            decoder_channels,
            {"view_decoder_convs": view_decoder_convs, "fused_decoder_convs": fused_decoder_convs},
        )
        branch_args = (
            cube,
            encoder_channels,
            growth_rate,
            bottleneck_channels,
            dense_layers,
            skip_channels,
            decoder_channels,
            view_decoder_convs,
            dropout,
            build_view_heads,
        )
        self.cube = cube
        self.view1 = ViewBranch("xray1", *branch_args)
        self.view2 = ViewBranch("xray2", *branch_args)
        self.fused = FusedDecoder(decoder_channels, fused_decoder_convs)
        self.checkpointing = checkpointing

    @property
    def checkpointing(self) -> bool:
        """Whether the 3D decoder is recomputed in the backward pass (training mode only); sets both branches."""
        return self.view1.checkpointing

    @checkpointing.setter
    def checkpointing(self, enabled: bool) -> None:
        self.view1.checkpointing = self.view2.checkpointing = bool(enabled)

    def _decode(self, xray1: torch.Tensor, xray2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Returns the fused finest features (CT order) and each branch's finest input to its head (view layout)."""
        x1, skips1 = self.view1.encode(xray1)
        x2, skips2 = self.view2.encode(xray2)
        if x1.shape[0] != x2.shape[0]:
            raise ValueError(f"xray1 and xray2 batch sizes differ: {x1.shape[0]} vs {x2.shape[0]}")
        fused: torch.Tensor | None = None
        recompute = self.checkpointing and self.training
        levels = zip(self.view1.levels, self.view2.levels, self.fused.levels, strict=True)
        for index, (level1, level2, level_fused) in enumerate(levels):
            if index > 0:
                x1 = run_checkpointed(recompute, level1.merge, x1, skips1[index - 1])
                x2 = run_checkpointed(recompute, level2.merge, x2, skips2[index - 1])
            average = fuse_views(x1, x2)
            fused_inputs = (average,) if fused is None else (average, fused)
            fused = run_checkpointed(recompute, level_fused, *fused_inputs)
            x1 = run_checkpointed(recompute, level1.refine_up, ct_to_view(average, "xray1"))
            x2 = run_checkpointed(recompute, level2.refine_up, ct_to_view(average, "xray2"))
        assert fused is not None
        return fused, x1, x2

    def forward(self, xray1: torch.Tensor, xray2: torch.Tensor) -> torch.Tensor:
        fused, _, _ = self._decode(xray1, xray2)
        return self.fused.head(fused)

    def forward_with_view_outputs(
        self, xray1: torch.Tensor, xray2: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(ct, ct_from_view1_head, ct_from_view2_head)``, all ``(N, 1, S, S, S)`` in CT order (official outputs)."""
        if self.view1.head is None or self.view2.head is None:
            raise RuntimeError("view outputs need build_view_heads=True")
        fused, x1, x2 = self._decode(xray1, xray2)
        return (
            self.fused.head(fused),
            view_to_ct(self.view1.head(x1), "xray1"),
            view_to_ct(self.view2.head(x2), "xray2"),
        )


class SingleViewGenerator(nn.Module):
    """Single-view baseline: one :class:`ViewBranch` of the biplanar network with its own output head.

    ``forward(xray1, xray2)`` keeps the biplanar call signature and uses only the image named by ``view``
    (the other may be None): ``(N, 1, cube, cube)`` in [0, 1] -> CT ``(N, 1, cube, cube, cube)`` in CT order,
    values >= 0. Arguments as for :class:`BiplanarGenerator`; ``view`` is ``"xray1"`` (AP) or ``"xray2"``.
    ``checkpointing`` recomputes the branch's Connection-B links, decoder levels and head (its finest-level
    refinement convs) in the backward pass in training mode.
    """

    def __init__(
        self,
        cube: int = PAPER_CUBE,
        view: ViewName = "xray1",
        encoder_channels: int = PAPER_ENCODER_CHANNELS,
        growth_rate: int = PAPER_GROWTH_RATE,
        bottleneck_channels: int = PAPER_BOTTLENECK_CHANNELS,
        dense_layers: Sequence[int] = PAPER_DENSE_LAYERS,
        skip_channels: Sequence[int] = PAPER_SKIP_CHANNELS,
        decoder_channels: Sequence[int] = PAPER_DECODER_CHANNELS,
        view_decoder_convs: Sequence[int] = PAPER_VIEW_DECODER_CONVS,
        dropout: float = PAPER_DROPOUT,
        checkpointing: bool = False,
    ) -> None:
        super().__init__()
        check_view(view)
        self.view: ViewName = view
        self.cube = cube
        self.branch = ViewBranch(
            view,
            cube,
            encoder_channels,
            growth_rate,
            bottleneck_channels,
            dense_layers,
            skip_channels,
            decoder_channels,
            view_decoder_convs,
            dropout,
            build_head=True,
            checkpointing=checkpointing,
        )

    @property
    def checkpointing(self) -> bool:
        """Whether the branch's 3D decoder is recomputed in the backward pass (training mode only)."""
        return self.branch.checkpointing

    @checkpointing.setter
    def checkpointing(self, enabled: bool) -> None:
        self.branch.checkpointing = bool(enabled)

    def forward(self, xray1: torch.Tensor | None, xray2: torch.Tensor | None = None) -> torch.Tensor:
        image = xray1 if self.view == "xray1" else xray2
        if image is None:
            raise ValueError(f"SingleViewGenerator(view={self.view!r}) needs the {self.view} image, got None")
        return self.branch(image)
