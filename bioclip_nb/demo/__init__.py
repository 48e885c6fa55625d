"""The demo atlas (265 real species, drawn procedurally, searchable offline) and synthetic
atlases of clustered vectors for benchmarks and lessons.

The demo is a smoke test of the whole pipeline, not evidence of retrieval quality: its
specimens are drawings, and with the stand-in encoder colour alone finds most species.
"""

from .._lazy import attach

__getattr__, __dir__, __all__ = attach(__name__, {
    "ensure_demo_atlas": "specimens", "build_demo": "specimens", "build_synthetic": "specimens",
    "species_table": "specimens", "is_current_demo": "specimens",
    "art": "", "synthetic": "", "specimens": "",
})
