"""Unit tests for server.domain.pickup_states: the pickup state machine (pure rules, no I/O)."""

from __future__ import annotations

import itertools

import pytest

from server.domain.pickup_states import (
    FAILURE_REASONS,
    FINAL_STATES,
    HELD_STATES,
    OPEN_STATES,
    Action,
    IllegalTransition,
    Status,
    allowed_from,
    next_status,
)

S = Status
A = Action

# The rules, written out by hand from the module's docstring and the product rules, independently of
# the module's own table: (action, current) -> next status. Every pair not listed here is illegal.
LEGAL: dict[tuple[Action, Status], Status] = {
    # Offered to couriers: first time, again after a failure or an expiry, or taken back from a courier.
    (A.OFFER, S.PENDING): S.OFFERED,
    (A.OFFER, S.OFFERED): S.OFFERED,
    (A.OFFER, S.FAILED): S.OFFERED,
    (A.OFFER, S.ACCEPTED): S.OFFERED,
    (A.OFFER, S.CONTACTED): S.OFFERED,
    # Back to the dispatcher's queue.
    (A.QUEUE, S.OFFERED): S.PENDING,
    (A.QUEUE, S.FAILED): S.PENDING,
    (A.QUEUE, S.ACCEPTED): S.PENDING,
    (A.QUEUE, S.CONTACTED): S.PENDING,
    # A courier grabs an offer.
    (A.ACCEPT, S.OFFERED): S.ACCEPTED,
    # A dispatcher hands it to a courier directly.
    (A.ASSIGN, S.PENDING): S.ACCEPTED,
    (A.ASSIGN, S.OFFERED): S.ACCEPTED,
    (A.ASSIGN, S.FAILED): S.ACCEPTED,
    (A.ASSIGN, S.ACCEPTED): S.ACCEPTED,
    (A.ASSIGN, S.CONTACTED): S.ACCEPTED,
    # The courier called the sender (again).
    (A.CONTACT, S.ACCEPTED): S.CONTACTED,
    (A.CONTACT, S.CONTACTED): S.CONTACTED,
    # Collected, with or without calling first.
    (A.COLLECT, S.ACCEPTED): S.COLLECTED,
    (A.COLLECT, S.CONTACTED): S.COLLECTED,
    # Failed from any open state.
    (A.FAIL, S.PENDING): S.FAILED,
    (A.FAIL, S.OFFERED): S.FAILED,
    (A.FAIL, S.ACCEPTED): S.FAILED,
    (A.FAIL, S.CONTACTED): S.FAILED,
    # Cancelled from any open state, and from failed.
    (A.CANCEL, S.PENDING): S.CANCELLED,
    (A.CANCEL, S.OFFERED): S.CANCELLED,
    (A.CANCEL, S.ACCEPTED): S.CANCELLED,
    (A.CANCEL, S.CONTACTED): S.CANCELLED,
    (A.CANCEL, S.FAILED): S.CANCELLED,
}
ILLEGAL = [pair for pair in itertools.product(Action, Status) if pair not in LEGAL]


@pytest.mark.parametrize(("action", "current"), list(LEGAL), ids=lambda v: v.value)
def test_every_legal_transition_leads_to_its_target(action: Action, current: Status) -> None:
    assert next_status(current, action) is LEGAL[action, current]


@pytest.mark.parametrize(("action", "current"), ILLEGAL, ids=lambda v: v.value)
def test_every_other_transition_raises_illegal_transition_carrying_the_current_status(
    action: Action, current: Status
) -> None:
    with pytest.raises(IllegalTransition) as caught:
        next_status(current, action)
    assert caught.value.current is current
    assert caught.value.action is action
    assert current.value in str(caught.value)
    assert action.value in str(caught.value)


