"""A grid of decoded pictures that Jupyter shows inline (PNG) and that renders without a display."""

from __future__ import annotations

import io
import math
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["ImageGrid"]


class ImageGrid:
    """Pictures laid out in rows of ``cols``, titled; a Jupyter cell showing it renders a PNG.

    Uses matplotlib's ``Figure`` with the Agg canvas directly (no pyplot, no GUI), so it works headless.

    Parameters
    ----------
    images
        uint8 (n, H, W, 3).
    titles
        One title per picture (e.g. its image id), or None.
    cols
        Pictures per row; default ``ceil(sqrt(n))``, at most 8.
    size
        Width and height of one cell, in inches (at :attr:`dpi` dots per inch).
    """

    dpi = 100

    def __init__(self, images: np.ndarray, titles: Sequence[str] | None = None, *, cols: int | None = None,
                 size: float = 2.0) -> None:
        images = np.asarray(images)
        if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
            raise ValueError(f"Expected uint8 pictures (n, H, W, 3). Got {images.dtype} {images.shape} instead.")
        if titles is not None and len(titles) != len(images):
            raise ValueError(f"Expected {len(images)} titles. Got {len(titles)} instead.")
        n = len(images)
        if cols is None:
            cols = max(1, min(8, math.ceil(math.sqrt(n))))
        if not isinstance(cols, int) or isinstance(cols, bool) or cols < 1:
            raise ValueError(f"Expected cols as a positive int. Got {cols!r} instead.")
        if not isinstance(size, int | float) or isinstance(size, bool) or not size > 0:
            raise ValueError(f"Expected size > 0 (inches per picture). Got {size!r} instead.")
        self.images = images
        self.titles = list(titles) if titles is not None else None
        self.cols = min(cols, max(n, 1))
        self.size = float(size)
        self._figure: Figure | None = None

    @property
    def rows(self) -> int:
        """Rows of the grid."""
        return max(1, math.ceil(len(self.images) / self.cols))

    @property
    def figure(self) -> Figure:
        """The matplotlib figure (built on first use)."""
        if self._figure is None:
            from matplotlib.backends.backend_agg import FigureCanvasAgg
            from matplotlib.figure import Figure

            fig = Figure(figsize=(self.cols * self.size, self.rows * self.size), dpi=self.dpi)
            FigureCanvasAgg(fig)
            axes = fig.subplots(self.rows, self.cols, squeeze=False)
            for i, ax in enumerate(axes.ravel()):
                ax.set_axis_off()
                if i < len(self.images):
                    ax.imshow(self.images[i], interpolation="nearest")
                    if self.titles is not None:
                        ax.set_title(str(self.titles[i]), fontsize=8)
            fig.tight_layout()
            self._figure = fig
        return self._figure

    def to_png(self) -> bytes:
        """The grid as PNG bytes."""
        buf = io.BytesIO()
        self.figure.savefig(buf, format="png", dpi=self.dpi)
        return buf.getvalue()

    def _repr_png_(self) -> bytes:
        return self.to_png()

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the grid as an image file (format from the suffix: .png, .jpg, .svg, .pdf...)."""
        self.figure.savefig(path, dpi=self.dpi)

    def __len__(self) -> int:
        return len(self.images)

    def __repr__(self) -> str:
        h, w = self.images.shape[1:3]
        return f"<ImageGrid of {len(self.images)} pictures {w}x{h} px in {self.rows}x{self.cols}>"
