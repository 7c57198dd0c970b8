"""Communication: halo exchange (sync, async, stale), byte/time counters, the analytic halo volume."""

from distgnn.comm.counters import CommCounters
from distgnn.comm.halo import HaloExchange, HaloHandle, HaloPlan
from distgnn.comm.stale import StaleHalo
from distgnn.comm.volume import analytic_bytes

__all__ = ["CommCounters", "HaloExchange", "HaloHandle", "HaloPlan", "StaleHalo", "analytic_bytes"]
