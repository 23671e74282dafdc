"""Slack messages about one deployment: Block Kit blocks, a plain-text fallback, message metadata (pure).

The sentence a team needs is "your deployment X runs a version that retires in 23 days, and because it
is NoAutoUpgrade it will go dark": every alert says what retires, where, when, what happens then in plain
words, the replacement and how big a change it is, where the date comes from and whether it is confirmed,
and links to the deployment in the Azure portal. The ``text`` fallback says all of it on its own
(notifications and screen readers use it). Slack's limits hold by construction: names are clipped at 200
characters, sections at 3,000, the header at 150, so a message stays far below the ~12,000 characters of
block text Slack accepts.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from typing import Any

EVENT_ALERT = "model_retirement_alert"
EVENT_RESOLVED = "model_retirement_resolved"
# Problems of retirewatch itself (Slack refusing a channel, a poll that failed): a workflow that triggers on
# retirement alerts must never fire on these, so they have their own event type.
EVENT_OPERATIONAL = "retirewatch_operational"
MAX_BLOCKS = 50
HEADER_CHARS = 150
SECTION_CHARS = 3000
FIELD_CHARS = 2000
CONTEXT_ELEMENTS = 10
TEXT_CHARS = 40_000
NAME_CHARS = 200
DETAIL_CHARS = 2000
LINK_URL_CHARS = 2000
# The buttons on stage alerts (answered at POST /slack/interactions, daemon/notify/interactions.py).
ACTIONS_BLOCK_ID = "retirewatch_actions"
ACK_ACTION, SNOOZE_ACTION, PORTAL_ACTION = "retirewatch_ack", "retirewatch_snooze", "retirewatch_portal"
SNOOZE_DAYS = 7
BUTTON_VALUE_CHARS = 2000  # Slack's limit on a button's value


class MessageKind(StrEnum):
    STAGE = "stage"
    DATE_MOVED = "date_moved"
    VERSION_CHANGED = "version_changed"
    LIFECYCLE_CHANGED = "lifecycle_changed"
    RESOLVED = "resolved"
    ACKNOWLEDGED = "acknowledged"
    FINE_TUNE_ENDS = "fine_tune_ends"  # deprecation.fineTune: the last day to train on the model, told once
    OPERATIONAL = "operational"
    LEFT_GROUP = "left_group"  # deployments of a grouped alert left it (upgraded, deleted, moved on)
    JOINED_GROUP = "joined_group"  # deployments joined a grouped alert's thread


@dataclass(frozen=True)
class AlertView:
    """Everything one message says; the notify stage fills it from the store and the lifecycle decisions."""

    kind: MessageKind
    alert_key: str
    stage: str | None = None
    deployment_id: str = ""
    subscription_id: str = ""
    resource_group: str = ""
    account: str = ""
    deployment: str = ""
    location: str = ""
    model: str | None = None
    version: str | None = None
    sku: str | None = None
    upgrade_option: str | None = None
    consequence: str = "none"
    retirement_date: date | None = None
    strikes_on: date | None = None
    days_left: int | None = None
    date_source: str | None = None
    date_status: str | None = None
    replacement_model: str | None = None
    replacement_version: str | None = None
    update_scope: str | None = None
    manual_migration: bool = False
    mentions: tuple[str, ...] = ()
    detail: str | None = None
    manual_reason: str | None = None  # why Azure will not move it (provisioned, partner model, batch...)
    lifecycle: str | None = None  # plain words: "retired", "retiring", "legacy: retirement coming"
    struck: bool = False  # the consequence has taken effect
    date_pending: bool = False  # a retirement is announced without a date
    date_model: str | None = None  # the base model whose dates a fine-tune inherits
    replacement_refused: str | None = None
    usage: str | None = None  # how much the deployment is used ("1.2M requests in the last 7 days"), if known
    # Operational messages only: what went wrong (a stable name) and when it was first seen (ISO 8601).
    problem: str = ""
    first_seen: str = ""


@dataclass(frozen=True)
class RenderedMessage:
    text: str
    blocks: list[dict[str, Any]] = field(hash=False)
    metadata: dict[str, Any] = field(hash=False)

    def as_json(self) -> dict[str, Any]:
        """The form the outbox stores and the deliverer sends."""
        return {"text": self.text, "blocks": self.blocks, "metadata": self.metadata}


_EMOJI = {"notice": ":information_source:", "warning": ":warning:", "urgent": ":large_orange_circle:",
          "critical": ":rotating_light:", "overdue": ":red_circle:"}
_KIND_HEADLINE = {
    MessageKind.DATE_MOVED: (":calendar:", "Retirement date moved"),
    MessageKind.VERSION_CHANGED: (":arrows_counterclockwise:", "Version changed"),
    MessageKind.LIFECYCLE_CHANGED: (":label:", "Lifecycle changed"),
    MessageKind.RESOLVED: (":white_check_mark:", "Resolved"),
    MessageKind.ACKNOWLEDGED: (":ok_hand:", "Acknowledged"),
    MessageKind.FINE_TUNE_ENDS: (":hammer_and_wrench:", "Fine-tuning ends"),
    MessageKind.OPERATIONAL: (":gear:", "retirewatch"),
}
_CONTEXT_LABEL = {MessageKind.STAGE: "escalation"}
_SHORT_CONSEQUENCE = {"outage": "outage", "forced-upgrade": "forced upgrade", "auto-upgrade": "auto-upgrade"}
_SCOPE_WORDS = {
    "minor-version": "a minor version update (same model; re-run your evaluations)",
    "intermediate-version": "an intermediate version update (re-check prompts, re-run evaluations)",
    "major-version": "a major version update (re-tune prompts, re-run evaluations)",
    "variant": "a variant update (another variant of the model family; re-run evaluations)",
    "generational": "a generational update (a new model generation; re-tune prompts, re-run evaluations)",
    "model-change-general": "a change to a different model (re-tune prompts, re-run evaluations, "
                            "re-fine-tune)",
    "model-change-specialized": "a change to a specialized, domain-trained model (re-validate end to end)",
    "deployment-option-change": "a deployment option change (e.g. Standard to Provisioned: capacity, cost)",
    "unknown": "an update of unknown scope (read the release notes before it lands)",
}
_SOURCE_WORDS = {"sku": "the per-SKU retirement date{sku}", "inference": "the model's retirement date",
                 "sku-family": "the retirement date Microsoft lists for this SKU family{sku}"}
_STATUS_WORDS = {"confirmed": "confirmed by Microsoft", "unconfirmed": "not confirmed by Microsoft"}


def _clip(text: str, limit: int) -> str:
    """Cut to ``limit`` characters with an ellipsis, never leaving half an ``&amp;`` or half a ``<link>``."""
    if len(text) <= limit:
        return text
    cut = re.sub(r"(&[a-z#0-9]*|<[^>]*)$", "", text[: limit - 1])
    return cut + "…"


def _esc(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _name(value: str | None, fallback: str = "?") -> str:
    return _clip(value, NAME_CHARS) if value else fallback


def _day(value: date | None) -> str:
    return value.isoformat() if value is not None else "(no date announced)"


def in_days(days_left: int | None, *, pending: bool = False) -> str:
    if days_left is None:
        return "date pending" if pending else "no date announced"
    if days_left in (0, 1):
        return ("today", "tomorrow")[days_left]
    if days_left > 0:
        return f"in {days_left} days"
    return "1 day ago" if days_left == -1 else f"{-days_left} days ago"


def _replacement(view: AlertView) -> str:
    if not view.replacement_model:
        return "the replacement Azure chooses (not announced yet)"
    return " ".join(_name(part) for part in (view.replacement_model, view.replacement_version) if part)


def consequence_sentence(view: AlertView) -> str:
    """What happens at the deadline, in plain words (past tense once it has struck)."""
    day, past = _day(view.strikes_on or view.retirement_date), view.struck
    if view.consequence == "outage" and view.struck and view.strikes_on is None:
        return "this deployment no longer answers: Microsoft has retired the model (requests fail with HTTP 410)"
    if view.date_pending:
        day = "the retirement date, once Microsoft sets it"
    if view.consequence == "outage":
        verb = "stopped" if past else "stops"
        return f"this deployment {verb} answering on {day} (requests fail with HTTP 410)"
    if view.consequence == "forced-upgrade":
        verb = "was due to upgrade" if past else "will upgrade"
        return f"Azure {verb} it to {_replacement(view)} on {day} (untested change)"
    if view.consequence == "auto-upgrade":
        verb = "has been auto-upgrading" if past else "will auto-upgrade"
        return f"Azure {verb} it to {_replacement(view)} from {day} (untested change)"
    return "nothing happens to it automatically"


def _date_sentence(view: AlertView) -> str | None:
    if not view.date_source and not view.date_status:
        return None
    sku = f" for {_name(view.sku)}" if view.sku else ""
    source = "the retirement date"
    if view.date_source:
        source = _SOURCE_WORDS.get(view.date_source, f"a {view.date_source} date").format(sku=sku)
    if view.date_model:
        source += f" of the base model {_name(view.date_model)}"
    if view.date_status == "tentative":
        return f"Tentative date: this is {source}, which Microsoft marks as tentative; it may still move."
    status = _STATUS_WORDS.get(view.date_status or "", view.date_status or "status unknown")
    return f"Date source: {source} ({status})."


def _model(view: AlertView) -> str:
    return " ".join(_name(part) for part in (view.model, view.version) if part)


def _subject(view: AlertView) -> str:
    """``gpt-4o 2024-05-13 on chat-prod``, with whatever parts are known."""
    model, deployment = _model(view), _name(view.deployment, "")
    return f"{model} on {deployment}" if model and deployment else model or deployment


def _retires(view: AlertView) -> str:
    """What the model's retirement is, as the end of "..., which {retires}."."""
    if view.retirement_date:
        return f"retires on {_day(view.retirement_date)}"
    if view.date_pending:
        return f"is {view.lifecycle or 'retiring'}: retirement announced, date not set yet"
    if view.struck:
        return "Microsoft has retired"
    return "has no retirement date yet"


