"""The Acknowledge and Snooze buttons of stage alerts: what Slack sends when someone presses one, and what to do.

Slack POSTs a form with one field, ``payload``, a JSON ``block_actions`` object (the HTTP layer has verified its
signature first: daemon/service/http.py). The pure half reads it (:func:`parse_press`) and decides
(:func:`decide`): **Acknowledge** is ``retirewatch ack`` for the alert's deadline (``retirewatch ack group:REF`` on a
grouped alert), **Snooze 7 days** is the same ack until today + 7 (alerts resume that day), the portal link needs
nothing. The other half (:class:`InteractionHandler`) records the ack with the ack recording of the CLI
(daemon/notify/ack.py: same semantics, the Slack user as who, one row however often the button is pressed), queues
the thread reply, and replaces the pressed message's buttons with who acknowledged and until when.
"""

from __future__ import annotations

import json
import logging
import threading
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from daemon.clock import Clock
from daemon.config import Config
from daemon.notify.ack import AckError, PressedAck, acknowledge_deadline, acknowledge_group_deadline
from daemon.notify.render import ACK_ACTION, ACTIONS_BLOCK_ID, PORTAL_ACTION, SNOOZE_ACTION, SNOOZE_DAYS
from daemon.notify.slack import SlackClient, SlackMessage, Verdict
from daemon.store import alerts

log = logging.getLogger(__name__)
NAME_CHARS = 80  # of a Slack user name kept in the ack's ``created_by``


class InteractionError(ValueError):
    """The request is not a button press this service understands (HTTP 400)."""


@dataclass(frozen=True)
class Target:
    """What a button is about: one deployment's deadline (``deployment`` is its ARM id, any case), or a grouped
    alert's (``group`` is its REF, ``deployment`` empty)."""

    deployment: str
    deadline: date | None
    group: str = ""


@dataclass(frozen=True)
class Press:
    """One button press, as Slack reported it."""

    action_id: str
    value: str | None
    user_id: str
    user_name: str
    channel_id: str | None
    message_ts: str | None


class Verb(StrEnum):
    ACK = "ack"
    IGNORE = "ignore"


@dataclass(frozen=True)
class Decision:
    verb: Verb
    target: Target | None = None
    until: date | None = None
    reason: str = ""


# -- reading Slack's request (pure) -------------------------------------------------------------------------------


def parse_press(body: bytes) -> Press:
    """The first action of a ``block_actions`` payload, from the form body Slack POSTs."""
    try:
        form = urllib.parse.parse_qs(body.decode("utf-8"), strict_parsing=True)
        payload = json.loads(form["payload"][-1])
    except (UnicodeDecodeError, ValueError, KeyError) as exc:
        raise InteractionError(f"not a Slack interaction: {type(exc).__name__}") from None
    if not isinstance(payload, dict):
        raise InteractionError("not a Slack interaction: the payload is not an object")
    if payload.get("type") != "block_actions":
        raise InteractionError(f"unsupported interaction type {str(payload.get('type'))[:40]!r}")
    actions, user = payload.get("actions"), payload.get("user")
    if not isinstance(actions, list) or not actions or not isinstance(actions[0], dict):
        raise InteractionError("block_actions without an action")
    if not isinstance(user, dict) or not isinstance(user.get("id"), str) or not user["id"]:
        raise InteractionError("block_actions without a user")
    action = actions[0]
    container, channel = _object(payload.get("container")), _object(payload.get("channel"))
    name = user.get("username") or user.get("name") or user["id"]
    value = action.get("value")
    return Press(action_id=str(action.get("action_id") or ""), value=value if isinstance(value, str) else None,
                 user_id=user["id"], user_name=str(name),
                 channel_id=_text(container.get("channel_id")) or _text(channel.get("id")),
                 message_ts=_text(container.get("message_ts")))


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def parse_value(value: str | None) -> Target:
    """A button's value: ``{"deployment": ARM id, "deadline": "YYYY-MM-DD" | null}`` (render.button_value), or
    ``{"group": REF, "deadline": ...}`` on a grouped alert (render.group_button_value)."""
    try:
        data = json.loads(value or "")
    except ValueError:
        raise InteractionError("the button's value is not JSON") from None
    if not isinstance(data, dict):
        raise InteractionError("the button names no deployment and no group")
    deployment, group = data.get("deployment"), data.get("group")
    if isinstance(deployment, str) and deployment.startswith("/") and group is None:
        return Target(deployment, _deadline(data))
    if isinstance(group, str) and group.strip() and deployment is None:
        return Target("", _deadline(data), group=group)
    raise InteractionError("the button names no deployment and no group")


def _deadline(data: dict[str, Any]) -> date | None:
    """The button's ``deadline``: None when it has none (the alert is about a retirement without a date)."""
    deadline = data.get("deadline")
    if deadline is not None:
        try:
            deadline = date.fromisoformat(str(deadline))
        except ValueError:
            raise InteractionError(f"the button's deadline {str(deadline)[:20]!r} is not a date") from None
    return deadline


def decide(press: Press, today: date) -> Decision:
    """What a press asks for. Unknown buttons and the portal link (Slack reports link presses too) change nothing."""
    if press.action_id == PORTAL_ACTION:
        return Decision(Verb.IGNORE, reason="the portal link opens in the browser")
    if press.action_id not in (ACK_ACTION, SNOOZE_ACTION):
        return Decision(Verb.IGNORE, reason=f"unknown action {press.action_id[:60]!r}")
    target = parse_value(press.value)
    until = today + timedelta(days=SNOOZE_DAYS) if press.action_id == SNOOZE_ACTION else None
    return Decision(Verb.ACK, target=target, until=until)


