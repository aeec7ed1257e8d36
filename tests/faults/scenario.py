"""The sync scenario every fault and crash test runs, and its fault-free outcome.

Round 1 syncs every response of a world; then the core-beliefs responses are amended
(directly on HAPI); round 2 syncs the amendments, whose notes supersede the earlier ones
(an update with If-Match) while their Observations are updated in place.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from pathlib import Path

from rejection_fhir.fhir.client import FhirClient
from rejection_fhir.settings import Settings, load_settings
from rejection_fhir.sync.run import SyncOptions, SyncReport, sync
from rejection_fhir.worksheet.catalog import catalog_from_build
from tests.faults.proxy import FaultProxy
from tests.faults.world import (
    EndState,
    World,
    amend,
    end_state,
    expected_counts,
    make_world,
    seed_cursor,
)

RESPONSES = 24
WORLD_SEED = 11
#: The client's read timeout in these tests; a "slow" answer comes later than this.
TIMEOUT = 2.5


def new_base() -> str:
    return f"https://test.rejection-fhir.org/{uuid.uuid4().hex[:10]}/fhir"


def proxied(proxy: FaultProxy, **overrides: object) -> Settings:
    """Short timeouts and the client's usual retries: a fault costs seconds, not minutes."""
    values: dict[str, object] = {
        "server": proxy.base_url,
        "timeout": TIMEOUT,
        "connect_timeout": 2,
        "retries": 4,
        "retry_budget": 60,
    }
    return load_settings({**values, **overrides}, env={})


@dataclass
class Outcome:
    world: World
    state_path: Path
    reports: list[SyncReport] = field(default_factory=list)
    #: The end state after each round.
    states: list[EndState] = field(default_factory=list)


def sync_round(proxy: FaultProxy, world: World, state_path: Path, batch: int) -> SyncReport:
    options = SyncOptions(source=proxy.base_url, state_path=state_path, batch_size=batch)
    return sync(proxied(proxy), options, catalog_from_build(world.built))


def run_scenario(
    proxy: FaultProxy, world: World, direct: FhirClient, state_path: Path, *, batch: int
) -> Outcome:
    """Both rounds through ``proxy`` (in process), reading the end state after each."""
    seed_cursor(state_path, proxy.base_url, world.since)
    outcome = Outcome(world, state_path)
    outcome.reports.append(sync_round(proxy, world, state_path, batch))
    outcome.states.append(end_state(direct, world, proxy.base_url))
    amend(direct, world)
    outcome.reports.append(sync_round(proxy, world, state_path, batch))
    outcome.states.append(end_state(direct, world, proxy.base_url))
    return outcome


def fault_free(
    repo: Path,
    upstream: str,
    direct_settings: Settings,
    direct: FhirClient,
    state_path: Path,
    *,
    batch: int,
) -> Outcome:
    """The scenario on a twin world through a proxy that injects nothing, checked against
    the counts the responses call for.  Once per server and session: the batch size does
    not change what ends up on the server."""
    if upstream in _FAULT_FREE:
        return _FAULT_FREE[upstream]
    world = make_world(
        repo, direct_settings, direct, new_base(), responses=RESPONSES, seed=WORLD_SEED
    )
    try:
        with FaultProxy(upstream) as proxy:
            outcome = run_scenario(proxy, world, direct, state_path, batch=batch)
            assert proxy.injected() == []
    finally:
        world.close()
    first, second = outcome.reports
    assert first.ok and first.tally.written == RESPONSES, first.tally
    assert second.ok and second.tally.written == len(world.amended), second.tally
    want = expected_counts(world)
    for kind, count in want.items():
        assert outcome.states[1].total(kind) == count, (kind, outcome.states[1].total(kind), want)
    assert outcome.states[1].duplicates() == 0
    assert outcome.states[1].devices == 1
    assert want["Observation"] > RESPONSES and want["Flag"] >= 1, "the world exercises every kind"
    _FAULT_FREE[upstream] = outcome
    return outcome


_FAULT_FREE: dict[str, Outcome] = {}
