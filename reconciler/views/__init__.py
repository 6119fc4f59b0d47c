"""Rendering: each command's report as text, JSON, Markdown or GitHub annotations."""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any


class Deferred:
    """A view module loaded when first used: `validate` (a pre-commit hook) loads only the views
    it renders with. A module that names one imports the module itself for type checking."""

    def __init__(self, name: str) -> None:
        self._name = f"{__name__}.{name}"
        self._module: ModuleType | None = None

    def __getattr__(self, attribute: str) -> Any:
        if self._module is None:
            self._module = importlib.import_module(self._name)
        return getattr(self._module, attribute)
