"""Lab measurements at real scale.

A lab at `scale` multiplies every link rate and every modelled hardware rate by it, so a
rate (or bandwidth) it measures is the real system's times `scale`: divide to project.
Times stretch by the same factor; only rates are projected here.
"""


def to_real(rate: float, scale: float) -> float:
    return rate / scale


def project(row: dict, scale: float, *keys: str) -> dict:
    """Add proj_<key> = row[key] at real scale, for each key; returns the row."""
    for key in keys:
        row[f"proj_{key}"] = to_real(row[key], scale)
    return row
