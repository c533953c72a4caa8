"""The project notebooks: committed without outputs and in sync with their builder, and executed end to end on
tiny data (the data notebook at 32^3, the results notebook on a real tiny checkpoint's evaluation and a 2-job angle
sweep)."""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import nbformat
import numpy as np
import pytest
from nbclient import NotebookClient
from scipy import ndimage

from x2ct.io.hdf5 import HU_OFFSET, TRIPLET_FILENAME, read_triplet, write_triplet

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"
DATA_NOTEBOOK = NOTEBOOK_DIR / "01_data_pipeline.ipynb"
RESULTS_NOTEBOOK = NOTEBOOK_DIR / "02_results.ipynb"
CELL_TIMEOUT_S = 120
KERNEL = "python3"
TINY_CUBE = 32
N_CASES = 4  # the data notebook's default number of prepared phantoms
SWEEP_ANGLES = (90.0, 85.0)
AIR_HU = -1000.0
N_BOOT = 100  # bootstrap resamples of the tiny evaluations
ENV_VARS = ("X2CT_NB_CUBE", "X2CT_NB_OUT", "X2CT_NB_CASES", "X2CT_EVAL_DIR", "X2CT_STUDY_DIR", "X2CT_STUDY_OUT")


def load_builder() -> ModuleType:
    """notebooks/build_notebooks.py as a module (the notebooks folder is not a package)."""
    spec = importlib.util.spec_from_file_location("build_notebooks", NOTEBOOK_DIR / "build_notebooks.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def execute(path: Path, workdir: Path) -> nbformat.NotebookNode:
    """Run every cell of the notebook at ``path`` in a fresh ``python3`` kernel with ``workdir`` as the current
    folder; raises nbclient's CellExecutionError (with the failing cell and traceback) on an error."""
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(
        notebook, timeout=CELL_TIMEOUT_S, kernel_name=KERNEL, resources={"metadata": {"path": str(workdir)}}
    )
    client.execute()
    return notebook


def outputs_of(notebook: nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
    return [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs]


def mime_count(notebook: nbformat.NotebookNode, mime: str) -> int:
    return sum(mime in output.get("data", {}) for output in outputs_of(notebook))


def stream_text(notebook: nbformat.NotebookNode) -> str:
    return "".join(output.text for output in outputs_of(notebook) if output.output_type == "stream")


@pytest.fixture(scope="session")
def this_python_kernel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Jupyter data folder whose ``python3`` kernel runs this interpreter (the .venv with x2ct), so that a
    ``python3`` kernel spec installed elsewhere on the machine cannot take its place."""
    from ipykernel.kernelspec import write_kernel_spec

    root = tmp_path_factory.mktemp("jupyter")
    write_kernel_spec(root / "kernels" / KERNEL)
    return root


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, this_python_kernel: Path) -> Iterator[pytest.MonkeyPatch]:
    """No notebook environment variable from the caller's shell; the kernel inherits this process's environment."""
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("WANDB_MODE", "disabled")
    monkeypatch.setenv("JUPYTER_PATH", str(this_python_kernel))  # searched before the user's and system folders
    yield monkeypatch


# ------------------------------------------------------------------------------------------ committed files


@pytest.mark.parametrize("path", [DATA_NOTEBOOK, RESULTS_NOTEBOOK], ids=lambda p: p.name)
def test_committed_notebook_has_no_outputs(path: Path) -> None:
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    code_cells = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code_cells
    assert all(cell.outputs == [] and cell.execution_count is None for cell in code_cells)
    assert notebook.metadata["kernelspec"]["name"] == KERNEL


def test_committed_notebooks_match_their_builder(tmp_path: Path) -> None:
    builder = load_builder()
    assert builder.main(["--out", str(tmp_path)]) == 0
    for name in builder.NOTEBOOKS:
        assert (tmp_path / name).read_text() == (NOTEBOOK_DIR / name).read_text(), (
            f"{name} is out of date: run .venv/bin/python notebooks/build_notebooks.py"
        )
    assert builder.main(["--check"]) == 0
    (tmp_path / DATA_NOTEBOOK.name).write_text("{}")
    assert builder.main(["--check", "--out", str(tmp_path)]) == 1


# ------------------------------------------------------------------------------------------ data notebook


@pytest.mark.slow
def test_data_notebook_runs_on_a_tiny_cube(tmp_path: Path, clean_env: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out"
    clean_env.setenv("X2CT_NB_CUBE", str(TINY_CUBE))
    clean_env.setenv("X2CT_NB_OUT", str(out))
    notebook = execute(DATA_NOTEBOOK, tmp_path)

    # phantom, fitted cube, DRRs, 75-degree view, HDF5 triplet, manifest preview
    assert mime_count(notebook, "image/png") == 6
    assert mime_count(notebook, "text/markdown") == 1  # the manifest table
    text = stream_text(notebook)
    assert f"cube {TINY_CUBE}^3 at 4 mm" in text
    assert text.count("best shift (0, 0) px") == 2  # the DRRs line up with the CT's mean projections

    prepared = out / "prepared"
    manifest = (prepared / "manifest.csv").read_text().splitlines()
    assert len(manifest) == 1 + N_CASES and all(",ok," in line for line in manifest[1:])
    ids = (prepared / "train.txt").read_text().split() + (prepared / "test.txt").read_text().split()
    assert len(ids) == N_CASES
    triplet = read_triplet(prepared / ids[0] / TRIPLET_FILENAME, lateral_angle=75)
    assert triplet.ct_hu_plus_1024.shape == (TINY_CUBE,) * 3
    assert triplet.available_angles == [75.0, 80.0, 85.0, 90.0]
    assert len(list((prepared / "previews").glob("*.png"))) == 1


# --------------------------------------------------------------------------------------- results notebook


def add_oblique_lateral(root: Path, angle: float) -> None:
    """Add a lateral view at ``angle`` degrees to every triplet under ``root``: the mean projection along W of the CT
    turned by 90 - angle degrees about the cranio-caudal axis (the same display scale as the 90-degree view)."""
    for path in sorted(root.glob(f"*/{TRIPLET_FILENAME}")):
        triplet = read_triplet(path)
        hu = triplet.ct_hu_plus_1024 - HU_OFFSET
        turned = ndimage.rotate(hu, 90.0 - angle, axes=(1, 2), reshape=False, order=1, cval=AIR_HU)
        oblique = np.clip((turned.mean(axis=2) - AIR_HU) / (2 * -AIR_HU) * 255, 0, 255).astype(np.uint8)
        write_triplet(path, ct_hu=hu, xray1=triplet.xray1, laterals={90.0: triplet.xray2, angle: oblique})


@pytest.fixture(scope="module")
def evaluation_outputs(
    tmp_path_factory: pytest.TempPathFactory,
    write_tiny_triplets: Callable[..., Path],
    tiny_train_overrides: tuple[str, ...],
    compose_train_config: Callable[..., Any],
) -> dict[str, Path]:
    """A 1-epoch tiny checkpoint, its evaluation at 90 and 85 degrees as a fake Hydra multirun, and the aggregate."""
    from x2ct.evaluation import EvaluationSettings, evaluate_checkpoint
    from x2ct.studies.aggregate import aggregate
    from x2ct.train import train

    base = tmp_path_factory.mktemp("results")
    data_root = write_tiny_triplets(base / "data", n_train=4, n_test=3, cube=TINY_CUBE)
    add_oblique_lateral(data_root, SWEEP_ANGLES[1])
    run_dir = base / "train"
    overrides = [
        f"data.root={data_root}",
        *tiny_train_overrides,
        "trainer.max_epochs=1",
        "trainer.limit_val_batches=1",
        "~callbacks.media",  # no validation figures: only the checkpoint matters here
    ]
    train(compose_train_config(run_dir, overrides))
    checkpoint = run_dir / "checkpoints" / "last.ckpt"
    sweep = base / "angle_sweep"
    for job, angle in enumerate(SWEEP_ANGLES):
        settings = EvaluationSettings(n_boot=N_BOOT, figures=job == 0)  # the notebook shows job 0's figures
        job_dir = sweep / str(job)
        (job_dir / ".hydra").mkdir(parents=True)
        (job_dir / ".hydra" / "overrides.yaml").write_text(
            f"- ckpt_path={checkpoint}\n- data.lateral_angle={angle:g}\n"
        )
        evaluate_checkpoint(checkpoint, {"lateral_angle": angle}, job_dir, settings)
    study = base / "angle_study"
    aggregate([sweep], ["data.lateral_angle"], study, title="angle study")
    return {"eval": sweep / "0", "sweep": sweep, "study": study}


@pytest.mark.slow
def test_fixture_sweep_differs_by_angle(evaluation_outputs: dict[str, Path]) -> None:
    sweep = evaluation_outputs["sweep"]
    metrics = [json.loads((sweep / str(job) / "metrics.json").read_text()) for job in range(len(SWEEP_ANGLES))]
    assert [m["lateral_angle"] for m in metrics] == list(SWEEP_ANGLES)
    assert metrics[0]["PSNR-3D"] != metrics[1]["PSNR-3D"]  # the 85-degree input really is another image


@pytest.mark.slow
@pytest.mark.parametrize("study", ["study", "sweep"], ids=["aggregated", "multirun"])
def test_results_notebook_shows_evaluation_and_angle_study(
    study: str, evaluation_outputs: dict[str, Path], tmp_path: Path, clean_env: pytest.MonkeyPatch
) -> None:
    clean_env.setenv("X2CT_EVAL_DIR", str(evaluation_outputs["eval"]))
    clean_env.setenv("X2CT_STUDY_DIR", str(evaluation_outputs[study]))
    clean_env.setenv("X2CT_STUDY_OUT", str(tmp_path / "aggregated"))
    notebook = execute(RESULTS_NOTEBOOK, tmp_path)

    figures = sorted((evaluation_outputs["eval"] / "figures").glob("*.png"))
    assert len(figures) == 6  # best, median, worst x (slices, projections)
    # distributions + x2ct-eval's six figures + the angle-study plot
    assert mime_count(notebook, "image/png") == 1 + len(figures) + 1
    markdown = [
        output.data["text/markdown"] for output in outputs_of(notebook) if "text/markdown" in output.get("data", {})
    ]
    assert any("| PSNR-3D |" in text and "Paper (Table 1" in text for text in markdown)  # metrics.md
    assert any("lateral_angle=85" in text and "lateral_angle=90" in text for text in markdown)  # table.md
    text = stream_text(notebook)
    assert "data.lateral_angle: [85.0, 90.0]" in text
    assert "'PSNR-3D': 27.432" in text and "'SSIM-avg': 0.468" in text  # the paper's means, read from metrics.md
    assert "Set X2CT_EVAL_DIR" not in text
    if study == "sweep":  # the notebook aggregated the multirun itself
        assert (tmp_path / "aggregated" / "results.csv").is_file()
        assert "aggregated the multirun" in text


@pytest.mark.slow
def test_results_notebook_without_results_explains_what_to_run(tmp_path: Path, clean_env: pytest.MonkeyPatch) -> None:
    notebook = execute(RESULTS_NOTEBOOK, tmp_path)
    text = stream_text(notebook)
    assert "Set X2CT_EVAL_DIR and X2CT_STUDY_DIR" in text
    assert "x2ct-eval -m ckpt_path=" in text and "python -m x2ct.studies.aggregate" in text
    assert mime_count(notebook, "image/png") == 0


@pytest.mark.slow
def test_results_notebook_names_a_wrong_folder(tmp_path: Path, clean_env: pytest.MonkeyPatch) -> None:
    from nbclient.exceptions import CellExecutionError

    clean_env.setenv("X2CT_EVAL_DIR", str(tmp_path / "missing"))
    with pytest.raises(CellExecutionError, match=r"X2CT_EVAL_DIR=.*missing: no such folder"):
        execute(RESULTS_NOTEBOOK, tmp_path)
