"""The command line. Every command is a thin call into the modules; errors a person can fix end with exit code 2
and a message that says what to do, never a traceback."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from daemon import report
from daemon.clock import Clock, FixedClock, SystemClock, parse_instant, today
from daemon.config import Config, ConfigError, load_config
from daemon.lifecycle import parse_scope_overrides
from daemon.notify.run import NotifyReport
from daemon.poll import PollReport, run_poll
from daemon.store import database, queries

EXIT_OK, EXIT_ATTENTION, EXIT_USAGE = 0, 1, 2
log = logging.getLogger("retirewatch")


@dataclass
class Context:
    config: Config
    clock: Clock
    args: argparse.Namespace

    def engine(self) -> Engine:
        return database.open_database(self.config.database.url)

    def sessions(self) -> sessionmaker[Session]:
        return database.session_factory(self.engine())


# -- commands -------------------------------------------------------------------------------------------------------


def cmd_poll(ctx: Context) -> int:
    result = run_poll(ctx.config, ctx.clock, ctx.sessions())
    print(describe_poll(result))
    return EXIT_OK if result.ok else EXIT_ATTENTION


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
    sessions = ctx.sessions()
    overrides = parse_scope_overrides(ctx.config.update_scopes)
    with sessions() as session:
        rows = report.status_rows(queries.current_deployments(session), queries.catalog(session),
                                  today(ctx.clock), overrides)
        last = queries.last_poll(session)
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


def cmd_db_upgrade(ctx: Context) -> int:
    engine = database.make_engine(ctx.config.database.url)
    before = database.current_revision(engine)
    database.upgrade(engine, ctx.args.revision)
    print(f"database {engine.url!r}: {before or 'empty'} -> {database.current_revision(engine)}")
    return EXIT_OK


def cmd_db_downgrade(ctx: Context) -> int:
    engine = database.make_engine(ctx.config.database.url)
    database.downgrade(engine, ctx.args.revision)
    print(f"database {engine.url!r}: now at {database.current_revision(engine) or 'empty'}")
    return EXIT_OK


def cmd_db_current(ctx: Context) -> int:
    engine = database.make_engine(ctx.config.database.url)
    current, head = database.current_revision(engine), database.head_revision(engine)
    state = "up to date" if current == head else f"behind: run `retirewatch db upgrade` to reach {head}"
    print(f"database {engine.url!r}: revision {current or 'none'} ({state})")
    return EXIT_OK if current == head else EXIT_ATTENTION


def cmd_notify(ctx: Context) -> int:
    from daemon.notify.run import run_notify
    from daemon.notify.slack import SlackClient

    slack = None if ctx.args.dry_run else SlackClient(ctx.config.slack)
    if slack is not None and not slack.has_token:
        print("retirewatch: SLACK_BOT_TOKEN is not set (use --dry-run to preview without Slack)", file=sys.stderr)
        return EXIT_USAGE
    result = run_notify(ctx.config, ctx.clock, ctx.sessions(), slack, dry_run=ctx.args.dry_run,
                        wait_seconds=ctx.args.wait)
    print(describe_notify(result))
    failed = result.delivery is not None and result.delivery.failed > 0
    return EXIT_ATTENTION if failed else EXIT_OK


def describe_notify(result: NotifyReport) -> str:
    plan = result.plan
    queued = ", ".join(f"{count} {kind}" for kind, count in sorted(plan.queued.items())) or "nothing new"
    lines = [f"{plan.at_risk} deployments inside an alerting stage ({len(plan.unowned)} unowned); queued: {queued}"]
    for channel, text in result.previews:
        lines.append(f"\n--> {channel}\n{text}")
    if result.delivery is not None:
        d = result.delivery
        lines.append(f"delivered: {d.sent} sent, {d.recovered} found already posted, {d.retried} to retry, "
                     f"{d.failed} failed")
        lines.extend(f"  failed: {error}" for error in d.errors)
    return "\n".join(lines)


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

    try:
        with ctx.sessions().begin() as session:
            message = acknowledge(session, ctx.config, ctx.clock.now(), ctx.args.deployment,
                                  until=ctx.args.until, note=ctx.args.note)
    except AckError as exc:
        print(f"retirewatch: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(message)
    return EXIT_OK


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
    work = Work(config=ctx.config, clock=clock, sessions=ctx.sessions(), slack=slack, may_send=verdict.may_send)
    return Service(work).run_until_signalled()


def cmd_demo(ctx: Context) -> int:
    from daemon.demo import run_demo

    return run_demo(ctx.clock, keep_database=ctx.args.database, fmt=ctx.args.format)


# -- parsing --------------------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    # SUPPRESS: the options may stand before or after the command without the subcommand's default erasing them.
    common = argparse.ArgumentParser(add_help=False, argument_default=argparse.SUPPRESS)
    common.add_argument("--config", metavar="PATH", help="TOML config file (default: $RETIREWATCH_CONFIG)")
    common.add_argument("--now", metavar="ISO-8601", help="act as if it were this date/time (UTC if no zone)")
    common.add_argument("-v", "--verbose", action="count", help="more logging (-vv for debug)")
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
    notify = add("notify", cmd_notify, "evaluate, queue the Slack alerts that are due, and deliver them")
    notify.add_argument("--dry-run", action="store_true", help="print the messages and channels; send and record "
                        "nothing")
    notify.add_argument("--wait", type=float, default=30.0, metavar="SECONDS",
                        help="keep delivering while a retry falls due within this many seconds (default 30)")
    alerts_cmd = add("alerts", cmd_alerts, "list pending, sent and failed alerts")
    alerts_cmd.add_argument("--status", choices=("pending", "sending", "sent", "failed"))
    alerts_cmd.add_argument("--format", choices=("table", "json"), default="table")
    ack = add("ack", cmd_ack, "silence further alerts for a deployment's current deadline")
    ack.add_argument("deployment", help="the deployment's ARM id, or ACCOUNT/DEPLOYMENT")
    ack.add_argument("--until", type=_date_arg, metavar="YYYY-MM-DD", help="alerts resume on this day")
    ack.add_argument("--note", help="why; posted to the thread")
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
        for noisy in ("azure", "urllib3", "msal"):
            logging.getLogger(noisy).setLevel(logging.ERROR)
        logging.getLogger("apscheduler").setLevel(logging.WARNING)  # it logs every tick at INFO


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    verbosity = getattr(args, "verbose", 0)
    if args.command == "run":
        verbosity = max(verbosity, 1)  # a service logs each event it handles
    _configure_logging(verbosity, getattr(args, "log_format", "text"))
    now = getattr(args, "now", None)
    try:
        clock: Clock = FixedClock(parse_instant(now)) if now else SystemClock()
    except ValueError as exc:
        parser.error(f"--now: {exc}")
    try:
        ctx = Context(config=load_config(getattr(args, "config", None)), clock=clock, args=args)
        code: int = args.handler(ctx)
        return code
    except ConfigError as exc:
        print(f"retirewatch: config error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except database.DatabaseError as exc:
        print(f"retirewatch: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
