"""`run_migrations.py --batched` following a run on the workers notices when nobody
works on it (issue 17): no batch claimed or finished for a while although batches
are pending, none held by a live worker. It says so once, with the likely cause,
keeps following, and says so again when the workers take batches again."""
from __future__ import annotations

from backend.backfill.model import RunStatus
from backend.migrations import batched
from backend.migrations.batched import BatchActivity, StallWatch
from tests.backfill_helpers import insert_rows, touch_service, touched

BROKER = "redis://:s3cret@redis.internal:6379/0"


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def activity(claimed=None, finished=None, attempts=0, waiting=2, held=0, batches=2) -> BatchActivity:
    return BatchActivity(claimed, finished, attempts, waiting, held, batches)


def test_stall_is_reported_once_after_the_interval_and_its_end_once():
    clock = FakeClock()
    watch = StallWatch(30, clock)
    idle = activity(claimed=1, finished=1, attempts=1)
    assert watch.observe(RunStatus.RUNNING, idle) is None
    clock.now = 29.9
    assert watch.observe(RunStatus.RUNNING, idle) is None
    clock.now = 30.0
    assert watch.observe(RunStatus.RUNNING, idle) == "stalled"
    assert watch.waiting == 2
    for clock.now in (31, 60, 600):
        assert watch.observe(RunStatus.RUNNING, idle) is None  # once, not every poll
    clock.now = 601
    assert watch.observe(RunStatus.RUNNING, activity(claimed=2, finished=1, attempts=2, held=1)) == "moving"
    clock.now = 700
    assert watch.observe(RunStatus.RUNNING, activity(claimed=2, finished=2, attempts=2)) is None
    clock.now = 730
    assert watch.observe(RunStatus.RUNNING, activity(claimed=2, finished=2, attempts=2)) == "stalled"


def test_no_stall_while_a_live_worker_holds_a_batch_or_nothing_is_pending_or_the_run_waits():
    clock = FakeClock()
    watch = StallWatch(30, clock)
    for clock.now in (0, 100, 200):
        assert watch.observe(RunStatus.RUNNING, activity(held=1)) is None       # a long batch
        assert watch.observe(RunStatus.RUNNING, activity(waiting=0)) is None    # nothing to take
        assert watch.observe(RunStatus.WAITING, activity()) is None             # a window, health
    assert not watch.stalled


def test_a_run_no_worker_started_stalls_too():
    """`--batched` marks the run started and sends the start message; with no worker
    listening no batch is ever carved."""
    clock = FakeClock()
    watch = StallWatch(30, clock)
    assert watch.observe(RunStatus.RUNNING, activity(waiting=0, batches=0)) is None
    clock.now = 30
    assert watch.observe(RunStatus.RUNNING, activity(waiting=0, batches=0)) == "stalled"


class Recorder:
    """A ProgressDisplay stand-in. When the stall is reported, a worker 'comes back':
    from then on each progress update runs one batch here, so the run moves again,
    then completes, and following ends."""

    def __init__(self, service, run_id):
        self.service, self.run_id = service, run_id
        self.messages: list[str] = []
        self.worker_back = False

    def update(self, progress) -> None:
        if self.worker_back:
            batch_ids = self.service.batches_to_run(self.run_id) + self.service.advance(self.run_id)
            if batch_ids:
                self.service.execute(batch_ids[0], advance=True)

    def message(self, text: str) -> None:
        self.messages.append(text)
        if "no worker has taken a batch" in text:
            self.worker_back = True


def test_following_a_run_nobody_works_on_says_so_once_and_keeps_following(sqlite_url):
    service = touch_service(sqlite_url)
    try:
        insert_rows(service.engine, range(1, 31))
        run_id = service.schedule("test_touch")
        service.start(run_id, executor="celery")
        assert service.advance(run_id)  # pending batches, dispatched to no one
        dispatched = []
        display = Recorder(service, run_id)
        progress = batched._follow(service, run_id, display, 0.02, send=dispatched.extend, stall_seconds=0.3,
                                   broker_url=BROKER)
        assert progress.status == RunStatus.COMPLETED
        stalled = [m for m in display.messages if "no worker has taken a batch" in m]
        assert len(stalled) == 1, display.messages
        assert "no worker has taken a batch in 0.3 s: is `celery -A worker worker` running against " in stalled[0]
        assert "(2 batch(es) pending; they wait in the database; still following)" in stalled[0]
        assert "`celery -A worker worker`" in stalled[0] and "redis://:***@redis.internal:6379/0" in stalled[0]
        assert "s3cret" not in stalled[0]
        assert any("workers are taking its batches again" in m for m in display.messages), display.messages
        assert set(touched(service.engine).values()) == {1}
    finally:
        service.engine.dispose()
