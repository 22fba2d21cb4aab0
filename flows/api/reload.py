"""The model the service answers with, swapped whole when the kind's pointer file
(``models/CURRENT``, or ``CURRENT-priced``) names another version.

A request takes the current :class:`Loaded` once and uses only it, so a request in flight
finishes on the model it started with; the swap is one reference assignment.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from flows.model import ScoringModel, load_model
from flows.model_cards import current_version


@dataclass(frozen=True, slots=True)
class Loaded:
    model: ScoringModel
    loaded_at: datetime


class ModelHolder:
    def __init__(self, models_dir: Path, kind: str) -> None:
        self.models_dir = models_dir
        self.kind = kind
        self.current: Loaded | None = None

    def refresh(self) -> bool:
        """Load the version the pointer names if it is not the one loaded; True on a swap.
        Raises ModelError when the named version cannot be loaded (the old one stays)."""
        named = current_version(self.models_dir, self.kind)
        current = self.current
        if named is None or (current is not None and current.model.path.name == named):
            return False
        model = load_model(self.models_dir, named, kind=self.kind)
        self.current = Loaded(model, datetime.now(UTC))
        return True
