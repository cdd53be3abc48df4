"""Idempotency keys: a fire with ``key=...`` happens once per session.

The key is checked and recorded inside the fire's own storage transaction
(on Redis, by the commit script), so a retried webhook, or the same event
fired from many processes at once, schedules its instances once; every
later fire with that key changes nothing and answers with the instances
the first one scheduled, marked ``duplicate``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..core.config import Configuration
from ..core.data import MAX_KEY_LENGTH, check_text
from ..core.engine import Needs
from ..core.errors import InvalidKey
from ..core.operations import FireEach
from ..core.state import Changes, Instance
from ..storage import SessionTxn
from .commit import Body, transaction
from .host import Host

if TYPE_CHECKING:
    from .fired import EachPlan

__all__ = ["Once", "check_key", "keyed_body", "prior_instances"]


def check_key(key: Any) -> str:
    """``key`` if it can be an idempotency key, else :class:`InvalidKey`
    naming it: a non-empty string of at most ``MAX_KEY_LENGTH`` characters,
    no control character."""
    problem = check_text(key, what="an idempotency key", limit=MAX_KEY_LENGTH)
    if problem is not None:
        raise InvalidKey(problem)
    return str(key)


def keyed_body(host: Host, plan: EachPlan, body: Body, now: Callable[[], float]) -> Body:
    """``body`` (the fire of every checked event of ``plan``) made to skip
    the events whose key this session used already (or an earlier event of
    the same plan used), and to record the keys of the others. What the
    committed run skipped is left in ``plan.fired``, ``plan.prior`` and
    ``plan.same_as``."""

    def run(txn: SessionTxn) -> tuple[Changes, Configuration]:
        fired: list[int] = []
        prior: dict[int, list[str]] = {}
        same_as: dict[int, int] = {}
        first: dict[str, int] = {}
        for index, key in enumerate(plan.keys):
            if key is None:
                fired.append(index)
            elif key in first:
                same_as[index] = first[key]
            elif (names := txn.used_key(key)) is not None:
                prior[index] = names
            else:
                first[key] = index
                fired.append(index)
        if len(fired) == len(plan.checked):
            changes, configs = body(txn)
        elif fired:
            events = tuple((plan.checked[i][1], plan.checked[i][2]) for i in fired)
            changes, configs = transaction(host, FireEach(events), now)[0](txn)
        else:
            changes, configs = Changes(), host.configs_with(txn.read_configs())
        for position, index in enumerate(fired):
            key = plan.keys[index]
            if key is not None:
                txn.record_key(key, changes.per_event[position])
        wanted = frozenset(n for names in prior.values() for n in names)
        found = txn.load(Needs(instances=wanted)).instances if wanted else {}
        plan.fired, plan.same_as = fired, same_as
        plan.prior = {i: [found[n] for n in names if n in found] for i, names in prior.items()}
        return changes, configs

    return run


def prior_instances(plan: EachPlan, index: int, fired: dict[int, list[Instance]]) -> list[Instance]:
    """The instances a duplicate event answers with."""
    if index in plan.same_as:
        return fired.get(plan.same_as[index], [])
    return plan.prior[index]


class Once:
    """The key of a single fire (``TriggerManager.fire``) around its body:
    a used key makes the body write nothing and leaves, in ``prior``, the
    instances the key's first fire scheduled."""

    def __init__(self, host: Host, key: str):
        self.host = host
        self.key = key
        self.prior: list[Instance] | None = None

    def wrap(self, body: Body) -> Body:
        def run(txn: SessionTxn) -> tuple[Changes, Configuration]:
            names = txn.used_key(self.key)
            if names is not None:
                found = txn.load(Needs(instances=frozenset(names))).instances if names else {}
                self.prior = [found[n] for n in names if n in found]
                return Changes(), self.host.configs_with(txn.read_configs())
            self.prior = None
            changes, configs = body(txn)
            txn.record_key(self.key, list(changes.ready))
            return changes, configs

        return run
