"""The task tracker: only real progress counts, ended tasks are evicted, the budget holds."""

from __future__ import annotations

import gc
import sys
import tracemalloc

from armonik_observe.collectors.tracker import RECENT_END_SECONDS, Budget, TaskTracker
from armonik_observe.model import TaskStatus

NOW = 1_700_000_000
IN_FLIGHT = 100_000
BYTES_PER_TASK = 300


def test_each_new_status_along_the_life_cycle_is_progress() -> None:
    tracker = TaskTracker()
    steps = ["CREATING", "PENDING", "SUBMITTED", "DISPATCHED", "PROCESSING"]
    assert [tracker.report("t", s, NOW, new=s == "CREATING").advanced for s in steps] == \
        [True] * 5
    assert tracker.status_of("t") == TaskStatus.PROCESSING
    assert len(tracker) == 1
    assert tracker.budget.used == 1


def test_a_repeated_status_is_a_duplicate() -> None:
    tracker = TaskTracker()
    tracker.report("t", "SUBMITTED", NOW)
    progress = tracker.report("t", "SUBMITTED", NOW + 1)
    assert (progress.advanced, progress.reason) == (False, "duplicate")
    assert tracker.budget.dropped["duplicate"] == 1


def test_a_status_behind_the_furthest_seen_is_a_regression() -> None:
    tracker = TaskTracker()
    tracker.report("t", "PROCESSING", NOW)
    progress = tracker.report("t", "SUBMITTED", NOW)
    assert (progress.advanced, progress.reason) == (False, "regression")
    assert tracker.status_of("t") == TaskStatus.PROCESSING
    assert tracker.budget.dropped["regression"] == 1


def test_a_late_new_task_in_creating_is_a_regression() -> None:
    tracker = TaskTracker()
    tracker.report("t", "PENDING", NOW)  # the update overtook its NEW_TASK
    assert not tracker.report("t", "CREATING", NOW, new=True).advanced
    assert tracker.status_of("t") == TaskStatus.PENDING


def test_paused_then_submitted_is_progress_at_the_same_rank() -> None:
    tracker = TaskTracker()
    tracker.report("t", "PAUSED", NOW)
    assert tracker.report("t", "SUBMITTED", NOW).advanced
    assert tracker.status_of("t") == TaskStatus.SUBMITTED


def test_a_replayed_new_task_sets_the_baseline_without_counting() -> None:
    tracker = TaskTracker()
    progress = tracker.report("t", "PROCESSING", NOW, new=True)
    assert (progress.advanced, progress.reason) == (False, "replay")
    assert tracker.status_of("t") == TaskStatus.PROCESSING
    assert tracker.report("t", "COMPLETED", NOW).advanced  # real progress after the baseline


def test_a_replayed_new_task_with_a_final_status_is_neither_counted_nor_tracked() -> None:
    tracker = TaskTracker()
    progress = tracker.report("t", "COMPLETED", NOW, new=True)
    assert (progress.advanced, progress.reason) == (False, "replay")
    assert len(tracker) == 0
    assert tracker.budget.used == 0


def test_a_replayed_end_counts_as_delivered_and_a_later_copy_is_late_news() -> None:
    tracker = TaskTracker()
    tracker.report("t", "COMPLETED", NOW, new=True)  # in the snapshot of a new subscription
    assert tracker.has_ended("t")  # the stream is not behind on it
    progress = tracker.report("t", "COMPLETED", NOW + 1)  # the same end, delivered again
    assert (progress.advanced, progress.reason) == (False, "duplicate")


def test_a_replay_after_the_end_is_not_counted_again() -> None:
    tracker = TaskTracker()
    tracker.report("t", "PROCESSING", NOW)
    assert tracker.report("t", "COMPLETED", NOW).advanced
    assert not tracker.report("t", "COMPLETED", NOW, new=True).advanced


def test_a_repeated_final_status_counts_once() -> None:
    tracker = TaskTracker()
    tracker.report("t", "PROCESSING", NOW)
    assert tracker.report("t", "ERROR", NOW).advanced
    progress = tracker.report("t", "ERROR", NOW + 1)
    assert (progress.advanced, progress.reason) == (False, "duplicate")


def test_a_final_status_of_an_unseen_task_counts_once() -> None:
    tracker = TaskTracker()
    assert tracker.report("t", "CANCELLED", NOW).advanced
    assert not tracker.report("t", "CANCELLED", NOW).advanced
    assert len(tracker) == 0


def test_an_ended_task_is_evicted_and_gives_its_budget_back() -> None:
    budget = Budget()
    tracker = TaskTracker(budget)
    for task in ("a", "b", "c"):
        tracker.report(task, "PROCESSING", NOW)
    assert (len(tracker), budget.used) == (3, 3)
    tracker.report("b", "COMPLETED", NOW)
    tracker.report("c", "RETRIED", NOW)
    assert (len(tracker), budget.used) == (1, 1)
    assert tracker.status_of("b") is None


