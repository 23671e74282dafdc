"""What delivering a big outbox costs: many due alerts over many channels, against the Slack emulator enforcing
Slack's pace of one message a second per channel (HTTP 429 with Retry-After beyond it).

Run: .venv/bin/python bench/deliver.py [--alerts 2000] [--channels 20] [--rate 1.0] [--lanes 20]
     [--interleaved] [--postgres]
Prints figures from one run; it is not a test. The pacing bound is what the busiest channel needs alone at Slack's
pace (alerts per channel / rate): every channel delivered in parallel needs no more, one after the other needs
(channels) times more. The emulator runs in the same process, so the wall time includes its work.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import Counter
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for tests.integration.outbox

from daemon.clock import FixedClock
from daemon.config import SlackConfig
from daemon.emulators.slack import SlackEmulator
from daemon.notify.deliver import Deliverer
from daemon.notify.slack import SlackClient
from daemon.store import alerts, database
from tests import postgres
from tests.integration.outbox import fill_outbox


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=2000)
    parser.add_argument("--channels", type=int, default=20)
    parser.add_argument("--rate", type=float, default=1.0, help="messages per second per channel (Slack: 1)")
    parser.add_argument("--lanes", type=int, default=20, help="slack.max_parallel_channels")
    parser.add_argument("--interleaved", action="store_true",
                        help="queue one message of each channel in turn (default: channel after channel, as the "
                             "planner writes them account by account)")
    parser.add_argument("--postgres", action="store_true",
                        help="a scratch database on the tests' PostgreSQL server (default: a scratch SQLite file)")
    args = parser.parse_args()

    per_channel = args.alerts // args.channels
    clock = FixedClock(datetime.now(UTC))
    with ExitStack() as stack:
        slack = stack.enter_context(SlackEmulator())
        if args.postgres:
            url = stack.enter_context(postgres.scratch_database(stack.enter_context(postgres.admin_server())))
        else:
            url = f"sqlite:///{stack.enter_context(tempfile.TemporaryDirectory())}/bench.sqlite"
        engine = database.make_engine(url)
        database.upgrade(engine)
        sessions = database.session_factory(engine)
        queued = fill_outbox(sessions, clock.now(), channels=args.channels, per_channel=per_channel,
                             interleaved=args.interleaved)
        slack.enforce_rate(args.rate)
        client = SlackClient(SlackConfig(api_url=slack.api_url, ca_bundle=slack.ca_bundle_path), token=slack.token)
        deliverer = Deliverer(sessions, client, clock, messages_per_second=args.rate,
                              max_parallel_channels=args.lanes)

        started = time.monotonic()
        report = deliverer.run()
        wall = time.monotonic() - started

        posted = Counter(str(((m.metadata or {}).get("event_payload") or {}).get("alert_key"))
                         for m in slack.messages())
        lost = sum(1 for q in queued if posted[q.key] == 0)
        doubled = sum(count - 1 for count in posted.values() if count > 1)
        throttled = slack.rate_limited()
        with sessions() as session:
            statuses = Counter(row.status for row in alerts.list_alerts(session))
        engine.dispose()

    bound = per_channel / args.rate
    print(f"delivery: {len(queued)} alerts over {args.channels} channels, {args.rate:g} msg/s per channel, "
          f"{min(args.lanes, args.channels)} lanes, {engine.dialect.name}, queued "
          f"{'interleaved' if args.interleaved else 'channel after channel'}")
    print(f"  pacing bound  {bound:8.1f} s   (one channel's {per_channel} messages at {args.rate:g}/s)")
    print(f"  serial bound  {bound * args.channels:8.1f} s   (the channels one after the other)")
    print(f"  wall          {wall:8.1f} s")
    print(f"  ratio         {wall / bound:8.3f}     (wall / pacing bound)")
    print(f"  throughput    {len(queued) / wall:8.1f} msg/s")
    print(f"  429s          {sum(throttled.values()):8d}     in {len(throttled)} channel(s), most in one: "
          f"{max(throttled.values(), default=0)}")
    print(f"  lost          {lost:8d}     (not in Slack when the run ended)")
    print(f"  doubled       {doubled:8d}     (in Slack more than once)")
    print(f"  report        sent {report.sent}, retried {report.retried}, failed {report.failed}; "
          f"outbox {dict(statuses)}")


if __name__ == "__main__":
    main()
