"""The command line. Every command is a thin call into the modules. Exit codes mean one thing each:

0 ok; 1 finished, with problems worth attention; 2 bad usage or config; 3 a dependency (database, Azure, Slack)
is unavailable, nothing was lost, run again. Errors are one line that says what happened and what to do, never
a traceback (``-v`` shows the detail)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING

from daemon import report
from daemon.clock import Clock, FixedClock, SystemClock, parse_instant, today
from daemon.config import Config, ConfigError, curated_dates, load_config
from daemon.lifecycle import parse_scope_overrides
from daemon.records import Deployment
from daemon.rehearsal import Rehearsal, rehearsal_verdict

if TYPE_CHECKING:  # loaded by the commands that use them: `poll` reads Azure before the store machinery loads
    from sqlalchemy import Engine
    from sqlalchemy.orm import Session, sessionmaker

    from daemon.notify.run import NotifyReport
    from daemon.poll import PollReport

EXIT_OK, EXIT_ATTENTION, EXIT_USAGE, EXIT_UNAVAILABLE = 0, 1, 2, 3
# --now outside these bounds is refused: date arithmetic near the calendar's edges has no meaning here.
EARLIEST_NOW = datetime(1970, 1, 1, tzinfo=UTC)
LATEST_NOW = datetime(9000, 1, 1, tzinfo=UTC)
log = logging.getLogger("retirewatch")


@dataclass
class Context:
    config: Config
    clock: Clock
    args: argparse.Namespace

    def engine(self) -> Engine:
        from daemon.store import database

        return database.open_database(self.config.database.url,
                                      idle_transaction_seconds=2 * self.config.service.lease_seconds)

    def sessions(self) -> sessionmaker[Session]:
        from daemon.store import database

        return database.session_factory(self.engine())

    def rehearsal(self) -> Rehearsal:
        """May this run send and change alert state? Not when --now is far from the wall clock (a rehearsal)."""
        return rehearsal_verdict(self.clock.now(), SystemClock().now(), self.config.testing.allow_time_travel)

    @contextmanager
    def session_unless_rehearsal(self, rehearsal: Rehearsal) -> Iterator[Session]:
        """A session whose work is committed, or rolled back in a rehearsal (what it would do, said, not done)."""
        with self.sessions()() as session:
            yield session
            if rehearsal.may_send:
                session.commit()
            else:
                session.rollback()


def say(message: str) -> None:
    print(f"retirewatch: {message}", file=sys.stderr)


# -- commands -------------------------------------------------------------------------------------------------------


def cmd_poll(ctx: Context) -> int:
    from daemon.poll import PollInterrupted, SharedPollRunning, run_poll_reading_first

    try:
        with _terminate_as_interrupt():
            result = run_poll_reading_first(ctx.config, ctx.clock, ctx.sessions)
    except SharedPollRunning as running:
        say(str(running))
        return EXIT_OK
    except PollInterrupted as stopped:
        done = stopped.report
        total = f" of {stopped.total}" if stopped.total is not None else ""
        say(f"interrupted: poll {done.poll_id} stopped after {done.subscriptions}{total} subscriptions "
            f"({done.accounts} accounts, {done.deployments} deployments, {done.events} changes stored); the others "
            "keep their last known state until the next poll")
        raise
    print(describe_poll(result))
    transient = all(f.status_code is None or f.status_code == 429 or f.status_code >= 500 for f in result.failures)
    if not result.ok and result.subscriptions == 0 and result.accounts == 0 and transient:
        say("Azure could not be read at all (see the failures above); the last known inventory is kept: check the "
            "credential and the network, then poll again")
        return EXIT_UNAVAILABLE
    return EXIT_OK if result.ok else EXIT_ATTENTION


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread like Ctrl-C: a one-shot command stopped by a scheduler's timeout or a
    shutdown closes what it started (a poll is recorded as stopped) before it exits 143."""


@contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    def terminate(_signum: int, _frame: object) -> None:
        raise Terminated

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def describe_poll(result: PollReport) -> str:
    lines = [
        f"poll {result.poll_id}: {result.subscriptions} subscriptions, {result.accounts} accounts, "
        f"{result.deployments} deployments, {result.catalog_models} catalog entries, {result.events} changes "
        f"({result.requests} requests, {result.seconds:.1f}s)"
    ]
    if result.failures:
        lines.append(f"{len(result.failures)} failed (kept the last known state for them; retried next poll):")
        lines.extend(f"  {f.operation} {f.target}: {f.status_code or '-'} {f.error}" for f in result.failures)
    return "\n".join(lines)