def situation(view: AlertView) -> list[str]:
    """The paragraphs that describe the deployment's deadline today."""
    what = (_model(view) or "an unknown model") + (f" (SKU {_name(view.sku)})" if view.sku else "")
    retires = _retires(view)
    lead = f"Deployment {_name(view.deployment)} runs {what}, which {retires}."
    if view.strikes_on and view.retirement_date and view.strikes_on < view.retirement_date:
        lead += f" The change comes earlier, on {_day(view.strikes_on)}."
    if view.retirement_date and view.lifecycle == "retired":
        lead += " Microsoft's catalog already lists the model as retired."
    paragraphs = [lead]
    paragraphs += _what_happens(view, lambda: consequence_sentence(view), "it")
    paragraphs += usage_paragraph(view)
    date_sentence = _date_sentence(view)
    return [*paragraphs, date_sentence] if date_sentence else paragraphs


def usage_paragraph(view: AlertView) -> list[str]:
    """Which deployments matter: a busy one is a migration to plan, an idle one a deletion to make."""
    return [f"Usage: {view.usage}."] if view.usage else []


def _what_happens(view: AlertView, consequence: Callable[[], str], them: str) -> list[str]:
    """The paragraphs an alert (one deployment's, or a group's: ``them``) gives on what happens and what to move
    to: when it strikes, a manual migration, a refused replacement, the replacement and its scope."""
    paragraphs = []
    if view.consequence in _SHORT_CONSEQUENCE:
        when = in_days(view.days_left, pending=view.date_pending).capitalize()
        paragraphs.append(f"{when}: {consequence()}.")
    if view.manual_migration:
        manual = view.manual_reason or f"Azure will not upgrade {them}: the migration is manual"
        paragraphs.append(f"{manual[:1].upper()}{manual[1:]}.")
    if view.replacement_refused:
        paragraphs.append(f"The catalog's replacement does not qualify: {view.replacement_refused}.")
    if view.replacement_model or view.update_scope:
        scope = _SCOPE_WORDS.get(view.update_scope or "unknown", f"a {view.update_scope} update")
        paragraphs.append(f"Replacement: {_replacement(view)}, {scope}.")
    return paragraphs


