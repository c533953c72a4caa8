"""X-ray preprocessing with OpenCV: the paper's contour crop, and the plain resize of aligned DRRs.

The paper (Saravi et al. 2023, section 2.2) processed each synthetic X-ray as: grayscale -> threshold (keep
the bright parts) -> morphological opening and closing -> largest contour -> crop the original image to
its bounding box -> normalize -> pad to square -> resize to the output size (128). :func:`paper_preprocess`
implements these steps with every parameter in :class:`PaperPreprocessConfig`. The crop breaks the pixel
alignment between the X-rays and the CT; our own aligned DRRs therefore use :func:`resize_xray` instead.

Images are 2D arrays (rows, cols), either float in [0, 1] or uint8 in [0, 255] (bright = dense); results
are uint8 in [0, 255].
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

from x2ct.errors import CaseError

UINT8_MAX = 255
PAPER_OUTPUT_SIZE = 128
BGR_CHANNELS = 3
BGRA_CHANNELS = 4

ThresholdMethod = Literal["otsu", "fixed"]
KernelShape = Literal["ellipse", "rect", "cross"]
Normalization = Literal["minmax", "none"]
Interpolation = Literal["area", "linear", "cubic", "nearest", "lanczos"]

_KERNEL_SHAPES: dict[str, int] = {
    "ellipse": cv2.MORPH_ELLIPSE,
    "rect": cv2.MORPH_RECT,
    "cross": cv2.MORPH_CROSS,
}
_INTERPOLATIONS: dict[str, int] = {
    "area": cv2.INTER_AREA,
    "linear": cv2.INTER_LINEAR,
    "cubic": cv2.INTER_CUBIC,
    "nearest": cv2.INTER_NEAREST,
    "lanczos": cv2.INTER_LANCZOS4,
}


class XrayPreprocessError(CaseError):
    """An X-ray that the preprocessing cannot handle (blank, no contour, bad shape or range)."""


@dataclass(frozen=True)
class PaperPreprocessConfig:
    """Parameters of the paper's contour-crop preprocessing (defaults: our choice, the paper gives none).

    Attributes:
        output_size: side of the square result in pixels (the paper: 128).
        threshold_method: ``"otsu"`` (automatic, per image) or ``"fixed"`` (``threshold_value``).
        threshold_value: grey level in [0, 255] for ``"fixed"``; pixels strictly above it are foreground.
        kernel_shape: structuring element of the morphology, ``"ellipse"``, ``"rect"`` or ``"cross"``.
        kernel_size: side of the structuring element in pixels (odd or even, >= 1).
        open_iterations: iterations of the opening (removes bright specks smaller than the kernel); 0 = off.
        close_iterations: iterations of the closing (fills dark gaps smaller than the kernel); 0 = off.
        margin: pixels added on every side of the contour's bounding box (clipped at the image border).
        normalization: ``"minmax"`` stretches the crop to 0..255; ``"none"`` keeps its grey levels.
        pad_value: grey level in [0, 255] of the padding that makes the crop square (0 = black, like air).
        interpolation: OpenCV interpolation of the final resize (``"area"`` is best for shrinking).
    """

    output_size: int = PAPER_OUTPUT_SIZE
    threshold_method: ThresholdMethod = "otsu"
    threshold_value: int = 20
    kernel_shape: KernelShape = "ellipse"
    kernel_size: int = 5
    open_iterations: int = 1
    close_iterations: int = 1
    margin: int = 0
    normalization: Normalization = "minmax"
    pad_value: int = 0
    interpolation: Interpolation = "area"

    def __post_init__(self) -> None:
        if self.output_size < 1:
            raise ValueError(f"output_size must be >= 1, got {self.output_size}")
        if self.threshold_method not in ("otsu", "fixed"):
            raise ValueError(f"threshold_method must be 'otsu' or 'fixed', got {self.threshold_method!r}")
        if not 0 <= self.threshold_value <= UINT8_MAX:
            raise ValueError(f"threshold_value must be in [0, 255], got {self.threshold_value}")
        if self.kernel_shape not in _KERNEL_SHAPES:
            raise ValueError(f"kernel_shape must be one of {sorted(_KERNEL_SHAPES)}, got {self.kernel_shape!r}")
        if self.kernel_size < 1:
            raise ValueError(f"kernel_size must be >= 1, got {self.kernel_size}")
        if self.open_iterations < 0:
            raise ValueError(f"open_iterations must be >= 0, got {self.open_iterations}")
        if self.close_iterations < 0:
            raise ValueError(f"close_iterations must be >= 0, got {self.close_iterations}")
        if self.margin < 0:
            raise ValueError(f"margin must be >= 0, got {self.margin}")
        if self.normalization not in ("minmax", "none"):
            raise ValueError(f"normalization must be 'minmax' or 'none', got {self.normalization!r}")
        if not 0 <= self.pad_value <= UINT8_MAX:
            raise ValueError(f"pad_value must be in [0, 255], got {self.pad_value}")
        if self.interpolation not in _INTERPOLATIONS:
            raise ValueError(f"interpolation must be one of {sorted(_INTERPOLATIONS)}, got {self.interpolation!r}")


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Grey image -> uint8 (rows, cols): uint8 is returned as is, float in [0, 1] becomes round(255 x).

    Colour uint8 input (rows, cols, 3 or 4; OpenCV BGR/BGRA order) is converted to grey first.
    Raises XrayPreprocessError for other shapes, dtypes, NaN or floats outside [0, 1].
    """
    array = np.asarray(image)
    if array.ndim == 3 and array.shape[2] in (BGR_CHANNELS, BGRA_CHANNELS) and array.dtype == np.uint8:
        code = cv2.COLOR_BGR2GRAY if array.shape[2] == BGR_CHANNELS else cv2.COLOR_BGRA2GRAY
        array = cv2.cvtColor(array, code)
    if array.ndim != 2 or min(array.shape) == 0:
        raise XrayPreprocessError(f"expected a non-empty 2D grey image (rows, cols), got shape {array.shape}")
    if array.dtype == np.uint8:
        return array
    if not np.issubdtype(array.dtype, np.floating):
        raise XrayPreprocessError(f"expected a float image in [0, 1] or uint8, got dtype {array.dtype}")
    if not np.all(np.isfinite(array)):
        raise XrayPreprocessError("the image contains NaN or infinite values")
    low, high = float(array.min()), float(array.max())
    if low < 0.0 or high > 1.0:
        raise XrayPreprocessError(f"a float image must lie in [0, 1], got values in [{low:.4g}, {high:.4g}]")
    return np.round(array * UINT8_MAX).astype(np.uint8)