def test_the_current_status_may_be_given_as_the_stored_string() -> None:
    assert next_status("offered", Action.ACCEPT) is Status.ACCEPTED
    with pytest.raises(IllegalTransition) as caught:
        next_status("collected", Action.ACCEPT)
    assert caught.value.current is Status.COLLECTED


def test_an_unknown_stored_status_is_not_silently_accepted() -> None:
    with pytest.raises(ValueError):
        next_status("lost", Action.OFFER)


def test_allowed_from_agrees_with_next_status_for_every_action() -> None:
    for action in Action:
        legal = {current for (a, current) in LEGAL if a is action}
        assert allowed_from(action) == legal, action


def test_a_failed_pickup_can_be_offered_queued_assigned_or_cancelled_again() -> None:
    assert next_status(Status.FAILED, Action.OFFER) is Status.OFFERED
    assert next_status(Status.FAILED, Action.QUEUE) is Status.PENDING
    assert next_status(Status.FAILED, Action.ASSIGN) is Status.ACCEPTED
    assert next_status(Status.FAILED, Action.CANCEL) is Status.CANCELLED
    # ...and a re-offered pickup runs the whole loop to collection.
    status = Status.FAILED
    for action in (Action.OFFER, Action.ACCEPT, Action.CONTACT, Action.COLLECT):
        status = next_status(status, action)
    assert status is Status.COLLECTED


def test_failed_is_not_final_but_cannot_fail_twice_or_be_collected() -> None:
    assert Status.FAILED not in FINAL_STATES
    with pytest.raises(IllegalTransition):
        next_status(Status.FAILED, Action.FAIL)
    with pytest.raises(IllegalTransition):
        next_status(Status.FAILED, Action.COLLECT)


@pytest.mark.parametrize("final", sorted(FINAL_STATES))
def test_final_states_are_final(final: Status) -> None:
    for action in Action:
        with pytest.raises(IllegalTransition) as caught:
            next_status(final, action)
        assert caught.value.current is final


def test_only_collected_and_cancelled_are_final() -> None:
    assert {Status.COLLECTED, Status.CANCELLED} == FINAL_STATES
    has_a_way_out = {current for (_, current) in LEGAL}
    assert has_a_way_out == set(Status) - FINAL_STATES


def test_the_state_sets_partition_the_statuses() -> None:
    assert OPEN_STATES | FINAL_STATES | {Status.FAILED} == set(Status)
    assert not OPEN_STATES & FINAL_STATES
    assert HELD_STATES == {Status.ACCEPTED, Status.CONTACTED}
    assert HELD_STATES <= OPEN_STATES


def test_the_happy_path_and_the_knock_without_calling_path() -> None:
    status = Status.PENDING
    for action, expected in [
        (Action.OFFER, Status.OFFERED),
        (Action.ACCEPT, Status.ACCEPTED),
        (Action.CONTACT, Status.CONTACTED),
        (Action.COLLECT, Status.COLLECTED),
    ]:
        status = next_status(status, action)
        assert status is expected
    assert next_status(Status.ACCEPTED, Action.COLLECT) is Status.COLLECTED


def test_only_an_offered_pickup_can_be_accepted_so_rival_accepts_lose() -> None:
    # The second courier to accept sees the pickup already accepted.
    with pytest.raises(IllegalTransition) as caught:
        next_status(Status.ACCEPTED, Action.ACCEPT)
    assert caught.value.current is Status.ACCEPTED
    with pytest.raises(IllegalTransition):
        next_status(Status.PENDING, Action.ACCEPT)


def test_statuses_and_actions_are_their_stored_strings() -> None:
    assert Status.CONTACTED == "contacted"
    assert f"{Action.COLLECT}" == "collect"


def test_failure_reasons_are_short_codes_with_bilingual_labels() -> None:
    assert "other" in FAILURE_REASONS
    for code, label in FAILURE_REASONS.items():
        assert code.isascii() and code == code.lower() and len(code) <= 32  # fits pickups.failure_reason
        assert " / " in label