def _where(view: AlertView) -> str:
    return (f"Where: deployment {_name(view.deployment)} in account {_name(view.account)}, resource group "
            f"{_name(view.resource_group)}, subscription {_name(view.subscription_id)}, "
            f"region {_name(view.location)}.")


def headline(view: AlertView, *, parent: bool = False) -> tuple[str, str]:
    """(emoji, words) for the header: the stage for escalations and parents, else what the message is."""
    subject = _subject(view)
    if view.kind is MessageKind.RESOLVED or (view.kind is not MessageKind.STAGE and not parent):
        emoji, words = _KIND_HEADLINE.get(view.kind, (":gear:", "retirewatch"))
        about = subject or _operational_title(view) or "operational notice"
        return emoji, f"{words}: {about}"
    stage = view.stage or "notice"
    short = _SHORT_CONSEQUENCE.get(view.consequence, "retirement")
    if view.struck:
        when = f"since {_day(view.strikes_on)}" if view.strikes_on else "already"
    else:
        when = in_days(view.days_left, pending=view.date_pending)
    return _EMOJI.get(stage, ":calendar:"), f"{stage.capitalize()}: {short} {when}: {subject}"


def _paragraphs(view: AlertView, *, parent: bool) -> list[str]:
    show_detail = view.detail and (not parent or view.kind is MessageKind.RESOLVED)
    detail = [_clip(view.detail, DETAIL_CHARS)] if view.detail and show_detail else []
    if view.kind is MessageKind.RESOLVED:  # what it runs now; the deadline is no longer the point
        now_runs = [f"Deployment {_name(view.deployment)} now runs {_model(view)}."] if view.model else []
        return [*detail, *now_runs]
    if view.kind is MessageKind.OPERATIONAL and not view.deployment:  # the title is the headline: said once
        body = _operational_body(view)
        return [_clip(body, DETAIL_CHARS)] if body else ["Operational notice."]
    return [*detail, *situation(view)]


