"""Plain words for Azure's lifecycle vocabulary, whose API words read as their opposites: ``Deprecated`` means
retired, ``Deprecating`` means "no new customers, retiring" (DOMAIN.md, Vocabulary)."""

from __future__ import annotations

RETIRED = "deprecated"  # lifecycleStatus "Deprecated": retired ("also known as retired", says the spec)
ANNOUNCED = frozenset({"deprecating", "legacy"})  # a retirement is coming

_WORDS = {
    "preview": "preview",
    "generallyavailable": "generally available",
    "stable": "generally available",
    "legacy": "legacy: retirement coming",
    "deprecating": "retiring",
    "deprecated": "retired",
}


def lifecycle_words(status: str | None) -> str | None:
    """What a person reads for a ``lifecycleStatus``; unknown values are shown as Azure spelt them."""
    if not status:
        return None
    return _WORDS.get(status.casefold(), status)


def is_retired(status: str | None) -> bool:
    return (status or "").casefold() == RETIRED


def retirement_announced(status: str | None) -> bool:
    return (status or "").casefold() in ANNOUNCED
