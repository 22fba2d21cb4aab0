"""What a PD means for the book: its band, and expected loss = PD x exposure x LGD.

Shared by the application scorer (exposure: the funded amount) and the live scorer (exposure:
the outstanding balance), so both stores' rows band and price a PD the same way.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pyarrow as pa

from flows.batches import names_at
from flows.settings import Bands

# The application model scores a lifetime PD (the store derives its 12-month one); the
# behavioural model a 12-month PD.
Horizon = Literal["lifetime", "12m"]


def _band_index(pd: np.ndarray, bands: Bands) -> np.ndarray:
    # the first band whose upper threshold is above the PD
    return np.searchsorted(np.asarray(bands.thresholds), pd, side="right")


def band_names(pd: np.ndarray, bands: Bands) -> list[str]:
    """Each PD's band: the first band whose upper threshold is above it."""
    return np.asarray(bands.names, dtype=object)[_band_index(pd, bands)].tolist()


def risk_columns(
    pd: np.ndarray, exposure: np.ndarray, bands: Bands, lgd: float, horizon: Horizon
) -> dict[str, pa.Array]:
    """The ``pd_<horizon>``, ``band``, ``exposure``, ``lgd`` and ``expected_loss_<horizon>``
    columns of score rows: a PD's column names say over what horizon it is a probability."""
    return {
        f"pd_{horizon}": pa.array(pd, pa.float64()),
        "band": names_at(pa.array(bands.names, pa.string()), _band_index(pd, bands)),
        "exposure": pa.array(exposure, pa.float64()),
        "lgd": pa.array(np.full(len(pd), lgd), pa.float64()),
        f"expected_loss_{horizon}": pa.array(pd * exposure * lgd, pa.float64()),
    }