def _operational_title(view: AlertView) -> str:
    """An operational message's first detail line is its title (the headline); the rest is its body."""
    if view.kind is not MessageKind.OPERATIONAL or not view.detail:
        return ""
    return view.detail.split("\n", 1)[0]


def _operational_body(view: AlertView) -> str:
    return view.detail.split("\n", 1)[1].strip() if view.detail and "\n" in view.detail else ""


def portal_link(view: AlertView, portal_url: str) -> str | None:
    if not view.deployment_id:
        return None
    url = f"{portal_url.rstrip('/')}/#resource{view.deployment_id}/overview"
    return url.replace(" ", "%20").replace("<", "%3C").replace(">", "%3E").replace("|", "%7C")


def _fields(view: AlertView) -> list[dict[str, Any]]:
    rows = [("Subscription", view.subscription_id), ("Resource group", view.resource_group),
            ("Account", view.account), ("Deployment", view.deployment), ("Region", view.location),
            ("Model", _model(view)), ("SKU", view.sku),
            ("Upgrade option", view.upgrade_option),
            ("Deadline", view.strikes_on.isoformat() if view.strikes_on else ""),
            ("Days left", "" if view.days_left is None else str(view.days_left))]
    return [{"type": "mrkdwn", "text": _clip(f"*{label}*\n{_esc(_name(value))}", FIELD_CHARS)}
            for label, value in rows if value][:10]


def button_value(deployment_id: str, deadline: date | None) -> str:
    """What the Acknowledge and Snooze buttons carry: the deployment and the deadline the alert is about (JSON, so a
    message about a group of deployments can carry ``{"group": ...}`` instead: :func:`group_button_value`)."""
    return json.dumps({"deployment": deployment_id, "deadline": deadline.isoformat() if deadline else None},
                      separators=(",", ":"))


