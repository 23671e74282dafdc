"""How big a move is: the seed's update scopes, classified from model names (DOMAIN.md), with config overrides.

Names are read as family + generation + variant tokens: ``gpt-4o-mini`` is family ``gpt``, generation 4.0,
omni marker, variant ``mini``; ``gpt-35-turbo`` is ``gpt`` 3.5 ``turbo``; ``Meta-Llama-3.1-70B-Instruct`` is
``llama`` 3.1 ``70b instruct``; ``o3-mini`` is ``o`` 3 ``mini``. What the rules cannot read is ``unknown``; the
``[update_scopes]`` table names such pairs.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum


class UpdateScope(StrEnum):
    MINOR_VERSION = "minor-version"
    INTERMEDIATE_VERSION = "intermediate-version"
    MAJOR_VERSION = "major-version"
    VARIANT = "variant"
    GENERATIONAL = "generational"
    MODEL_CHANGE_GENERAL = "model-change-general"
    MODEL_CHANGE_SPECIALIZED = "model-change-specialized"
    DEPLOYMENT_OPTION_CHANGE = "deployment-option-change"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class ScopeOverride:
    from_glob: str
    to_glob: str
    scope: UpdateScope

    def matches(self, from_name: str, to_name: str) -> bool:
        return (fnmatch.fnmatchcase(from_name.casefold(), self.from_glob.casefold())
                and fnmatch.fnmatchcase(to_name.casefold(), self.to_glob.casefold()))


ScopeOverrides = tuple[ScopeOverride, ...]


def parse_scope_overrides(table: Mapping[str, str]) -> ScopeOverrides:
    """Read ``{"FROM -> TO": "scope"}``; raises ValueError naming the entry that is wrong."""
    overrides = []
    for key, value in table.items():
        parts = [part.strip() for part in key.split("->")]
        if len(parts) != 2 or not all(parts):
            raise ValueError(f"{key!r}: write the key as \"FROM -> TO\" (model names or globs)")
        try:
            scope = UpdateScope(str(value).strip().casefold())
        except ValueError:
            known = ", ".join(s.value for s in UpdateScope if s is not UpdateScope.UNKNOWN)
            raise ValueError(f"{key!r}: unknown scope {value!r}; use one of {known}") from None
        overrides.append(ScopeOverride(parts[0], parts[1], scope))
    return tuple(overrides)


@dataclass(frozen=True)
class ModelName:
    family: str
    major: int
    minor: int
    omni: bool
    variants: frozenset[str]


VENDOR_PREFIXES = frozenset({"meta", "microsoft", "mistralai", "openai", "azure", "xai", "deepseek-ai"})
_GPT = re.compile(r"^gpt-(\d+)(?:\.(\d+))?(o)?(?:-(.+))?$")
_O_SERIES = re.compile(r"^o(\d+)(?:-(.+))?$")
_VERSIONED = re.compile(r"^v?(\d+)(?:\.(\d+))?$")
_LETTERS_DIGITS = re.compile(r"^([a-z]+)(\d+)(?:\.(\d+))?$")


def parse_model_name(name: str) -> ModelName | None:
    """Family, generation and variants of a model name, or None when no generation number can be found."""
    text = name.strip().casefold()
    gpt = _GPT.match(text)
    if gpt:
        major, minor = _gpt_generation(gpt.group(1), gpt.group(2))
        return ModelName("gpt", major, minor, bool(gpt.group(3)), _variants(gpt.group(4)))
    o_series = _O_SERIES.match(text)
    if o_series:
        return ModelName("o", int(o_series.group(1)), 0, False, _variants(o_series.group(2)))
    return _generic(text)


def _gpt_generation(digits: str, minor: str | None) -> tuple[int, int]:
    if minor is None and len(digits) == 2 and digits.endswith("5"):
        return int(digits[0]), 5  # gpt-35-turbo is GPT-3.5
    return int(digits), int(minor or 0)


def _variants(rest: str | None) -> frozenset[str]:
    return frozenset(token for token in re.split(r"[-_ ]+", rest or "") if token)


def _generic(text: str) -> ModelName | None:
    tokens = [token for token in re.split(r"[-_ ]+", text) if token]
    while tokens and tokens[0] in VENDOR_PREFIXES and len(tokens) > 1:
        tokens = tokens[1:]
    for index, token in enumerate(tokens):
        plain = _VERSIONED.match(token)
        if plain and index > 0:
            family = "-".join(tokens[:index])
            return ModelName(family, int(plain.group(1)), int(plain.group(2) or 0), False,
                             frozenset(tokens[index + 1:]))
        mixed = _LETTERS_DIGITS.match(token)
        if mixed and index > 0:
            family = "-".join([*tokens[:index], mixed.group(1)])
            return ModelName(family, int(mixed.group(2)), int(mixed.group(3) or 0), False,
                             frozenset(tokens[index + 1:]))
    return None


def compare_versions(a: str | None, b: str | None) -> int | None:
    """-1, 0 or 1 for date-like versions (``2024-05-13``), None when they cannot be compared."""
    if not a or not b or not re.fullmatch(r"\d{4}-\d{2}-\d{2}", a) or not re.fullmatch(r"\d{4}-\d{2}-\d{2}", b):
        return None
    return (a > b) - (a < b)


def classify_update(from_name: str | None, from_version: str | None, to_name: str | None,
                    to_version: str | None, overrides: ScopeOverrides = (), *, from_sku: str | None = None,
                    target_skus: Sequence[str] | None = None) -> UpdateScope:
    """The scope of moving ``from_name from_version`` to ``to_name to_version``; overrides are consulted first."""
    if not from_name or not to_name:
        return UpdateScope.UNKNOWN
    for override in overrides:
        if override.matches(from_name, to_name):
            return override.scope
    if from_name.casefold() == to_name.casefold():
        return UpdateScope.MINOR_VERSION
    source, target = parse_model_name(from_name), parse_model_name(to_name)
    if source is None or target is None:
        return UpdateScope.UNKNOWN
    if source.family != target.family:
        return UpdateScope.MODEL_CHANGE_GENERAL
    if source.major != target.major:
        return UpdateScope.MAJOR_VERSION
    if source.minor != target.minor:
        return UpdateScope.INTERMEDIATE_VERSION
    if source.variants != target.variants:
        return UpdateScope.VARIANT
    if source.omni != target.omni:
        return UpdateScope.GENERATIONAL
    return UpdateScope.UNKNOWN
