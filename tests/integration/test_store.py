"""The inventory store on SQLite and PostgreSQL: upserts, history events, and what partial reads must not do."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from daemon.records import (
    Account,
    CatalogModel,
    Deployment,
    DeploymentObservation,
    SkuRetirement,
    Subscription,
    SubscriptionInventory,
    location_scope,
)
from daemon.store import queries
from daemon.store.inventory import InventoryStore
from daemon.store.schema import CatalogModelRow, DeploymentRow, EventRow, PollFailureRow, PollRow

SUB = "00000000-0000-0000-0000-000000000001"
ACCOUNT = Account(id=f"/subscriptions/{SUB}/resourceGroups/rg-search/providers/Microsoft.CognitiveServices/"
                     "accounts/search-openai", subscription_id=SUB, resource_group="rg-search",
                  name="search-openai", kind="OpenAI", location="eastus", tags={"team": "search"})
T0 = datetime(2026, 1, 5, 3, 0, tzinfo=UTC)


def deployment(name: str, version: str = "2024-05-13", **changes: object) -> Deployment:
    base = Deployment(id=f"{ACCOUNT.id}/deployments/{name}", account_id=ACCOUNT.id, subscription_id=SUB,
                      resource_group="rg-search", account_name=ACCOUNT.name, location="eastus", name=name,
                      model_format="OpenAI", model_name="gpt-4o", model_version=version, sku_name="Standard",
                      sku_capacity=10, upgrade_option="NoAutoUpgrade", provisioning_state="Succeeded")
    return replace(base, **changes)  # type: ignore[arg-type]


def observed(d: Deployment, retirement: date | None = date(2026, 3, 31), read: bool = True,
             lifecycle: str = "GenerallyAvailable") -> DeploymentObservation:
    return DeploymentObservation(deployment=d, catalog_read=read, retirement_date=retirement,
                                 retirement_source="sku" if retirement else None, deprecation_status="Planned",
                                 lifecycle_status=lifecycle)


GPT4O = CatalogModel(scope=location_scope("eastus"), format="OpenAI", name="gpt-4o", version="2024-05-13",
                     kinds=("OpenAI",), lifecycle_status="GenerallyAvailable",
                     inference_retirement=date(2026, 10, 1), deprecation_status="Planned",
                     sku_retirements=(SkuRetirement("Standard", date(2026, 3, 31)),),
                     replacement_model="gpt-5.1", auto_upgrade_start=date(2026, 3, 9))


def inventory(*deployments: Deployment, accounts: list[Account] | None = None,
              catalog: tuple[CatalogModel, ...] = (GPT4O,)) -> SubscriptionInventory:
    accounts = [ACCOUNT] if accounts is None else accounts
    return SubscriptionInventory(
        subscription=Subscription(SUB, "prod"), accounts=accounts,
        deployments={a.id: [d for d in deployments if d.account_id == a.id] for a in accounts},
        catalog=list(catalog), catalog_scopes_read={location_scope("eastus")})


def poll(store: InventoryStore, when: datetime, inv: SubscriptionInventory,
         observations: list[DeploymentObservation]) -> int:
    poll_id = store.start_poll(when)
    written = store.record(poll_id, when, inv, observations)
    store.finish_poll(poll_id, when, status="ok", counts={"events": written.events}, failures=[])
    return written.events


def events(sessions: sessionmaker[Session]) -> list[tuple[str, str | None, str | None, str | None]]:
    with sessions() as session:
        rows = session.scalars(select(EventRow).where(EventRow.subject_type == "deployment")
                               .order_by(EventRow.id)).all()
        return [(r.kind, r.field, r.old_value, r.new_value) for r in rows]


def test_first_poll_adds_and_second_identical_poll_writes_no_events(sessions: sessionmaker[Session]) -> None:
    store = InventoryStore(sessions)
    chat, embed = deployment("chat"), deployment("embed", model_name="text-embedding-3-large", version="1")
    first = poll(store, T0, inventory(chat, embed), [observed(chat), observed(embed, None)])
    assert first > 0
    assert [e[0] for e in events(sessions)] == ["deployment_added", "deployment_added"]
    second = poll(store, T0 + timedelta(hours=6), inventory(chat, embed), [observed(chat), observed(embed, None)])
    assert second == 0
    with sessions() as session:
        stored = {d.name: d for d in queries.current_deployments(session)}
        assert stored["chat"].model_version == "2024-05-13" and stored["chat"].sku_capacity == 10
        row = session.scalars(select(CatalogModelRow)).one()
        assert row.sku_retirements == [{"sku": "Standard", "date": "2026-03-31"}]
        assert queries.catalog_from_row(row) == GPT4O


def test_every_change_becomes_an_event_with_old_and_new(sessions: sessionmaker[Session]) -> None:
    store = InventoryStore(sessions)
    chat = deployment("chat")
    poll(store, T0, inventory(chat), [observed(chat)])
    changed = replace(chat, model_version="2024-11-20", upgrade_option="OnceCurrentVersionExpired",
                      sku_name="GlobalStandard", sku_capacity=20)
    poll(store, T0 + timedelta(days=1), inventory(changed),
         [observed(changed, date(2027, 3, 31), lifecycle="Deprecating")])
    assert events(sessions)[1:] == [
        ("model_version_changed", "model_version", "2024-05-13", "2024-11-20"),
        ("upgrade_option_changed", "upgrade_option", "NoAutoUpgrade", "OnceCurrentVersionExpired"),
        ("sku_changed", "sku_name", "Standard", "GlobalStandard"),
        ("sku_capacity_changed", "sku_capacity", "10", "20"),
        ("retirement_date_changed", "retirement_date", "2026-03-31", "2027-03-31"),
        ("lifecycle_status_changed", "lifecycle_status", "GenerallyAvailable", "Deprecating"),
    ]


def test_removed_only_when_listed_completely(sessions: sessionmaker[Session]) -> None:
    store = InventoryStore(sessions)
    chat, embed = deployment("chat"), deployment("embed")
    poll(store, T0, inventory(chat, embed), [observed(chat), observed(embed)])

    failed_listing = inventory(chat, embed)
    failed_listing.deployments = {}  # the account's deployment list could not be read
    assert poll(store, T0 + timedelta(days=1), failed_listing, []) == 0

    poll(store, T0 + timedelta(days=2), inventory(chat), [observed(chat)])
    assert events(sessions)[-1] == ("deployment_removed", None, "2024-05-13", None)
    with sessions() as session:
        assert [d.name for d in queries.current_deployments(session)] == ["chat"]
        gone = session.scalars(select(DeploymentRow).where(DeploymentRow.name == "embed")).one()
        assert gone.removed_at is not None

    poll(store, T0 + timedelta(days=3), inventory(chat, embed), [observed(chat), observed(embed)])
    assert events(sessions)[-1][0] == "deployment_added"


def test_unreadable_catalog_keeps_the_last_known_date(sessions: sessionmaker[Session]) -> None:
    store = InventoryStore(sessions)
    chat = deployment("chat")
    poll(store, T0, inventory(chat), [observed(chat)])
    unread = inventory(chat, catalog=())
    unread.catalog_scopes_read = set()
    assert poll(store, T0 + timedelta(days=1), unread, [observed(chat, None, read=False)]) == 0
    with sessions() as session:
        assert session.scalars(select(DeploymentRow.retirement_date)).one() == date(2026, 3, 31)


def test_account_gone_takes_its_deployments(sessions: sessionmaker[Session]) -> None:
    store = InventoryStore(sessions)
    chat = deployment("chat")
    poll(store, T0, inventory(chat), [observed(chat)])
    poll(store, T0 + timedelta(days=1), inventory(accounts=[]), [])
    assert events(sessions)[-1] == ("deployment_removed", None, "2024-05-13", None)
    with sessions() as session:
        kinds = [r.kind for r in session.scalars(select(EventRow).order_by(EventRow.id))]
        assert "account_removed" in kinds


def test_catalog_changes_are_history_too(sessions: sessionmaker[Session]) -> None:
    store = InventoryStore(sessions)
    poll(store, T0, inventory(), [])
    moved = replace(GPT4O, sku_retirements=(SkuRetirement("standard", date(2026, 6, 30)),),
                    lifecycle_status="Deprecating")
    poll(store, T0 + timedelta(days=1), inventory(catalog=(moved,)), [])
    with sessions() as session:
        rows = session.scalars(select(EventRow).where(EventRow.subject_type == "catalog_model")).all()
        assert {(r.kind, r.old_value, r.new_value) for r in rows} == {
            ("catalog_retirement_changed", "Standard=2026-03-31", "standard=2026-06-30"),
            ("catalog_lifecycle_changed", "GenerallyAvailable", "Deprecating"),
        }


def test_poll_record_keeps_counts_and_failures(sessions: sessionmaker[Session]) -> None:
    from daemon.records import Failure

    store = InventoryStore(sessions)
    poll_id = store.start_poll(T0)
    store.finish_poll(poll_id, T0 + timedelta(minutes=1), status="partial",
                      counts={"subscriptions": 3, "deployments": 7, "requests": 12},
                      failures=[Failure(SUB, f"/subscriptions/{SUB}", "list-accounts", "AuthorizationFailed", 403)])
    with sessions() as session:
        row = session.get_one(PollRow, poll_id)
        assert (row.status, row.subscriptions, row.deployments, row.requests, row.failures) == \
            ("partial", 3, 7, 12, 1)
        failure = session.scalars(select(PollFailureRow)).one()
        assert (failure.status_code, failure.operation) == (403, "list-accounts")
        summary = queries.last_poll(session)
        assert summary is not None and summary.status == "partial" and len(summary.failures) == 1


def _rows(sessions: sessionmaker[Session]) -> dict[str, list[tuple[object, ...]]]:
    """Every row of every inventory table (not the polls' own records)."""
    from daemon.store.schema import AccountRow, SubscriptionRow

    tables = {"subscriptions": SubscriptionRow, "accounts": AccountRow, "deployments": DeploymentRow,
              "catalog_models": CatalogModelRow, "events": EventRow}
    with sessions() as session:
        return {name: [tuple(row) for row in session.execute(select(model.__table__)).all()]
                for name, model in tables.items()}


def test_an_unchanged_poll_writes_nothing_but_its_own_record(sessions: sessionmaker[Session]) -> None:
    store = InventoryStore(sessions)
    chat, embed = deployment("chat"), deployment("embed", model_name="text-embedding-3-large", version="1")
    poll(store, T0, inventory(chat, embed), [observed(chat), observed(embed, None)])
    before = _rows(sessions)
    assert poll(store, T0 + timedelta(hours=1), inventory(chat, embed), [observed(chat), observed(embed, None)]) == 0
    assert _rows(sessions) == before
    with sessions() as session:
        assert [row.status for row in session.scalars(select(PollRow).order_by(PollRow.id))] == ["ok", "ok"]
        # ... and yet both deployments were seen by the second poll
        assert queries.deployments_last_seen(session) == {
            arm_key(chat.id): T0 + timedelta(hours=1), arm_key(embed.id): T0 + timedelta(hours=1)}


def arm_key(arm_id: str) -> str:
    return arm_id.casefold()


def test_last_seen_is_true_without_a_write_per_deployment(sessions: sessionmaker[Session]) -> None:
    store = InventoryStore(sessions)
    chat, embed = deployment("chat"), deployment("embed")
    both = [observed(chat), observed(embed)]
    keys = (arm_key(chat.id), arm_key(embed.id))

    def seen() -> tuple[datetime, ...]:
        with sessions() as session:
            last = queries.deployments_last_seen(session)
            return tuple(last[key] for key in keys)

    poll(store, T0, inventory(chat, embed), both)
    poll(store, T0 + timedelta(hours=1), inventory(chat, embed), both)
    assert seen() == (T0 + timedelta(hours=1),) * 2

    failed_listing = inventory(chat, embed)
    failed_listing.deployments = {}  # the account's deployments could not be read: not seen
    poll(store, T0 + timedelta(hours=2), failed_listing, [])
    poll(store, T0 + timedelta(hours=3), failed_listing, [])
    assert seen() == (T0 + timedelta(hours=1),) * 2

    partly = inventory(chat, embed)
    partly.partial_accounts = {ACCOUNT.id}  # embed was unreadable this time: chat was seen, embed was not
    poll(store, T0 + timedelta(hours=4), partly, [observed(chat)])
    assert seen() == (T0 + timedelta(hours=4), T0 + timedelta(hours=1))

    poll(store, T0 + timedelta(hours=5), inventory(chat, embed), both)
    assert seen() == (T0 + timedelta(hours=5),) * 2

    poll(store, T0 + timedelta(hours=6), inventory(chat), [observed(chat)])  # embed is gone
    poll(store, T0 + timedelta(hours=7), inventory(chat), [observed(chat)])
    assert seen() == (T0 + timedelta(hours=7), T0 + timedelta(hours=5))

    other = SubscriptionInventory(subscription=Subscription("00000000-0000-0000-0000-000000000002"), accounts=[])
    poll(store, T0 + timedelta(hours=8), other, [])  # a complete poll that did not read this subscription at all
    poll(store, T0 + timedelta(hours=9), other, [])
    assert seen() == (T0 + timedelta(hours=7), T0 + timedelta(hours=5))

    poll_id = store.start_poll(T0 + timedelta(hours=10))  # a poll that stopped before this subscription
    store.finish_poll(poll_id, T0 + timedelta(hours=10), status="stopped", counts={}, failures=[])
    poll(store, T0 + timedelta(hours=11), inventory(chat), [observed(chat)])
    assert seen() == (T0 + timedelta(hours=11), T0 + timedelta(hours=5))


def test_catalog_entries_no_longer_listed_are_marked_missed(sessions: sessionmaker[Session]) -> None:
    store = InventoryStore(sessions)
    older = replace(GPT4O, version="2024-08-06")
    poll(store, T0, inventory(catalog=(GPT4O, older)), [])
    poll(store, T0 + timedelta(hours=1), inventory(catalog=(GPT4O,)), [])
    with sessions() as session:
        missed = {row.version: row.missed_since and row.missed_since.replace(tzinfo=UTC)
                  for row in session.scalars(select(CatalogModelRow))}
    assert missed == {"2024-05-13": None, "2024-08-06": T0 + timedelta(hours=1)}
    poll(store, T0 + timedelta(hours=2), inventory(catalog=(GPT4O, older)), [])
    with sessions() as session:
        rows = {row.version: (row.missed_since, row.last_seen.replace(tzinfo=UTC))
                for row in session.scalars(select(CatalogModelRow))}
    assert rows["2024-08-06"] == (None, T0 + timedelta(hours=2))


def test_a_shared_poll_knows_its_catalogs_only_when_every_unit_listed_them(sessions: sessionmaker[Session]) -> None:
    """A unit recorded by a replica of an older version lists no catalogs: marking from the others' lists would
    call its catalogs missed, so none are marked for that poll."""
    from daemon.store import units
    from daemon.store.schema import PollUnitRow

    with sessions.begin() as session:
        poll = PollRow(started_at=T0, status="running", leader_epoch=1)
        session.add(poll)
        session.flush()
        session.add_all([
            PollUnitRow(poll_id=poll.id, subscription_id="sub-a", status="done",
                        result={"accounts": 1, "catalog_scopes": ["location:eastus"]}),
            PollUnitRow(poll_id=poll.id, subscription_id="sub-b", status="done",
                        result={"accounts": 1, "catalog_scopes": ["location:westeurope", "location:eastus"]})])
        session.flush()
        assert units.seen(session, poll.id) == ({"sub-a", "sub-b"}, {"location:eastus", "location:westeurope"})
        session.add(PollUnitRow(poll_id=poll.id, subscription_id="sub-c", status="done", result={"accounts": 2}))
        session.flush()
        assert units.seen(session, poll.id) == ({"sub-a", "sub-b", "sub-c"}, None)