def cmd_status(ctx: Context) -> int:
    from daemon.store import queries
    from daemon.usage import index as usage_index

    sessions = ctx.sessions()
    overrides = parse_scope_overrides(ctx.config.update_scopes)
    from daemon.notify.routing import normalize_channel

    channel = getattr(ctx.args, "channel", None)
    wanted = report.StatusFilter(channel=normalize_channel(channel) if channel else None,
                                 model=getattr(ctx.args, "model", None),
                                 version=getattr(ctx.args, "version", None),
                                 deadline=getattr(ctx.args, "deadline", None))
    with sessions() as session:
        deployments = list(queries.current_deployments(session))
        rows = report.status_rows(deployments, queries.catalog(session), today(ctx.clock), overrides,
                                  dates=curated_dates(ctx.config),
                                  usage=usage_index(session, ctx.config, today(ctx.clock)))
        last = queries.last_poll(session)
        if wanted.given:
            rows = wanted.select(rows, _channels(ctx, session, deployments) if wanted.channel else {})
    fmt = ctx.args.format
    if fmt == "json":
        print(report.to_json(rows))
    elif fmt == "csv":
        print(report.to_csv(rows), end="")
    else:
        if last is None:
            print("No poll has run yet: run `retirewatch poll` first.")
            return EXIT_OK
        print(report.to_table(rows))
        print(f"As of {today(ctx.clock)}; inventory from poll {last.id} ({last.status}, "
              f"{last.started_at:%Y-%m-%d %H:%M} UTC).")
    return EXIT_OK


def cmd_service(ctx: Context) -> int:
    from daemon.service import overview

    with ctx.sessions()() as session:
        view = overview.gather(session, ctx.config.service.lease_seconds)
    print(view.as_json() if ctx.args.format == "json" else overview.render(view))
    return EXIT_OK


def _channels(ctx: Context, session: Session, deployments: Sequence[Deployment]) -> dict[str, str]:
    """Each deployment's Slack channel, as notify routes it (for ``status --channel``)."""
    from daemon.notify.routing import Router
    from daemon.store import queries
    from daemon.store.inventory import arm_key

    router, accounts = Router(ctx.config.routes, ctx.config.slack), queries.accounts_by_key(session)
    channels = {}
    for d in deployments:
        account = accounts.get(arm_key(d.account_id))
        channels[d.id] = router.route(subscription_id=d.subscription_id, resource_group=d.resource_group,
                                      account=d.account_name, deployment=d.name,
                                      tags=account.tags if account else {}).channel
    return channels


def cmd_db_upgrade(ctx: Context) -> int:
    from daemon.store import database

    engine = database.make_engine(ctx.config.database.url)
    with database.explained(engine):
        before = database.current_revision(engine)
        database.upgrade(engine, ctx.args.revision)
        print(f"database {engine.url!r}: {before or 'empty'} -> {database.current_revision(engine)}")
    return EXIT_OK


def cmd_db_downgrade(ctx: Context) -> int:
    from daemon.store import database

    engine = database.make_engine(ctx.config.database.url)
    with database.explained(engine):
        return _db_downgrade(ctx, engine)


def _db_downgrade(ctx: Context, engine: Engine) -> int:
    from daemon.store import database

    undone = database.revisions_undone(engine, database.current_revision(engine), ctx.args.revision)
    if database.OUTBOX_REVISION in undone and not ctx.args.yes:
        say(f"downgrading to {ctx.args.revision} drops the alerts outbox, the threads and the acks (revision "
            f"{database.OUTBOX_REVISION}): every record of what was sent and silenced is lost, and the next "
            "`retirewatch notify` sends every current alert again. Run it again with --yes to do it.")
        return EXIT_USAGE
    database.downgrade(engine, ctx.args.revision)
    print(f"database {engine.url!r}: now at {database.current_revision(engine) or 'empty'}")
    return EXIT_OK


def cmd_db_current(ctx: Context) -> int:
    from daemon.store import database

    engine = database.make_engine(ctx.config.database.url)
    with database.explained(engine):
        current, head = database.current_revision(engine), database.head_revision(engine)
    state = "up to date" if current == head else f"behind: run `retirewatch db upgrade` to reach {head}"
    print(f"database {engine.url!r}: revision {current or 'none'} ({state})")
    return EXIT_OK if current == head else EXIT_ATTENTION