def group_button_value(group: str, deadline: date | None) -> str:
    """What a grouped alert's buttons carry: the group's reference (``retirewatch ack group:REF``) and deadline."""
    return json.dumps({"group": group, "deadline": deadline.isoformat() if deadline else None},
                      separators=(",", ":"))


def actions_block(view: AlertView, link: str | None) -> dict[str, Any] | None:
    """Acknowledge, Snooze 7 days and a link to the deployment, on stage alerts only (the thread's first message and
    its stage replies); None for other messages, or when the value would exceed Slack's limit."""
    if view.kind is not MessageKind.STAGE or not view.deployment_id:
        return None
    return _buttons(button_value(view.deployment_id, view.strikes_on), _name(view.deployment), view.strikes_on,
                    link)


def group_actions_block(view: GroupView) -> dict[str, Any] | None:
    """Acknowledge and Snooze 7 days for the whole group, on a group's stage alerts (as :func:`actions_block`). No
    portal link: a group is not one deployment."""
    if view.about.kind is not MessageKind.STAGE or not view.group:
        return None
    return _buttons(group_button_value(view.group, view.about.strikes_on), "every deployment in this group",
                    view.about.strikes_on, None)


def _buttons(value: str, subject: str, strikes_on: date | None, link: str | None) -> dict[str, Any] | None:
    if len(value) > BUTTON_VALUE_CHARS:
        return None
    deadline = f"the deadline {strikes_on}" if strikes_on else "this retirement"
    confirm = {"title": {"type": "plain_text", "text": "Acknowledge this alert?"},
               "text": {"type": "plain_text", "text": _clip(
                   f"No more alerts about {subject} for {deadline}, until it changes "
                   "(stages that cannot be silenced still come).", 300)},
               "confirm": {"type": "plain_text", "text": "Acknowledge"},
               "deny": {"type": "plain_text", "text": "Cancel"}}
    elements: list[dict[str, Any]] = [
        {"type": "button", "action_id": ACK_ACTION, "text": {"type": "plain_text", "text": "Acknowledge"},
         "style": "primary", "value": value, "confirm": confirm},
        {"type": "button", "action_id": SNOOZE_ACTION,
         "text": {"type": "plain_text", "text": f"Snooze {SNOOZE_DAYS} days"}, "value": value},
    ]
    if link and len(link) <= LINK_URL_CHARS:
        elements.append({"type": "button", "action_id": PORTAL_ACTION, "url": link,
                         "text": {"type": "plain_text", "text": "Open in the Azure portal"}})
    return {"type": "actions", "block_id": ACTIONS_BLOCK_ID, "elements": elements}


def deadline_payload(view: AlertView, parent: bool) -> dict[str, Any]:
    """The metadata every retirement message carries about its deadline, alone or for a group."""
    payload: dict[str, Any] = {
        "deadline": view.strikes_on.isoformat() if view.strikes_on else "",
        "retirement_date": view.retirement_date.isoformat() if view.retirement_date else "",
        "stage": view.stage or "",
        "consequence": view.consequence,
        "alert_key": view.alert_key,
        "kind": view.kind.value,
        "parent": parent,
        "model": view.model or "",
        "version": view.version or "",
    }
    if view.days_left is not None:
        payload["days_left"] = view.days_left
    return payload


def metadata(view: AlertView, *, parent: bool) -> dict[str, Any]:
    """Slack message metadata: strings, numbers and bools only, so workflows and recovery can read it.

    Messages about deployments are ``model_retirement_alert`` / ``model_retirement_resolved`` and always name the
    deployment; problems of retirewatch itself are ``retirewatch_operational`` and name none."""
    if view.kind is MessageKind.OPERATIONAL:
        return {"event_type": EVENT_OPERATIONAL,
                "event_payload": {"problem": view.problem, "first_seen": view.first_seen,
                                  "alert_key": view.alert_key, "kind": view.kind.value}}
    payload: dict[str, Any] = {"deployment_id": view.deployment_id, **deadline_payload(view, parent)}
    event = EVENT_RESOLVED if view.kind is MessageKind.RESOLVED else EVENT_ALERT
    return {"event_type": event, "event_payload": payload}


