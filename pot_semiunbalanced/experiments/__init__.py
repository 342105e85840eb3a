"""Benchmark data for the paper's experiments.

Synthetic MVTec-like texture defects (:mod:`.defects`), the offline
super-resolution benchmark with defect-free and defective references and its
PNG storage (:mod:`.datasets`), and a loader for a local MVTec AD copy
(:mod:`.mvtec`).
"""
from .datasets import (
    MATERIALS_ENV_VAR,
    SRPair,
    load_pairs_from_folder,
    offline_benchmark,
    save_pairs,
)
from .defects import (
    DEFECT_KINDS,
    add_contamination,
    add_defect,
    add_defects,
    add_hole,
    add_scratch,
    add_stain,
    soft_edge_region,
)
from .mvtec import MVTEC_TEXTURES, load_mvtec_pairs

__all__ = [
    "DEFECT_KINDS",
    "MATERIALS_ENV_VAR",
    "MVTEC_TEXTURES",
    "SRPair",
    "add_contamination",
    "add_defect",
    "add_defects",
    "add_hole",
    "add_scratch",
    "add_stain",
    "load_mvtec_pairs",
    "load_pairs_from_folder",
    "offline_benchmark",
    "save_pairs",
    "soft_edge_region",
]
