"""`retirewatch demo`, the README's first command, run as a user runs it: a process of its own, the built-in
emulators, a scratch database, and what it prints."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path


def test_the_demo_reads_the_estate_alerts_the_teams_and_posts_the_digest(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AZURE_", "RETIREWATCH_", "IDENTITY_", "MSI_"))}
    env.pop("SLACK_BOT_TOKEN", None)
    done = subprocess.run([sys.executable, "-m", "daemon.cli", "demo"], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=240)
    out = done.stdout
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in out + done.stderr
    assert re.search(r"3 subscriptions, 4 accounts, 18 deployments, \d+ catalog entries read through the real Azure "
                     r"SDK", out)
    assert "18 deployments: 9 outage, 4 forced-upgrade, 2 auto-upgrade, 3 none." in out
    delivered = re.search(r"Slack \(built-in emulator, real slack_sdk client\): (\d+) alerts delivered", out)
    assert delivered and int(delivered.group(1)) > 0
    # each alert is summed up by its own key sentence: a fine-tune's by when training on its model ends
    fine_tune = out[out.index("* Fine-tuning ends:"):].splitlines()
    assert fine_tune[1].strip().startswith("Training new fine-tunes on ")
    assert "Weekly digest (`retirewatch digest`)" in out and "Retirement digest" in out
    assert list(tmp_path.iterdir()) == [], "the demo leaves nothing behind in the working directory"
