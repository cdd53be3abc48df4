"""The order workflow, in any order of events:

orderPlaced                      ->  t_reserveStock
orderPlaced + paymentAuthorized  ->  t_chargePayment
t_reserveStock + t_chargePayment ->  t_ship
"""

from typing import Any

from celery import shared_task

from celery_triggers import trigger_task


@trigger_task(after=["orderPlaced"], name="t_reserveStock")
@shared_task(name="orders.reserve_stock")
def reserve_stock(trigger_kwargs: dict[str, Any]) -> dict[str, Any]:
    order = trigger_kwargs["orderPlaced"]
    return {"order": order["order"], "reserved": sum(line["qty"] for line in order["lines"])}


@trigger_task(after=["orderPlaced", "paymentAuthorized"], name="t_chargePayment")
@shared_task(name="orders.charge_payment")
def charge_payment(trigger_kwargs: dict[str, Any]) -> dict[str, Any]:
    payment = trigger_kwargs["paymentAuthorized"]
    return {"order": trigger_kwargs["orderPlaced"]["order"], "charged": payment["amount"]}


@trigger_task(after=["t_reserveStock", "t_chargePayment"], name="t_ship")
@shared_task(name="orders.ship")
def ship(trigger_kwargs: dict[str, Any]) -> str:
    stock, payment = trigger_kwargs["t_reserveStock"], trigger_kwargs["t_chargePayment"]
    return f"order {stock['order']} shipped: {stock['reserved']} items, {payment['charged']} charged"
