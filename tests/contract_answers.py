"""The three answers to "does this plan document hold?" that must agree: the contract's models,
the checks compiled from the plan schema generated from them, and that schema's reference
validator (tests/conftest.py asks them of every document the suite judges)."""

from __future__ import annotations

from typing import Any

import pydantic

from reconciler import providers
from reconciler.contract import plan_model
from reconciler.validate import _compiled, _validator


def answers(data: Any) -> dict[str, bool]:
    try:
        plan_model(providers.spec_models()).model_validate(data)
        models = True
    except pydantic.ValidationError:
        models = False
    return {
        "models": models,
        "compiled checks": _compiled().check(data) is None,
        "reference validator": _validator().is_valid(data),
    }
