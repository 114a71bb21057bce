"""Undo records as data: several per step, each undone on its own, in the order their `stage` says."""
from __future__ import annotations

from orchestrator.executor import undo_order
from orchestrator.journal import RunRecord


def _undo(step: int, n: int, kind: str = "compose_limits", stage: int = 0) -> dict:
    return {"t": "undo", "step": step, "id": f"s{step}", "kind": kind, "undo": {"n": n}, "n": n, "stage": stage}


def test_a_step_with_two_undo_records_keeps_the_one_not_undone_yet():
    run = RunRecord("r", [_undo(0, 1), _undo(0, 2), {"t": "undone", "step": 0, "id": "s0", "n": 2}])
    assert [r["n"] for r in run.pending_undo] == [1]  # a crash between the two undos leaves exactly one


def test_undo_order_is_the_records_stage_then_newest_first():
    pending = [_undo(0, 1), _undo(1, 2, "recreate", stage=1), _undo(2, 3), _undo(2, 4), _undo(3, 5, stage=2)]
    assert [r["n"] for r in undo_order(pending)] == [4, 3, 1, 2, 5]


def test_journals_written_before_undo_numbers_still_fold_by_step():
    old = [{"t": "undo", "step": 0, "id": "a", "kind": "compose_limits", "undo": {}},
           {"t": "undo", "step": 1, "id": "b", "kind": "recreate", "undo": {}},
           {"t": "undone", "step": 0, "id": "a"}]
    pending = RunRecord("r", old).pending_undo
    assert [r["step"] for r in pending] == [1]
    assert [r["step"] for r in undo_order(RunRecord("r", old[:2]).pending_undo)] == [0, 1]  # recreate's kind stage
