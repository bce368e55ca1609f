"""The checkpoints we know by name: short name, hub id, layout facts, what they cost, and whether we ran them.

Facts were checked against the models' hub pages where the search tool reached them; what could not be checked
says "unverified" rather than a guess. `ran_here` is honest: only the bundled model has answered completions in
this project; the others are known by their layout (the engine's logits match the authors' code on random
weights of the same shapes), not by a run of the real weights.
"""

from __future__ import annotations

from dataclasses import dataclass

UNVERIFIED = "unverified"


@dataclass(frozen=True)
class CatalogueEntry:
    short_name: str
    hub_id: str | None  # None: shipped inside the package
    family: str  # the weight-name map the loader uses
    prediction: str  # "shifted" (token i from output i-1) or "in place"
    length: str  # "expand/delete" (the canvas grows and shrinks) or "fixed"
    parameters_b: float  # billions
    licence: str
    threshold: float  # recommended commit threshold
    steps: str  # recommended step budget for a single line / a block
    hardware: str
    ran_here: bool

    @property
    def bf16_gb(self) -> float:
        """The weights alone in bf16 (2 bytes a parameter), in GB (10^9 bytes)."""
        return self.parameters_b * 2

    @property
    def status(self) -> str:
        return "run here" if self.ran_here else "layout only"


CATALOGUE: tuple[CatalogueEntry, ...] = (
    CatalogueEntry("bundled", None, "qwen2 (ours)", "shifted", "fixed", 0.0235, "MIT (this project)", 0.9,
                   "8 / 32", "any CPU", True),
    CatalogueEntry("open-dcoder-0.5b", "fredzzp/open-dcoder-0.5B", "qwen2", "shifted", "fixed", 0.49,
                   UNVERIFIED, 0.9, "8 / 32", "laptop CPU, any GPU", False),
    CatalogueEntry("dream-coder-7b", "Dream-org/Dream-Coder-v0-Base-7B", "qwen2 (Dream)", "shifted", "fixed", 7.6,
                   UNVERIFIED, 0.9, "8 / 32", "GPU with >= 24 GB", False),
    CatalogueEntry("dream-coder-7b-instruct", "Dream-org/Dream-Coder-v0-Instruct-7B", "qwen2 (Dream)", "shifted",
                   "fixed", 7.6, "apache-2.0", 0.9, "8 / 32", "GPU with >= 24 GB", False),
    CatalogueEntry("dreamon-7b", "Dream-org/DreamOn-v0-7B", "qwen2 (Dream)", "shifted", "expand/delete", 7.6,
                   UNVERIFIED, 0.9, "8 / 32", "GPU with >= 24 GB", False),
    CatalogueEntry("diffucoder-7b", "apple/DiffuCoder-7B-Base", "qwen2 (Dream)", "shifted", "fixed", 7.6,
                   "apple-amlr", 0.9, "8 / 32", "GPU with >= 24 GB", False),
    CatalogueEntry("llada-8b", "GSAI-ML/LLaDA-8B-Base", "llada", "in place", "fixed", 8.0, "mit", 0.9,
                   "8 / 32", "GPU with >= 48 GB (no GQA: large caches)", False),
)

BY_SHORT_NAME = {entry.short_name: entry for entry in CATALOGUE}


def find(name: str) -> CatalogueEntry | None:
    """The entry with this short name (case-insensitive), or None."""
    return BY_SHORT_NAME.get(name.lower())


COLUMNS = ("name", "hub id", "family", "prediction", "length", "params", "bf16", "licence", "threshold",
           "steps line/block", "suits", "status")


def table_rows() -> list[tuple[str, ...]]:
    """One row of text per entry, in COLUMNS order."""
    rows = []
    for entry in CATALOGUE:
        params = f"{entry.parameters_b * 1000:.1f}M" if entry.parameters_b < 0.1 else f"{entry.parameters_b:g}B"
        memory = f"{entry.bf16_gb * 1000:.0f} MB" if entry.bf16_gb < 1 else f"{entry.bf16_gb:.1f} GB"
        rows.append((entry.short_name, entry.hub_id or "(in the package)", entry.family, entry.prediction,
                     entry.length, params, memory, entry.licence, f"{entry.threshold:g}", entry.steps,
                     entry.hardware, entry.status))
    return rows


def render_table() -> str:
    """The catalogue as aligned plain text, a header line first."""
    rows = [COLUMNS, *table_rows()]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows)
