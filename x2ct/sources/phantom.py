"""A data source of procedural spine phantoms, with the same interface as the dataset folders."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import numpy as np

from x2ct.io.ct_units import CT_UNITS_HU
from x2ct.io.volume import Volume
from x2ct.phantom import PhantomConfig, make_phantom, phantom_case_id, phantom_number
from x2ct.sources.base import CaseRef, CaseSource


def phantom_case_seed(seed: int, index: int) -> int:
    """Seed of phantom number ``index`` of a run seeded with ``seed``; independent of how many cases are asked."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


class PhantomSource(CaseSource):
    """``n_cases`` phantoms named ``phantom_0000``, ``phantom_0001``, ... (deterministic for ``seed``)."""

    name = "phantom"

    def __init__(self, n_cases: int = 16, seed: int = 0, phantom: PhantomConfig | None = None) -> None:
        if n_cases < 1:
            raise ValueError(f"source.n_cases must be >= 1, got {n_cases}")
        self.n_cases = int(n_cases)
        self.seed = int(seed)
        self.phantom = phantom or PhantomConfig()

    def list_cases(self) -> list[CaseRef]:
        return [CaseRef(case_id=phantom_case_id(i), ct_path=None, mask_path=None) for i in range(self.n_cases)]

    def file_settings(self, ref: CaseRef) -> dict[str, Any]:
        """The run seed and the phantom config: with the case index (its id) they decide the phantom."""
        return {"source": self.name, "seed": self.seed, "phantom": asdict(self.phantom)}

    def load(self, ref: CaseRef) -> Volume:
        """The phantom of ``ref`` (generated in HU: ``meta["ct_units"] = "hu"``)."""
        index = phantom_number(ref.case_id)
        vol = make_phantom(phantom_case_seed(self.seed, index), self.phantom, case_id=ref.case_id)
        vol.meta["ct_units"] = CT_UNITS_HU
        return vol
