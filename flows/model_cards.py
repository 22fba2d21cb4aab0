"""Where model versions live on disk: the pointer to each kind's current version and the cards.

Apart from :mod:`flows.model` (ONNX Runtime, NumPy, Arrow) so that what only reads the registry's
files, such as the CLI's help and :mod:`flows.model_registry`, loads none of them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from flows.errors import RiskctlError
from flows.settings import DEFAULT_MODEL_KIND

CURRENT_FILE = "CURRENT"
# Behavioural models (live PD from payment behaviour) are versioned the same way, one level down.
BEHAVIOUR_DIR = "behaviour"


class ModelError(RiskctlError):
    """No usable model: none trained yet, a missing version, or a card that does not fit."""


def current_file(kind: str | None = None) -> str:
    """The pointer file naming the current version of an origination model kind."""
    return CURRENT_FILE if kind in (None, DEFAULT_MODEL_KIND) else f"{CURRENT_FILE}-{kind}"


def current_version(models_dir: Path, kind: str | None = None) -> str | None:
    marker = models_dir / current_file(kind)
    if not marker.is_file():
        return None
    try:
        return marker.read_text().strip() or None
    except (OSError, UnicodeDecodeError) as exc:
        raise ModelError(f"cannot read {marker}: {exc}") from exc


def read_card(model_dir: Path) -> dict[str, Any]:
    card_path = model_dir / "card.json"
    if not card_path.is_file():
        raise ModelError(f"model card missing: {card_path}")
    try:
        card = json.loads(card_path.read_bytes())
    except (OSError, ValueError) as exc:  # UnicodeDecodeError is a ValueError too
        raise ModelError(f"model card {card_path} is not readable JSON: {exc}") from exc
    if not isinstance(card, dict):
        raise ModelError(f"model card {card_path} is not a JSON object")
    return card