def cmd_notify(ctx: Context) -> int:
    from daemon.notify.run import run_notify
    from daemon.notify.slack import SlackClient, app_problem

    slack = None if ctx.args.dry_run else SlackClient(ctx.config.slack)
    no_token = slack is not None and not slack.has_token
    result = run_notify(ctx.config, ctx.clock, ctx.sessions(), None if no_token else slack,
                        dry_run=ctx.args.dry_run, wait_seconds=ctx.args.wait)
    print(describe_notify(result))
    if no_token and not result.rehearsal:
        say("SLACK_BOT_TOKEN is not set: nothing was sent and every message stays queued; set it to the app's bot "
            "token and run notify again (--dry-run previews without Slack)")
        return EXIT_UNAVAILABLE
    if result.delivery is not None and result.delivery.unavailable is not None:
        say(f"{app_problem(result.delivery.unavailable)}. Delivery stopped: nothing was marked failed, every "
            "message stays pending and the next run sends it")
        return EXIT_UNAVAILABLE
    failed = result.delivery is not None and result.delivery.failed > 0
    return EXIT_ATTENTION if failed else EXIT_OK


def describe_notify(result: NotifyReport) -> str:
    plan = result.plan
    queued = ", ".join(f"{count} {kind}" for kind, count in sorted(plan.queued.items())) or "nothing new"
    lines = [f"REHEARSAL: {result.rehearsal}"] if result.rehearsal else []
    would = "would queue" if result.rehearsal else "queued"
    lines.append(f"{plan.at_risk} deployments inside an alerting stage ({len(plan.unowned)} unowned); "
                 f"{would}: {queued}")
    if result.refused_tags:
        lines.append(f"{result.refused_tags} account tag(s) named a channel outside slack.allowed_channels: "
                     "ignored (routes and the default channel applied); told once in the operational channel")
    for channel, text in result.previews:
        lines.append(f"\n--> {channel}\n{text}")
    if result.delivery is not None:
        d = result.delivery
        lines.append(f"delivered: {d.sent} sent, {d.recovered} found already posted, {d.retried} to retry, "
                     f"{d.failed} failed")
        lines.extend(f"  failed: {error}" for error in d.errors)
    return "\n".join(lines)


def cmd_alerts_retry(ctx: Context) -> int:
    from daemon.notify.retry import RetryError, requeue

    if (ctx.args.key is None) == (not ctx.args.failed):
        say("alerts retry: give one KEY (or id) or --failed for every failed message")
        return EXIT_USAGE
    rehearsal = ctx.rehearsal()
    try:
        with ctx.session_unless_rehearsal(rehearsal) as session:
            count = requeue(session, ctx.clock.now(), ctx.args.key)
    except RetryError as exc:
        say(str(exc))
        return EXIT_USAGE
    if not rehearsal.may_send:
        print(f"REHEARSAL: {rehearsal.reason}\nwould requeue {count} failed message(s)")
        return EXIT_OK
    print(f"requeued {count} failed message(s); the next `retirewatch notify` sends them")
    return EXIT_OK


def cmd_alerts(ctx: Context) -> int:
    from daemon.store import alerts

    with ctx.sessions()() as session:
        rows = alerts.list_alerts(session, [ctx.args.status] if ctx.args.status else [])
        if ctx.args.format == "json":
            print(json.dumps([{"id": r.id, "key": r.key, "kind": r.kind, "stage": r.stage, "channel": r.channel,
                               "status": r.status, "attempts": r.attempts, "created_at": r.created_at.isoformat(),
                               "sent_at": r.sent_at.isoformat() if r.sent_at else None, "ts": r.ts,
                               "error": r.last_error} for r in rows], indent=2))
            return EXIT_OK
        if not rows:
            print("no alerts")
        for r in rows:
            when = f"sent {r.sent_at:%Y-%m-%d %H:%M}" if r.sent_at else f"next try {r.next_attempt_at:%Y-%m-%d %H:%M}"
            error = f"  error: {r.last_error}" if r.last_error and r.status != "sent" else ""
            print(f"{r.id:>5}  {r.status:<8} {r.kind:<17} {r.stage or '-':<22} {r.channel:<20} {when}  "
                  f"attempts {r.attempts}  {r.key}{error}")
    return EXIT_OK


