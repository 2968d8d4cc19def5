"""The pickup state machine: pure rules, no I/O.

pending (no zone or courier yet) → offered → accepted → contacted → collected.
failed (with a reason code) and cancelled from any open state; a failed pickup can be offered again.
Collecting straight from `accepted` is allowed: a courier who knocks without calling first still collects.
"""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    PENDING = "pending"
    OFFERED = "offered"
    ACCEPTED = "accepted"
    CONTACTED = "contacted"
    COLLECTED = "collected"
    FAILED = "failed"
    CANCELLED = "cancelled"


class Action(StrEnum):
    OFFER = "offer"  # put in front of couriers (first time, re-offer, escalation, reassignment)
    QUEUE = "queue"  # back to the dispatcher's pending queue
    ACCEPT = "accept"
    ASSIGN = "assign"  # dispatcher hands it to a courier directly
    CONTACT = "contact"
    COLLECT = "collect"
    FAIL = "fail"
    CANCEL = "cancel"


OPEN_STATES = frozenset({Status.PENDING, Status.OFFERED, Status.ACCEPTED, Status.CONTACTED})
FINAL_STATES = frozenset({Status.COLLECTED, Status.CANCELLED})
# States in which a courier holds the pickup (counts against capacity).
HELD_STATES = frozenset({Status.ACCEPTED, Status.CONTACTED})

_TRANSITIONS: dict[Action, tuple[frozenset[Status], Status]] = {
    Action.OFFER: (frozenset({Status.PENDING, Status.OFFERED, Status.FAILED, *HELD_STATES}), Status.OFFERED),
    Action.QUEUE: (frozenset({Status.OFFERED, Status.FAILED, *HELD_STATES}), Status.PENDING),
    Action.ACCEPT: (frozenset({Status.OFFERED}), Status.ACCEPTED),
    Action.ASSIGN: (
        frozenset({Status.PENDING, Status.OFFERED, Status.FAILED, *HELD_STATES}),
        Status.ACCEPTED,
    ),
    Action.CONTACT: (frozenset({Status.ACCEPTED, Status.CONTACTED}), Status.CONTACTED),
    Action.COLLECT: (HELD_STATES, Status.COLLECTED),
    Action.FAIL: (OPEN_STATES, Status.FAILED),
    Action.CANCEL: (OPEN_STATES | {Status.FAILED}, Status.CANCELLED),
}

# Why a pickup could not be collected (the courier picks one; reports group by it).
FAILURE_REASONS = {
    "customer_absent": "客户不在 / customer not at the door",
    "customer_unreachable": "电话无人接听 / customer does not answer the phone",
    "customer_refused": "客户取消或拒绝交寄 / customer cancelled or refused",
    "address_wrong": "地址错误 / wrong address",
    "parcel_not_ready": "包裹未准备好 / parcel not ready",
    "parcel_prohibited": "违禁品 / prohibited item",
    "packaging_unfit": "包装不符合要求且无法重新包装 / packaging unfit and cannot be re-packed",
    "out_of_capacity": "超出揽收能力 / beyond what the courier can carry",
    "other": "其他 / other",
}


class IllegalTransition(Exception):
    def __init__(self, current: Status, action: Action) -> None:
        super().__init__(f"cannot {action.value} a pickup that is {current.value}")
        self.current = current
        self.action = action


def next_status(current: Status | str, action: Action) -> Status:
    """The status after `action`, or IllegalTransition naming the current status."""
    current = Status(current)
    allowed_from, target = _TRANSITIONS[action]
    if current not in allowed_from:
        raise IllegalTransition(current, action)
    return target


def allowed_from(action: Action) -> frozenset[Status]:
    """The states `action` may start from (for conditional UPDATEs that enforce the rule in SQL)."""
    return _TRANSITIONS[action][0]
