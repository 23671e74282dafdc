"""Lifecycle news in plain words: a fine-tuned deployment hears once that training on its model ends
(``deprecation.fineTune``), apart from its retirement alerts; a lifecycle change reads "retiring"."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from tests.integration.world import SUB, account_entry, catalog_entry, deployment_entry, estate, make_world, payload

TODAY = date(2026, 11, 25)


def scenario() -> dict[str, Any]:
    base = catalog_entry("gpt-4o-mini", "2024-07-18", TODAY + timedelta(days=300))
    base["model"]["deprecation"]["fineTune"] = f"{TODAY + timedelta(days=60)}T00:00:00Z"
    fine_tune = {"format": "OpenAI", "name": "gpt-4o-mini-2024-07-18.ft-abc", "version": "1",
                 "baseModel": {"format": "OpenAI", "name": "gpt-4o-mini", "version": "2024-07-18"},
                 "lifecycleStatus": "GenerallyAvailable"}
    account = account_entry("search", {"team": "search"}, [
        deployment_entry("support-ft", "gpt-4o-mini-2024-07-18.ft-abc", "1"),
        deployment_entry("plain", "gpt-4o-mini", "2024-07-18")])
    account["models"] = [fine_tune]
    return estate([account], [base])


def test_the_end_of_fine_tuning_is_told_once_to_fine_tuned_deployments(database_url: str) -> None:
    with make_world(scenario(), database_url, TODAY) as world:
        for _ in range(3):
            world.poll()
            world.notify()
            world.clock.set(world.clock.now() + timedelta(days=1))
        told = [p for p in world.payloads("#search") if p.get("kind") == "fine_tune_ends"]
        assert len(told) == 1, told
        assert told[0]["deployment_id"].endswith("/deployments/support-ft")
        text = next(m.text for m in world.slack.messages("#search") if payload(m).get("kind") == "fine_tune_ends")
        assert f"Training new fine-tunes on gpt-4o-mini 2024-07-18 ends on {TODAY + timedelta(days=60)}" in text
        assert f"until its retirement ({TODAY + timedelta(days=300)})" in text
        assert SUB in told[0]["deployment_id"]


def test_a_lifecycle_change_is_told_in_plain_words(database_url: str) -> None:
    catalog = [catalog_entry("gpt-4o", "2024-05-13", TODAY + timedelta(days=20))]
    scene = estate([account_entry("search", {"team": "search"}, [deployment_entry("chat", "gpt-4o", "2024-05-13")])],
                   catalog)
    with make_world(scene, database_url, TODAY) as world:
        world.poll()
        world.notify()
        with world.arm.update() as live:
            live["locationModels"]["eastus"][0]["model"]["lifecycleStatus"] = "Deprecating"
        world.clock.set(world.clock.now() + timedelta(days=1))
        world.poll()
        world.notify()
        changed = [m.text for m in world.slack.messages("#search") if payload(m).get("kind") == "lifecycle_changed"]
        assert len(changed) == 1, [m.text.splitlines()[0] for m in world.slack.messages("#search")]
        assert "lifecycle: generally available -&gt; retiring" in changed[0]  # Slack escapes ">"
        assert "Deprecating" not in changed[0] and "GenerallyAvailable" not in changed[0]
