"""Params models are found when a user module uses ``from __future__ import annotations``.

The annotations are then strings; the decorator has to evaluate them in the module.
"""

from __future__ import annotations

from pydantic import BaseModel

from fluid.scheduler import AnyParams, TaskRun, task


class Order(BaseModel):
    order_id: int


class Mailer:
    """Stands in for a dependency type in ``TaskRun[P, Deps]``."""


@task
async def ship(ctx: TaskRun[Order]) -> int:
    return ctx.params.order_id


@task(name="notify")
async def notify(ctx: TaskRun[Order, Mailer]) -> None:
    return None


@task
async def anything(ctx: TaskRun) -> None:
    return None


def test_params_model_from_a_string_annotation() -> None:
    assert ship.params_model is Order


def test_params_model_with_deps_from_a_string_annotation() -> None:
    assert notify.params_model is Order


def test_unparametrised_string_annotation_gives_any_params() -> None:
    assert anything.params_model is AnyParams


def test_string_annotated_params_still_validate() -> None:
    assert ship.validate_params({"order_id": "12"}) == Order(order_id=12)
