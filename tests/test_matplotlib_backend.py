"""Importing x2ct's plotting modules leaves the caller's matplotlib backend alone: they draw on their own Agg
canvases (``matplotlib.figure.Figure`` + ``FigureCanvasAgg``), never through pyplot."""

from __future__ import annotations

import os
import subprocess
import sys

# A non-interactive backend other than Agg that every matplotlib install has.
CALLER_BACKEND = "svg"
PLOTTING_MODULES = (
    "x2ct.preparation.preview",
    "x2ct.studies.aggregate",
    "x2ct.viz.figures",
    "x2ct.inference.preview",
    "x2ct.evaluation.writers",
    "x2ct.callbacks.media",
)


def test_imports_keep_the_backend() -> None:
    """One fresh interpreter (the modules must not be imported yet) with a non-Agg backend chosen by the caller."""
    imports = "; ".join(f"importlib.import_module({module!r})" for module in PLOTTING_MODULES)
    code = f"import importlib, matplotlib; {imports}; print(matplotlib.get_backend())"
    env = {**os.environ, "MPLBACKEND": CALLER_BACKEND}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().lower() == CALLER_BACKEND