def _render(view: AlertView, portal_url: str, *, parent: bool) -> RenderedMessage:
    emoji, words = headline(view, parent=parent)
    paragraphs = _paragraphs(view, parent=parent)
    mentions = "" if parent or not view.mentions else " ".join(view.mentions) + " "
    link = portal_link(view, portal_url)
    story = "\n".join(_esc(p) for p in paragraphs)
    body = mentions + story
    if view.deployment:  # the blocks show where in their fields; the plain text says it in words
        story += "\n" + _esc(_where(view))
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": _clip(f"{emoji} {words}", HEADER_CHARS),
                                    "emoji": True}},
        {"type": "section", "text": {"type": "mrkdwn", "text": _clip(body, SECTION_CHARS)}},
    ]
    if view.deployment:
        blocks.append({"type": "section", "fields": _fields(view)})
    if link and len(link) <= LINK_URL_CHARS:
        anchor = f"<{link}|Open the deployment in the Azure portal>"
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": anchor}})
    actions = actions_block(view, link)
    if actions is not None:
        blocks.append(actions)
    label = "thread summary" if parent else _CONTEXT_LABEL.get(view.kind, view.kind.value.replace("_", " "))
    stage = f" · stage: {view.stage}" if view.stage else ""
    context = [f"retirewatch · {label}{stage}", f"key {_esc(_clip(view.alert_key, NAME_CHARS))}"]
    blocks.append({"type": "context",
                   "elements": [{"type": "mrkdwn", "text": c} for c in context[:CONTEXT_ELEMENTS]]})
    text = "\n".join([mentions + _esc(words), story, *([f"Azure portal: {link}"] if link else [])])
    return RenderedMessage(_clip(text, TEXT_CHARS), blocks[:MAX_BLOCKS], metadata(view, parent=parent))


def render_alert(view: AlertView, portal_url: str) -> RenderedMessage:
    """A message for the thread (or a top-level alert): mentions first, the headline, then the whole story."""
    return _render(view, portal_url, parent=False)


def render_parent(view: AlertView, portal_url: str) -> RenderedMessage:
    """The thread's first message, re-rendered with the current stage for ``chat.update``.

    No mentions (an edit notifies nobody, and a stale ping reads badly); the kind's own detail is left to the
    thread reply, except for ``resolved``, which the parent shows. Pass the parent's original ``alert_key`` so
    its metadata keeps naming it.
    """
    return _render(view, portal_url, parent=True)


# -- grouped alerts: one message about several deployments ------------------------------------------------------

GROUP_LINES = 20  # deployments listed in the blocks; the rest are counted, and named in the plain text
LIST_CHARS = 2800
_GROUP_HEADLINE = {
    MessageKind.LEFT_GROUP: (":outbox_tray:", "Left the group"),
    MessageKind.JOINED_GROUP: (":inbox_tray:", "Joined the group"),
}
_GROUP_LIST_LABEL = {MessageKind.LEFT_GROUP: "left", MessageKind.JOINED_GROUP: "joined",
                     MessageKind.RESOLVED: "the last to leave"}
_PLURAL_CONSEQUENCE = {
    "outage": ("stopped answering on {day} (requests fail with HTTP 410)",
               "stop answering on {day} (requests fail with HTTP 410)"),
    "forced-upgrade": ("Azure was due to upgrade them to {target} on {day} (untested change)",
                       "Azure will upgrade them to {target} on {day} (untested change)"),
    "auto-upgrade": ("Azure has been auto-upgrading them to {target} from {day} (untested change)",
                     "Azure will auto-upgrade them to {target} from {day} (untested change)"),
}


@dataclass(frozen=True)
class GroupMember:
    """One deployment a grouped message names; ``note`` says what happened to it (why it left, ...)."""

    deployment_id: str
    account: str
    deployment: str
    subscription_id: str = ""
    resource_group: str = ""
    location: str = ""
    sku: str | None = None
    note: str | None = None


