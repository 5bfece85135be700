"""``bulkscan disable RUN_DIR [--task NAME...]``: DISABLE the run's tasks (see ``_operate``)."""

from __future__ import annotations

from typing import Any

from bulkscan.cli._operate import register_action

__all__ = ["register"]


def register(sub: Any) -> None:
    register_action(sub, "DISABLE")
