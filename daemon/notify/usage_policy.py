"""What usage changes in the alerts: an idle deployment follows ``[escalation.usage.idle]`` (and its mentions
rule), and every alert says how much the deployment is used. The planner calls it; the choices are the pure
functions of :mod:`daemon.lifecycle.usage`."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

from sqlalchemy.orm import Session

from daemon import usage
from daemon.config import Config, idle_policy_from_config
from daemon.lifecycle.escalation import EscalationPolicy
from daemon.lifecycle.usage import UsageIndex, policy_for, usage_sentence
from daemon.notify.render import AlertView
from daemon.records import Deployment


class UsagePolicy:
    def __init__(self, config: Config, index: UsageIndex) -> None:
        self._index = index
        self._idle_policy = idle_policy_from_config(config.escalation)
        self._idle_mentions = config.escalation.usage.idle.mentions

    @classmethod
    def load(cls, session: Session, config: Config, today: date) -> UsagePolicy:
        return cls(config, usage.index(session, config, today))

    def policy(self, deployment: Deployment, policy: EscalationPolicy) -> EscalationPolicy:
        """The escalation policy this deployment's deadline follows today."""
        return policy_for(self._index.of(deployment), policy, self._idle_policy)

    def view(self, view: AlertView, deployment: Deployment) -> AlertView:
        """The alert with its usage sentence; without mentions when the deployment is idle (unless configured)."""
        summary = self._index.of(deployment)
        mentions = () if summary.idle and not self._idle_mentions else view.mentions
        return replace(view, usage=usage_sentence(summary), mentions=mentions)
