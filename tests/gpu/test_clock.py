"""The timer abstraction: host timers read at once, device (event) timers read once, late, in order.

A fake event clock stands in for CUDA events: its marks are host times that become readable only after
``wait`` on a later mark, as a CUDA event's time is only known once its stream has reached it.
"""

from __future__ import annotations

import torch

from distgnn.comm.clock import DeviceClock, HostClock, Seconds, clock_for
from distgnn.comm.counters import CommCounters
from distgnn.comm.halo import PendingExchange


class FakeEvent:
    """A recorded 'event' whose time is readable after synchronize() of it or of a later event."""

    log: list[str] = []
    completed_upto = -1
    count = 0

    def __init__(self) -> None:
        self.t, self.n = None, None

    def record(self) -> None:
        self.n = FakeEvent.count
        FakeEvent.count += 1
        self.t = float(self.n)  # one "second" per recorded event

    def synchronize(self) -> None:
        FakeEvent.log.append(f"sync {self.n}")
        FakeEvent.completed_upto = max(FakeEvent.completed_upto, self.n)

    def elapsed_time(self, end: FakeEvent) -> float:
        assert end.n <= FakeEvent.completed_upto, "read before the event completed"
        return (end.t - self.t) * 1000.0


def fake_clock() -> DeviceClock:
    FakeEvent.log, FakeEvent.completed_upto, FakeEvent.count = [], -1, 0
    return DeviceClock(event_factory=FakeEvent)


def test_clock_for_picks_events_only_for_cuda():
    assert isinstance(clock_for("cpu"), HostClock)
    assert isinstance(clock_for(torch.device("cuda", 1)), DeviceClock)  # constructing needs no GPU


def test_device_seconds_are_read_once_with_one_wait_on_the_last_mark():
    clock = fake_clock()
    s = Seconds(clock)
    for _ in range(3):
        a = clock.mark()
        b = clock.mark()
        s.add(a, b)  # 1 "second" each
    assert FakeEvent.log == []  # nothing waited for while timing
    assert float(s) == 3.0 and FakeEvent.log == ["sync 5"]
    assert float(s) == 3.0 and FakeEvent.log == ["sync 5"]  # resolved once


def test_host_seconds_are_immediate():
    s = Seconds(HostClock())
    s.add(1.0, 3.5)
    s.add_seconds(0.5)
    assert float(s) == 3.0


def test_counters_defer_event_times_and_survive_reset():
    clock = fake_clock()
    c = CommCounters(2, clock)
    with c.timer("compute"):
        pass  # marks 0, 1
    c.launched("k", "fwd", (clock.mark(), clock.mark()))  # 2, 3
    c.completed("k", "fwd", in_flight=(clock.mark(), clock.mark()), waited=(clock.mark(), clock.mark()))
    lazy = c.seconds("exposed_comm")
    assert FakeEvent.log == []
    c.reset()  # the next epoch starts before this one's times are read
    assert float(lazy) == 2.0  # launch (1) + wait (1)
    assert FakeEvent.log == ["sync 7"]


def test_times_property_reads_events():
    clock = fake_clock()
    c = CommCounters(1, clock)
    with c.timer("compute"):
        clock.mark()
    assert c.times["compute"] == 2.0 and c.times["comm"] == 0.0


class _Work:
    def __init__(self) -> None:
        self.polled = 0

    def is_completed(self) -> bool:
        self.polled += 1
        return True

    def wait(self) -> None:
        return None


def test_poll_records_nothing_with_events_and_wait_ends_comm():
    clock = fake_clock()
    c = CommCounters(2, clock)
    work = _Work()
    p = PendingExchange(work, torch.zeros(2, 1), torch.float32, c, clock.mark(), ("k", "fwd"))  # mark 0
    assert p.poll() is False and work.polled == 0  # a host-side completion check means nothing here
    p.wait()  # marks 1, 2: comm = 0 -> 2, exposed = 1 -> 2
    assert (c.times["comm"], c.times["exposed_comm"]) == (2.0, 1.0)


def test_poll_on_the_host_clock_ends_comm_early():
    c = CommCounters(2)
    p = PendingExchange(_Work(), torch.zeros(2, 1), torch.float32, c, c.clock.mark(), ("k", "fwd"))
    assert p.poll() is True
    p.wait()
    assert 0.0 <= c.times["comm"] and c.times["exposed_comm"] >= 0.0


def test_trainer_reads_event_times_only_at_the_reduction(monkeypatch, tmp_path):
    """Through the trainer (1 process, CPU tensors, the fake event clock in place of CUDA events): steps
    record marks and never wait; the reduction waits and turns them into positive epoch times."""
    from distgnn import train as train_mod
    from distgnn.comm.layout import ProcessLayout
    from distgnn.config import TrainConfig
    from distgnn.data.synthetic import synthetic_graph
    from distgnn.parallel import halo_prop as halo_prop_mod
    from distgnn.parallel.build import build_strategy
    from distgnn.partitioning import partition_graph

    clock = fake_clock()
    monkeypatch.setattr(train_mod, "clock_for", lambda device: clock)
    monkeypatch.setattr(halo_prop_mod, "clock_for", lambda device: clock)
    g = synthetic_graph(num_nodes=60, num_edges=300, num_features=4, num_classes=3, seed=0)
    partition_graph(g, 1, str(tmp_path / "p"), progress=False)
    cfg = TrainConfig.from_flat(progress=False, hidden=4, epochs=2, eval_every=2, kernel="reference")
    trainer = train_mod.Trainer(cfg, build_strategy(cfg, str(tmp_path / "p"), ProcessLayout.single("cpu")))
    rows = [trainer.local_epoch(0), trainer.local_epoch(1)]
    assert FakeEvent.log == [] and FakeEvent.count > 8  # marks were recorded, none waited for
    records = trainer.reduce_epochs(0, rows)
    assert FakeEvent.log and all(r["epoch_s"] >= 3.0 for r in records)  # >= 3 marks inside each epoch
    assert records[1]["eval_s"] >= 1.0 and records[0]["eval_s"] == 0.0