def cmd_ack(ctx: Context) -> int:
    from daemon.notify.ack import AckError, acknowledge

    rehearsal = ctx.rehearsal()
    try:
        with ctx.session_unless_rehearsal(rehearsal) as session:
            message = acknowledge(session, ctx.config, ctx.clock.now(), ctx.args.deployment,
                                  until=ctx.args.until, note=ctx.args.note)
    except AckError as exc:
        say(str(exc))
        return EXIT_USAGE
    if not rehearsal.may_send:
        print(f"REHEARSAL: {rehearsal.reason}\nwould have: {message}")
        return EXIT_OK
    print(message)
    return EXIT_OK


def cmd_digest(ctx: Context) -> int:
    from daemon.digest import rehearsal_for, run_digest
    from daemon.notify.slack import SlackClient

    dry_run = ctx.args.dry_run or not rehearsal_for(ctx.config, ctx.clock).may_send
    slack = None if dry_run else SlackClient(ctx.config.slack)
    if slack is not None and not slack.has_token:
        print("retirewatch: SLACK_BOT_TOKEN is not set (use --dry-run to preview without Slack)", file=sys.stderr)
        return EXIT_USAGE
    result = run_digest(ctx.config, ctx.clock, ctx.sessions(), slack, dry_run=ctx.args.dry_run,
                        channel=ctx.args.channel)
    print(result.describe())
    return EXIT_ATTENTION if result.failed else EXIT_OK


def cmd_forecast(ctx: Context) -> int:
    from daemon.forecast import render
    from daemon.forecast.ics import to_ics
    from daemon.forecast.run import build_forecast, known_channels
    from daemon.notify.routing import normalize_channel

    channel = normalize_channel(ctx.args.channel) if ctx.args.channel is not None else None
    if channel == "":
        say("forecast --channel: give a channel name (e.g. search or #search) or a channel id")
        return EXIT_USAGE
    result = build_forecast(ctx.config, ctx.clock, ctx.sessions(), days=ctx.args.days)
    if channel is not None and channel not in known_channels(ctx.config, result):
        say(f"forecast --channel: no route, channel tag or default sends alerts to {channel}; known channels: "
            f"{', '.join(sorted(known_channels(ctx.config, result)))}")
        return EXIT_USAGE
    if channel is not None:
        result = result.for_channel(channel)
    if ctx.args.format == "json":
        print(render.to_json(result))
    elif ctx.args.format == "ics":
        sys.stdout.write(to_ics(result, ctx.clock.now().astimezone(UTC), channel).decode())  # CRLF lines, as is
    else:
        print(render.to_table(result))
    return EXIT_OK


def _days_arg(text: str) -> int:
    from daemon.forecast.run import MAX_DAYS

    try:
        days = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number of days: {text!r}") from None
    if not 1 <= days <= MAX_DAYS:
        raise argparse.ArgumentTypeError(f"{days}: give 1 to {MAX_DAYS} days")
    return days


def cmd_run(ctx: Context) -> int:
    from daemon.clock import OffsetClock
    from daemon.notify.slack import SlackClient
    from daemon.rehearsal import rehearsal_verdict
    from daemon.service.jobs import Work
    from daemon.service.runner import Service

    # --now: the service clock starts there and runs on at real speed, and the schedule follows it.
    clock: Clock = OffsetClock(ctx.clock.now()) if getattr(ctx.args, "now", None) else SystemClock()
    verdict = rehearsal_verdict(clock.now(), SystemClock().now(), ctx.config.testing.allow_time_travel)
    if not verdict.may_send:
        log.warning("%s", verdict.reason)
    slack = SlackClient(ctx.config.slack)
    if verdict.may_send and not slack.has_token:
        print("retirewatch: SLACK_BOT_TOKEN is not set (the service posts alerts and the digest to Slack)",
              file=sys.stderr)
        return EXIT_USAGE
    from daemon.store.poll_lock import ServiceAlreadyRunning, service_lock

    sessions = ctx.sessions()
    work = Work(config=ctx.config, clock=clock, sessions=sessions, slack=slack, may_send=verdict.may_send)
    try:
        with service_lock(sessions.kw["bind"]):
            return Service(work).run_until_signalled()
    except ServiceAlreadyRunning as exc:
        print(f"retirewatch: {exc}", file=sys.stderr)
        return EXIT_USAGE


def cmd_demo(ctx: Context) -> int:
    from daemon.demo import run_demo

    return run_demo(ctx.clock, keep_database=ctx.args.database, fmt=ctx.args.format)