def resize_xray(image: np.ndarray, size: int = PAPER_OUTPUT_SIZE, interpolation: Interpolation = "area") -> np.ndarray:
    """Resize an aligned X-ray (e.g. our DRR, D x W or D x H) to uint8 (size, size) with no crop.

    The whole field of view is kept, so the pixel alignment with the CT grid is preserved; a non-square
    input is stretched to square (the aligned DRR detector covers the CT cube and is square already).
    """
    if size < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    if interpolation not in _INTERPOLATIONS:
        raise ValueError(f"interpolation must be one of {sorted(_INTERPOLATIONS)}, got {interpolation!r}")
    gray = to_uint8(image)
    if gray.shape == (size, size):
        return gray.copy()
    return cv2.resize(gray, (size, size), interpolation=_INTERPOLATIONS[interpolation])


def foreground_mask(gray: np.ndarray, config: PaperPreprocessConfig) -> np.ndarray:
    """Threshold then open/close a uint8 (rows, cols) image; returns the uint8 mask (0 or 255)."""
    if config.threshold_method == "otsu":
        _, mask = cv2.threshold(gray, 0, UINT8_MAX, cv2.THRESH_BINARY | cv2.THRESH_OTSU)
    else:
        _, mask = cv2.threshold(gray, config.threshold_value, UINT8_MAX, cv2.THRESH_BINARY)
    kernel = cv2.getStructuringElement(_KERNEL_SHAPES[config.kernel_shape], (config.kernel_size,) * 2)
    if config.open_iterations:
        mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, kernel, iterations=config.open_iterations)
    if config.close_iterations:
        mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, kernel, iterations=config.close_iterations)
    return mask