def test_a_late_status_after_the_end_does_not_track_the_task_again() -> None:
    tracker = TaskTracker()
    tracker.report("t", "COMPLETED", NOW)  # the final update overtook the NEW_TASK
    tracker.report("t", "CREATING", NOW, new=True)
    assert tracker.status_of("t") is None
    assert (len(tracker), tracker.budget.used) == (0, 0)
    assert tracker.older_than(3600, NOW + 7200) == {}  # no phantom stuck task later


def test_ended_ids_are_remembered_for_a_while_only() -> None:
    tracker = TaskTracker()
    tracker.report("early", "COMPLETED", NOW)
    later = NOW + RECENT_END_SECONDS
    assert not tracker.report("early", "COMPLETED", later).advanced  # still remembered
    tracker.report("late", "COMPLETED", later + 1)  # pushes "early" out of the window
    assert tracker.has_ended("late")
    assert not tracker.has_ended("early")


def test_trackers_share_one_budget_and_drop_beyond_it() -> None:
    budget = Budget(limit=3)
    first, second = TaskTracker(budget), TaskTracker(budget)
    first.report("a", "SUBMITTED", NOW)
    first.report("b", "SUBMITTED", NOW)
    second.report("c", "SUBMITTED", NOW)
    second.report("d", "SUBMITTED", NOW)
    second.report("e", "SUBMITTED", NOW, new=True)
    assert (len(first), len(second), budget.used) == (2, 1, 3)
    assert budget.dropped["capacity"] == 2
    assert second.status_of("d") is None
    first.report("a", "COMPLETED", NOW)  # room again
    second.report("d", "DISPATCHED", NOW)
    assert second.status_of("d") == TaskStatus.DISPATCHED
    assert budget.used == 3


def test_an_unknown_status_counts_and_tracks_nothing() -> None:
    tracker = TaskTracker()
    assert tracker.report("t", "UNKNOWN_14", NOW).advanced
    assert len(tracker) == 0


def test_older_than_counts_tasks_by_time_in_their_current_status() -> None:
    tracker = TaskTracker()
    tracker.report("old", "SUBMITTED", NOW - 100)
    tracker.report("moved", "SUBMITTED", NOW - 100)
    tracker.report("moved", "PROCESSING", NOW - 5)  # the clock restarts on progress
    tracker.report("young", "PROCESSING", NOW - 5)
    tracker.report("stale", "PROCESSING", NOW - 100)
    tracker.report("stale", "PROCESSING", NOW)  # a duplicate does not restart it
    assert tracker.older_than(60, NOW) == {TaskStatus.SUBMITTED: 1, TaskStatus.PROCESSING: 1}
    assert tracker.older_than(1, NOW) == {TaskStatus.SUBMITTED: 1, TaskStatus.PROCESSING: 3}
    assert tracker.older_than(1000, NOW) == {}
    # A status with its own limit: only PROCESSING tasks in it for over 60 s are stuck.
    own = {TaskStatus.PROCESSING: 60}
    assert tracker.older_than(1, NOW, own) == {TaskStatus.SUBMITTED: 1, TaskStatus.PROCESSING: 1}


def test_clear_forgets_every_task_and_returns_the_budget() -> None:
    budget = Budget()
    kept, cleared = TaskTracker(budget), TaskTracker(budget)
    kept.report("k", "SUBMITTED", NOW)
    for task in ("a", "b"):
        cleared.report(task, "PROCESSING", NOW)
    cleared.report("c", "COMPLETED", NOW)
    cleared.clear()
    assert (len(cleared), budget.used) == (0, 1)
    assert cleared.status_of("a") is None
    assert cleared.report("c", "COMPLETED", NOW).advanced  # its recent ends are gone too


def guid(index: int) -> str:
    """A 36-character id, as ArmoniK's GUIDs."""
    return f"{index:08x}-0000-4000-8000-{index:012x}"


def _in_flight_state() -> tuple[int, int]:
    """Bytes allocated for IN_FLIGHT task ids, and for tracking them in PROCESSING."""
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        ids = [guid(index) for index in range(IN_FLIGHT)]
        after_ids = tracemalloc.get_traced_memory()[0]
        tracker = TaskTracker(Budget())
        for offset, task_id in enumerate(ids):
            tracker.report(task_id, "PROCESSING", NOW + offset)  # distinct packed ints
        after_tracking = tracemalloc.get_traced_memory()[0]
        assert len(tracker) == IN_FLIGHT
    finally:
        tracemalloc.stop()
    ids_bytes = after_ids - base - sys.getsizeof(ids)  # the strings, not the test's list
    return ids_bytes, after_tracking - after_ids


def test_in_flight_state_is_at_most_300_bytes_per_task() -> None:
    ids_bytes, tracker_bytes = _in_flight_state()
    per_task = (ids_bytes + tracker_bytes) / IN_FLIGHT
    print(f"ids {ids_bytes / IN_FLIGHT:.1f} B/task, tracker {tracker_bytes / IN_FLIGHT:.1f} "
          f"B/task, total {per_task:.1f} B/task")
    assert tracker_bytes > 0
    assert per_task <= BYTES_PER_TASK