# -- parsing --------------------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    # SUPPRESS: the options may stand before or after the command without the subcommand's default erasing them.
    common = argparse.ArgumentParser(add_help=False, argument_default=argparse.SUPPRESS)
    common.add_argument("--config", metavar="PATH", help="TOML config file (default: $RETIREWATCH_CONFIG)")
    common.add_argument("--now", metavar="ISO-8601", help="act as if it were this date/time (UTC if no zone)")
    common.add_argument("-v", "--verbose", action="count",
                        help="more logging, and the detail behind an error (-vv for debug)")
    common.add_argument("--log-format", choices=("text", "json"),
                        help="log lines as text (default) or one JSON object per line, for log shippers")

    parser = argparse.ArgumentParser(
        prog="retirewatch", parents=[common],
        description="Know when each Azure OpenAI / Foundry model deployment retires and what happens then.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, handler: Callable[[Context], int], help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, parents=[common], help=help_text, description=help_text)
        sub.set_defaults(handler=handler)
        return sub

    add("poll", cmd_poll, "read every subscription's deployments and the model catalog once; exit 1 if any failed")
    status = add("status", cmd_status, "every deployment, sorted by when its retirement consequence strikes")
    status.add_argument("--format", choices=("table", "json", "csv"), default="table")
    status.add_argument("--channel", metavar="CHANNEL", help="only deployments whose alerts go to this channel")
    status.add_argument("--model", metavar="NAME", help="only deployments of this model")
    status.add_argument("--version", metavar="VERSION", help="only deployments of this model version")
    status.add_argument("--deadline", type=_date_arg, metavar="YYYY-MM-DD",
                        help="only deployments whose consequence strikes on this day (a grouped alert's deadline)")
    notify = add("notify", cmd_notify, "evaluate, queue the Slack alerts that are due, and deliver them")
    notify.add_argument("--dry-run", action="store_true", help="print the messages and channels; send and record "
                        "nothing")
    notify.add_argument("--wait", type=float, default=30.0, metavar="SECONDS",
                        help="keep delivering while a retry falls due within this many seconds (default 30)")
    digest = add("digest", cmd_digest, "post this week's retirement digest to each channel (once a week per "
                 "channel) and the overview to the default channel")
    digest.add_argument("--dry-run", action="store_true", help="print each channel's digest; send and record nothing")
    digest.add_argument("--channel", metavar="NAME", help="only this channel's digest (the default channel: the "
                        "overview)")
    service = add("service", cmd_service, "the `retirewatch run` replicas sharing the database: the leader and its "
                  "epoch, each replica's heartbeat, the poll units and messages in flight")
    service.add_argument("--format", choices=("table", "json"), default="table")
    alerts_cmd = add("alerts", cmd_alerts, "list pending, sent and failed alerts")
    alerts_cmd.add_argument("--status", choices=("pending", "sending", "sent", "failed"))
    alerts_cmd.add_argument("--format", choices=("table", "json"), default="table")
    alerts_commands = alerts_cmd.add_subparsers(dest="alerts_command", required=False, metavar="ALERTS_COMMAND")
    retry = alerts_commands.add_parser("retry", parents=[common], help="requeue failed messages (one, or --failed: "
                                       "all); the next notify sends them",
                                       description="requeue failed messages (one, or --failed: all)")
    retry.add_argument("key", nargs="?", metavar="KEY", help="the alert's key or id (see `retirewatch alerts`)")
    retry.add_argument("--failed", action="store_true", help="every failed message")
    retry.set_defaults(handler=cmd_alerts_retry)
    ack = add("ack", cmd_ack, "silence further alerts for a deployment's current deadline")
    ack.add_argument("deployment", help="the deployment's ARM id, or ACCOUNT/DEPLOYMENT")
    ack.add_argument("--until", type=_date_arg, metavar="YYYY-MM-DD", help="alerts resume on this day")
    ack.add_argument("--note", help="why; posted to the thread")
    forecast = add("forecast", cmd_forecast, "every alert notify will send in the coming days if nothing changes: "
                   "the day, channel, stage, deployments, consequence and deadline (reads only)")
    forecast.add_argument("--days", type=_days_arg, default=90, metavar="N", help="the window: N days from today "
                          "(default 90)")
    forecast.add_argument("--channel", metavar="NAME", help="only what goes to this channel (search, #search or "
                          "an id)")
    forecast.add_argument("--format", choices=("table", "json", "ics"), default="table",
                          help="ics: an iCalendar feed, one all-day event per deadline")
    add("run", cmd_run, "run as a service: poll, notify, deliver and post the weekly digest on schedule; "
        "/healthz, /readyz and /metrics on [service] listen")
    demo = add("demo", cmd_demo, "run the real pipeline against a built-in simulated Azure estate (no account needed)")
    demo.add_argument("--format", choices=("table", "json", "csv"), default="table")
    demo.add_argument("--database", metavar="URL", help="keep the demo's database here (default: a temporary file)")

    db = add("db", lambda ctx: EXIT_USAGE, "database schema: upgrade, downgrade, current")
    db_commands = db.add_subparsers(dest="db_command", required=True, metavar="DB_COMMAND")
    upgrade = db_commands.add_parser("upgrade", parents=[common], help="migrate the database to this version")
    upgrade.add_argument("revision", nargs="?", default="head")
    upgrade.set_defaults(handler=cmd_db_upgrade)
    downgrade = db_commands.add_parser("downgrade", parents=[common], help="migrate back to REVISION ('base': empty)")
    downgrade.add_argument("revision")
    downgrade.add_argument("--yes", action="store_true", help="confirm a downgrade that drops the alerts outbox "
                           "(below revision 0002): what was sent is forgotten and sent again")
    downgrade.set_defaults(handler=cmd_db_downgrade)
    current = db_commands.add_parser("current", parents=[common], help="show the schema revision; exit 1 if behind")
    current.set_defaults(handler=cmd_db_current)
    return parser


def _date_arg(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def _configure_logging(verbosity: int, fmt: str = "text") -> None:
    from daemon.service.logs import configure_logging

    level = logging.WARNING if verbosity == 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    if not logging.getLogger().handlers:  # like basicConfig: a host (pytest, an embedding) keeps its own
        configure_logging(level, fmt, sys.stderr)
    if verbosity < 2:
        # alembic.runtime.plugins tells of its setup when Alembic is first imported, now after logging is set up
        for noisy in ("azure", "urllib3", "msal", "alembic.runtime.plugins"):
            logging.getLogger(noisy).setLevel(logging.ERROR)
        logging.getLogger("apscheduler").setLevel(logging.WARNING)  # it logs every tick at INFO


def clock_from(now: str | None) -> Clock:
    """``--now`` as a clock (absent: the system clock); ValueError says what is wrong with it."""
    if now is None:
        return SystemClock()
    if not now.strip():
        raise ValueError("empty: give an ISO-8601 date or date-time, or leave --now out")
    try:
        instant = parse_instant(now.strip())
    except OverflowError:
        instant = None
    if instant is None or not EARLIEST_NOW <= instant < LATEST_NOW:
        raise ValueError(f"{now!r} is outside the dates retirewatch can act on ({EARLIEST_NOW:%Y-%m-%d} to "
                         f"{LATEST_NOW:%Y-%m-%d})")
    return FixedClock(instant)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    verbosity = getattr(args, "verbose", 0)
    if args.command == "run":
        verbosity = max(verbosity, 1)  # a service logs each event it handles
    _configure_logging(verbosity, getattr(args, "log_format", "text"))
    try:
        clock = clock_from(getattr(args, "now", None))
    except ValueError as exc:
        say(f"--now: {exc}")
        return EXIT_USAGE
    try:
        ctx = Context(config=load_config(getattr(args, "config", None)), clock=clock, args=args)
        code: int = args.handler(ctx)
        sys.stdout.flush()
        return code
    except ConfigError as exc:
        say(f"config error: {exc}")
        return EXIT_USAGE
    except BrokenPipeError:  # `retirewatch alerts | head`: the reader has what it wanted
        _silence_stdout()
        return EXIT_OK
    except KeyboardInterrupt as exc:
        # a poll closed on the way out raises PollInterrupted from the handling of the signal's exception
        terminated = isinstance(exc, Terminated) or isinstance(exc.__context__, Terminated)
        return 143 if terminated else 130
    except Exception as exc:
        from daemon.store import database

        if isinstance(exc, database.DatabaseError):
            return _fail(str(exc), exc.exit_code, exc, verbosity)
        if database.is_database_failure(exc):
            problem = database.explain(exc, mid_run=True)
            return _fail(str(problem), problem.exit_code, exc, verbosity)
        return _fail(f"unexpected error ({type(exc).__name__}: {database.first_line(exc)}); this is a bug: "
                     "please report it with the detail", EXIT_ATTENTION, exc, verbosity)


def _fail(message: str, code: int, exc: BaseException, verbosity: int) -> int:
    say(message + ("" if verbosity else " (run with -v for the detail)"))
    if verbosity:
        log.error("detail", exc_info=exc)
    return code


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's own flush at exit does not fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


if __name__ == "__main__":
    sys.exit(main())