def largest_contour_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    """Bounding box (row0, row1, col0, col1), end-exclusive, of the largest outer contour of a uint8 mask.

    Raises XrayPreprocessError when the mask holds no contour.
    """
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        raise XrayPreprocessError(
            "no bright structure survives the threshold and morphology (empty mask): nothing to crop"
        )
    largest = max(contours, key=cv2.contourArea)
    col, row, width, height = cv2.boundingRect(largest)
    return row, row + height, col, col + width


def pad_to_square(image: np.ndarray, pad_value: int) -> np.ndarray:
    """Pad the shorter side of (rows, cols) equally on both sides (the odd pixel at the end) to a square."""
    rows, cols = image.shape
    side = max(rows, cols)
    top = (side - rows) // 2
    left = (side - cols) // 2
    return cv2.copyMakeBorder(
        image, top, side - rows - top, left, side - cols - left, cv2.BORDER_CONSTANT, value=pad_value
    )


def paper_crop_box(gray: np.ndarray, config: PaperPreprocessConfig) -> tuple[int, int, int, int]:
    """The box (row0, row1, col0, col1), end-exclusive, that :func:`paper_preprocess` crops from a uint8
    (rows, cols) image: the largest contour's bounding box widened by ``config.margin``, clipped to the image.

    Raises XrayPreprocessError for a blank image or one without a contour.
    """
    if int(gray.max()) == int(gray.min()):
        raise XrayPreprocessError(f"the image is blank (every pixel is {int(gray.min())}): nothing to crop")
    row0, row1, col0, col1 = largest_contour_box(foreground_mask(gray, config))
    rows, cols = gray.shape
    row0, col0 = max(row0 - config.margin, 0), max(col0 - config.margin, 0)
    row1, col1 = min(row1 + config.margin, rows), min(col1 + config.margin, cols)
    return row0, row1, col0, col1


def paper_crop_window(image: np.ndarray, config: PaperPreprocessConfig | None = None) -> tuple[int, int, int, int]:
    """The square (row_lo, row_hi, col_lo, col_hi), end-exclusive, in the input image's pixel frame that the
    output of :func:`paper_preprocess` covers: the crop box padded to a square as :func:`pad_to_square` pads it
    (so it may reach past the image's edges). The output pixel grid spans this window evenly."""
    row0, row1, col0, col1 = paper_crop_box(to_uint8(image), config or PaperPreprocessConfig())
    side = max(row1 - row0, col1 - col0)
    top = (side - (row1 - row0)) // 2
    left = (side - (col1 - col0)) // 2
    return row0 - top, row0 - top + side, col0 - left, col0 - left + side


def paper_preprocess(image: np.ndarray, config: PaperPreprocessConfig | None = None) -> np.ndarray:
    """The paper's preprocessing of one X-ray: uint8 (config.output_size, config.output_size).

    Args:
        image: (rows, cols) float in [0, 1] or uint8 (or uint8 BGR/BGRA, made grey first), bright = dense.
        config: the parameters; defaults to :class:`PaperPreprocessConfig()`.

    Raises:
        XrayPreprocessError: blank (constant) image, no contour after thresholding, or a constant crop that
            min-max normalization cannot stretch.
    """
    config = config or PaperPreprocessConfig()
    gray = to_uint8(image)
    row0, row1, col0, col1 = paper_crop_box(gray, config)
    crop = gray[row0:row1, col0:col1]
    if config.normalization == "minmax":
        if int(crop.max()) == int(crop.min()):
            raise XrayPreprocessError(
                f"the cropped region rows {row0}:{row1}, cols {col0}:{col1} is constant ({int(crop.min())}): "
                "min-max normalization would divide by zero (try normalization='none' or a margin)"
            )
        crop = cv2.normalize(crop, None, 0, UINT8_MAX, cv2.NORM_MINMAX)
    square = pad_to_square(crop, config.pad_value)
    return cv2.resize(
        square, (config.output_size, config.output_size), interpolation=_INTERPOLATIONS[config.interpolation]
    )