def who(press: Press) -> str:
    """The ack's ``created_by``: the Slack user's name and id (names can change; the id does not)."""
    return f"{press.user_name[:NAME_CHARS]} (Slack {press.user_id})"


def acknowledged_line(by: str | None, until: date | None) -> str:
    span = f"until {until} (alerts resume that day)" if until else "for this deadline"
    return f":ok_hand: Acknowledged by {by or 'someone'} {span}"


def without_buttons(blocks: list[dict[str, Any]], line: str) -> list[dict[str, Any]]:
    """``blocks`` with the buttons replaced by ``line`` (who acknowledged, until when): a context block."""
    replaced = {"type": "context", "block_id": ACTIONS_BLOCK_ID,
                "elements": [{"type": "mrkdwn", "text": _esc(line)}]}
    return [replaced if block.get("block_id") == ACTIONS_BLOCK_ID else block for block in blocks]


def _esc(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# -- acting on it --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    """The HTTP answer: Slack wants a 200 within 3 seconds; the body is for logs and curl."""

    status: int
    text: str


class InteractionHandler:
    """Records what a verified press asks for, then (after the answer) has the thread told and the buttons replaced.

    ``deliver_soon`` asks the service to deliver the outbox at its next tick (the ack's thread reply goes through
    the outbox like every message); the pressed message is edited directly with ``chat.update``, once: if Slack
    refuses, the ack stands and is in the thread, and pressing again (which records nothing) edits it again."""

    def __init__(self, config: Config, clock: Clock, sessions: sessionmaker[Session], slack: SlackClient | None, *,
                 may_send: bool, deliver_soon: Callable[[], None] = lambda: None) -> None:
        self._config, self._clock, self._sessions, self._slack = config, clock, sessions, slack
        self._may_send, self._deliver_soon = may_send, deliver_soon

    def __call__(self, body: bytes) -> Reply:
        try:
            press = parse_press(body)
            decision = decide(press, self._clock.now().date())
        except InteractionError as exc:
            log.warning("slack interaction refused: %s", exc, extra={"event": "interaction_refused"})
            return Reply(400, f"bad request: {exc}\n")
        if decision.verb is Verb.IGNORE or decision.target is None:
            return Reply(200, f"nothing to do: {decision.reason}\n")
        if not self._may_send:
            log.warning("slack interaction %s by %s not recorded: this service is a rehearsal (--now far from the "
                        "wall clock)", press.action_id, press.user_id, extra={"event": "interaction_refused"})
            return Reply(503, "rehearsal: nothing is recorded\n")
        return self._acknowledge(press, decision, decision.target)

    def _acknowledge(self, press: Press, decision: Decision, target: Target) -> Reply:
        now = self._clock.now()
        try:
            with self._sessions.begin() as session:
                outcome = self._record(session, now, target, until=decision.until, by=who(press))
                stored = alerts.sent_message_at(session, press.channel_id, press.message_ts) \
                    if press.channel_id and press.message_ts else None
        except AckError as exc:
            log.info("slack %s by %s (%s) changed nothing: %s", press.action_id, press.user_name, press.user_id, exc,
                     extra={"event": "interaction", "recorded": False})
            return Reply(200, f"nothing recorded: {exc}\n")
        log.info("slack %s by %s (%s): %s", press.action_id, press.user_name, press.user_id, outcome.summary,
                 extra={"event": "interaction", "recorded": outcome.recorded})
        edit = None
        if stored is not None and press.channel_id and press.message_ts:
            blocks = without_buttons(list(stored.get("blocks") or []), acknowledged_line(outcome.by, outcome.until))
            edit = (press.channel_id, press.message_ts, SlackMessage(
                text=str(stored.get("text") or ""), blocks=blocks, metadata=dict(stored.get("metadata") or {})))
        threading.Thread(target=self._follow_up, args=(outcome.recorded, edit), name="slack-interaction",
                         daemon=True).start()
        return Reply(200, ("recorded: " if outcome.recorded else "already so: ") + outcome.summary + "\n")

    def _record(self, session: Session, now: datetime, target: Target, *, until: date | None,
                by: str) -> PressedAck:
        """The ack a press asks for: a grouped alert's is ``retirewatch ack group:REF``, every member at once."""
        if target.group:
            return acknowledge_group_deadline(session, self._config, now, target.group, target.deadline,
                                              until=until, who=by)
        return acknowledge_deadline(session, self._config, now, target.deployment, target.deadline, until=until,
                                    who=by)

    def _follow_up(self, recorded: bool, edit: tuple[str, str, SlackMessage] | None) -> None:
        if recorded:
            self._deliver_soon()
        if edit is None or self._slack is None:
            return
        channel_id, ts, message = edit
        try:
            result = self._slack.update(channel_id, ts, message)
        except Exception as exc:  # a thread of its own: say it, never lose it silently
            log.warning("replacing the buttons of %s/%s failed: %s: %s", channel_id, ts, type(exc).__name__, exc,
                        extra={"event": "interaction_update_failed"})
            return
        if result.verdict is not Verdict.SENT:
            log.warning("replacing the buttons of %s/%s failed: %s (the ack stands; press again to retry)",
                        channel_id, ts, result.error, extra={"event": "interaction_update_failed"})