@dataclass(frozen=True)
class GroupView:
    """A message about several deployments routed to one channel that share model, version, deadline and stage.

    ``about`` carries what they share (model, version, consequence, deadline, stage, replacement, date source; its
    deployment fields are not used); ``members`` are the deployments this message names, ``size`` how many the
    group has now. ``group`` is the reference ``retirewatch ack group:REF`` takes; ``status_filter`` the
    ``retirewatch status`` options that list the whole group."""

    about: AlertView
    members: tuple[GroupMember, ...]
    group: str
    channel: str
    size: int
    status_filter: str
    resolves: bool = False  # the risk is over for every deployment named (they left resolved, or the group did)
    silenced: int = 0  # members acknowledged, not told this stage

    @property
    def kind(self) -> MessageKind:
        return self.about.kind


def _group_subject(view: GroupView) -> str:
    count = len(view.members)
    return f"{_model(view.about) or 'an unknown model'} on {count} deployment{'s' if count != 1 else ''}"


def group_headline(view: GroupView, *, parent: bool = False) -> tuple[str, str]:
    about, subject = view.about, _group_subject(view)
    if about.kind in _GROUP_HEADLINE:
        emoji, words = _GROUP_HEADLINE[about.kind]
        return emoji, f"{words}: {subject}"
    if about.kind is MessageKind.RESOLVED or (about.kind is not MessageKind.STAGE and not parent):
        emoji, words = _KIND_HEADLINE.get(about.kind, (":gear:", "retirewatch"))
        return emoji, f"{words}: {subject}"
    emoji, words = headline(about, parent=parent)
    return emoji, words.rsplit(": ", 1)[0] + f": {subject}"


def group_consequence_sentence(view: GroupView) -> str:
    about = view.about
    day = _day(about.strikes_on or about.retirement_date)
    if about.date_pending:
        day = "the retirement date, once Microsoft sets it"
    if about.consequence == "outage" and about.struck and about.strikes_on is None:
        return "these deployments no longer answer: Microsoft has retired the model (requests fail with HTTP 410)"
    words = _PLURAL_CONSEQUENCE.get(about.consequence)
    if words is None:
        return "nothing happens to them automatically"
    sentence = words[0 if about.struck else 1].format(day=day, target=_replacement(about))
    return sentence if about.consequence != "outage" else f"these deployments {sentence}"


def group_situation(view: GroupView) -> list[str]:
    about = view.about
    retires = _retires(about)
    count = len(view.members)
    runs = "runs" if count == 1 else "run"
    lead = (f"{count} deployment{'s' if count != 1 else ''} in {_name(view.channel)} {runs} "
            f"{_model(about) or 'an unknown model'}, which {retires}.")
    if about.strikes_on and about.retirement_date and about.strikes_on < about.retirement_date:
        lead += f" The change comes earlier, on {_day(about.strikes_on)}."
    paragraphs = [lead]
    if about.kind is MessageKind.STAGE and (count < view.size or view.silenced):
        told = f"This is told for {count} of the {view.size} deployments in this group"
        paragraphs.append(told + (f"; {view.silenced} acknowledged." if view.silenced else "."))
    paragraphs += _what_happens(about, lambda: group_consequence_sentence(view), "them")
    date_sentence = _date_sentence(about)
    return [*paragraphs, date_sentence] if date_sentence else paragraphs


def _group_paragraphs(view: GroupView, *, parent: bool) -> list[str]:
    about = view.about
    detail = [_clip(about.detail, DETAIL_CHARS)] if about.detail and (not parent or about.kind is
                                                                      MessageKind.RESOLVED) else []
    if about.kind in (MessageKind.RESOLVED, MessageKind.LEFT_GROUP):
        return detail or ["Nothing left to do for these deployments in this thread."]
    return [*detail, *group_situation(view)]


def _member_line(member: GroupMember, *, full: bool) -> str:
    name = f"{_name(member.account)}/{_name(member.deployment)}"
    where = [part for part in (member.sku and f"SKU {_name(member.sku)}", _name(member.location, "")) if part]
    if full:
        where = [f"subscription {_name(member.subscription_id)}", f"resource group {_name(member.resource_group)}",
                 *where]
    line = f"{name} ({', '.join(where)})" if where else name
    return f"{line}: {_clip(member.note, NAME_CHARS)}" if member.note else line


