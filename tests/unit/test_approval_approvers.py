"""The approval gate's rules when several different people must approve (workflows/deployment/
gates.py): who may approve, and who may not approve twice."""

from __future__ import annotations

from datetime import UTC, datetime

from core.models.apikeys import Role
from core.models.deployments import ActionRequest, Approval
from workflows.deployment.gates import Gates

AT = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def gate_for_two() -> Gates:
    gates = Gates()
    gates.approval_needed = (2, ["operator"])
    gates.approvers_needed = 2
    return gates


def test_a_second_approval_by_the_same_person_is_refused() -> None:
    gates = gate_for_two()
    alice = ActionRequest(by="apikey:alice", role=Role.OPERATOR)
    assert gates.approval_problem(alice) is None
    gates.approvals.append(Approval(step=2, by="apikey:alice", at=AT))
    problem = gates.approval_problem(alice)
    assert problem is not None and "already approved" in problem
    assert gates.approval_problem(ActionRequest(by="apikey:bob", role=Role.ADMIN)) is None


def test_an_approval_of_an_earlier_step_does_not_count_for_this_one() -> None:
    gates = gate_for_two()
    gates.approvals.append(Approval(step=1, by="apikey:alice", at=AT))
    assert gates.approvers_of(2) == set()
    assert gates.approval_problem(ActionRequest(by="apikey:alice", role=Role.OPERATOR)) is None


def test_a_signal_cannot_be_one_of_several_approvers() -> None:
    # A Temporal UI signal names its sender itself (role None): it could claim any name.
    problem = gate_for_two().approval_problem(ActionRequest(by="temporal-ui (bob)"))
    assert problem is not None and "through the API" in problem


def test_one_approver_gates_keep_their_old_rules() -> None:
    gates = Gates()
    gates.approval_needed = (1, ["admin"])
    assert gates.approval_problem(ActionRequest(by="temporal-ui (x)")) is None
    low = gates.approval_problem(ActionRequest(by="apikey:ops", role=Role.OPERATOR))
    assert low is not None and "admin" in low