def _member_list(view: GroupView, *, limit: int, chars: int, full: bool) -> str:
    """One line per member while they fit in ``limit`` lines and ``chars`` characters; the rest counted, with the
    command that lists them all."""
    lines: list[str] = []
    used = 0
    for member in view.members:
        line = "• " + _esc(_member_line(member, full=full))
        if len(lines) == limit or used + len(line) + 1 > chars - 300:
            break
        lines.append(line)
        used += len(line) + 1
    rest = len(view.members) - len(lines)
    if rest:
        lines.append(f"…and {rest} more: `{_esc(view.status_filter)}`")
    return "\n".join(lines)


def group_metadata(view: GroupView, *, parent: bool) -> dict[str, Any]:
    """Like :func:`metadata`, with ``deployment_ids`` (every deployment the message names) and
    ``deployment_count`` instead of one ``deployment_id``; ``group`` is the group's reference and ``group_size``
    how many deployments it has now."""
    about = view.about
    payload: dict[str, Any] = {
        "deployment_ids": [member.deployment_id for member in view.members],
        "deployment_count": len(view.members),
        "group": view.group,
        "group_size": view.size,
        **deadline_payload(about, parent),
    }
    resolved = about.kind is MessageKind.RESOLVED or view.resolves
    return {"event_type": EVENT_RESOLVED if resolved else EVENT_ALERT, "event_payload": payload}


def _render_group(view: GroupView, *, parent: bool) -> RenderedMessage:
    about = view.about
    emoji, words = group_headline(view, parent=parent)
    mentions = "" if parent or not about.mentions else " ".join(about.mentions) + " "
    story = "\n".join(_esc(p) for p in _group_paragraphs(view, parent=parent))
    label = _GROUP_LIST_LABEL.get(about.kind, "deployments") if not parent else "deployments"
    listed = f"*{label.capitalize()} ({len(view.members)})*\n" + _member_list(
        view, limit=GROUP_LINES, chars=SECTION_CHARS, full=False)
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": _clip(f"{emoji} {words}", HEADER_CHARS),
                                    "emoji": True}},
        {"type": "section", "text": {"type": "mrkdwn", "text": _clip(mentions + story, SECTION_CHARS)}},
        {"type": "section", "text": {"type": "mrkdwn", "text": _clip(listed, SECTION_CHARS)}},
    ]
    actions = group_actions_block(view)
    if actions is not None:
        blocks.append(actions)
    kind_label = "thread summary" if parent else _CONTEXT_LABEL.get(about.kind, about.kind.value.replace("_", " "))
    stage = f" · stage: {about.stage}" if about.stage else ""
    context = [f"retirewatch · {kind_label} · group of {view.size}{stage}",
               f"acknowledge all: `retirewatch ack group:{_esc(view.group)}`, one: `retirewatch ack "
               "ACCOUNT/DEPLOYMENT`", f"key {_esc(_clip(about.alert_key, NAME_CHARS))}"]
    blocks.append({"type": "context",
                   "elements": [{"type": "mrkdwn", "text": c} for c in context[:CONTEXT_ELEMENTS]]})
    head = mentions + _esc(words) + "\n" + story + "\n"
    everyone = _member_list(view, limit=len(view.members), chars=TEXT_CHARS - len(head), full=True)
    text = head + f"{label.capitalize()} ({len(view.members)}):\n" + everyone
    return RenderedMessage(_clip(text, TEXT_CHARS), blocks[:MAX_BLOCKS], group_metadata(view, parent=parent))


def render_group(view: GroupView) -> RenderedMessage:
    """A message about a group of deployments: mentions, the headline, what they share, then who they are (as many
    as Slack's limits allow in the blocks, every one in the plain text as far as it goes; the status command that
    lists them all)."""
    return _render_group(view, parent=False)


def render_group_parent(view: GroupView) -> RenderedMessage:
    """The group thread's first message, re-rendered with the current stage and members for ``chat.update``."""
    return _render_group(view, parent=True)
