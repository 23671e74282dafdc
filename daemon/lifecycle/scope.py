"""How big a move is: the seed's update scopes (DOMAIN.md), read from model names, versions and the catalog's SKUs.

A name is read as family + generation + variants (+ a release date stamp): ``gpt-4o-mini`` is ``gpt`` 4.0, omni
marker, variant ``mini``; ``gpt-35-turbo-16k`` is ``gpt`` 3.5 ``turbo`` with context ``16k``; ``Meta-Llama-3.1-70B-
Instruct`` is ``llama`` 3.1 ``70b instruct``; ``Codestral-2501`` is ``codestral`` released 2025-01; ``davinci`` and
``ada`` are GPT-3, ``text-davinci-003`` GPT-3.5 (a small table of Azure's legacy names). A variant can live in the
version string: ``gpt-4`` version ``turbo-2024-04-09`` (and the ``1106-Preview``, ``0125-Preview``,
``vision-preview`` versions) is GPT-4 Turbo. The first row that applies wins:

| #  | rule (the first that applies wins)    | scope                    | example, as Azure spells it                 |
|----|---------------------------------------|--------------------------|---------------------------------------------|
| 1  | an [update_scopes] override matches   | the override's           | "gpt-4 -> gpt-4o" = "variant"               |
| 2  | same model, older version or stamp    | unknown (no upgrade)     | gpt-4o 2024-11-20 -> gpt-4o 2024-08-06      |
| 3  | SKU family not among target's SKUs    | deployment-option-change | gpt-35-turbo 0301 -> gpt-4o 2024-05-13 (a)  |
| 4  | target fine-tuned or of a new domain  | model-change-specialized | gpt-4 0613 -> Codestral-2501 2              |
| 5  | source fine-tuned/domain, target not  | model-change-general     | Codestral-2501 2 -> gpt-4o 2024-11-20       |
| 6  | different families, both readable     | model-change-general     | gpt-4 0613 -> DeepSeek-R1 1                 |
| 7  | same family, other major generation   | major-version            | davinci 1 -> gpt-4 0613 (GPT-3 -> 4)        |
| 8  | same major, other minor generation    | intermediate-version     | davinci 1 -> gpt-35-turbo 0125 (3 -> 3.5)   |
| 9  | omni marker differs, same variants    | generational             | gpt-4 turbo-2024-04-09 -> gpt-4o 2024-05-13 |
| 10 | variants differ (name or version)     | variant                  | gpt-4 0613 -> gpt-4 turbo-2024-04-09        |
| 11 | same model, a newer release (b)       | minor-version            | gpt-35-turbo 0613 -> gpt-35-turbo 0125      |
| 12 | same model and version, other context | variant                  | gpt-4-32k 0613 -> gpt-4 0613                |
| 13 | anything else (no generation, stamp)  | unknown                  | whisper 001 -> gpt-4o-transcribe 2025-03-20 |
(a) deployed on ``Standard``; Microsoft's ListLocationModels example lists gpt-4o 2024-05-13 only as ``provisioned``.
(b) or a release this code cannot order against the deployed one (``Mistral-small -> mistral-small-2503``).
Rules 2 and 11: the same name is always the same model. Rules 2, 11 and 12 ignore context suffixes; rule 9 sets
GPT-4's turbo aside (see below).

Decisions the seed leaves open:

- *GPT-4 Turbo -> GPT-4o is generational* (the seed's generational row): ``turbo`` names a GPT-4 variant, and the
  omni generation supersedes every GPT-4 variant, so it is set aside when the omni marker changes. ``gpt-4 ->
  gpt-4o-mini`` gains ``mini`` as well: a variant (the seed's own variant example).
- *A context suffix* (``-16k``, ``-32k``, ``-128k``) never decides a scope: ``gpt-35-turbo-16k 0613 -> gpt-35-turbo
  0125`` is a minor version (Azure's own auto-upgrade path; 0125 has the 16k window). Parameter sizes (``70B``,
  ``8B``) are variants: ``Meta-Llama-3.1-70B-Instruct -> Meta-Llama-3.1-8B-Instruct``.
- *A date stamp in a name* (``Codestral-2405``, ``Mistral-Large-2411``, ``DeepSeek-R1-0528``,
  ``command-r-08-2024``) is a release of the same model, never a generation; sibling lines of one vendor without
  generation numbers (``Mistral-Large-2411 -> mistral-medium-2505``) are variants.
- *Deployment option* is compared by SKU family: Standard (``Standard``, ``GlobalStandard``, ``DataZoneStandard``),
  Provisioned (every ``*Provisioned*``; the catalog says ``provisioned`` for all three deployment SKUs), Batch,
  Developer. A move within a family (``Standard`` -> ``GlobalStandard``) keeps the billing model and is not an option
  change. It takes precedence over the model rules: the target cannot replace the deployment in place, so a new
  deployment (and, for Provisioned, reserved capacity) is the longest lead time. Unknown SKUs, or a target whose
  SKUs are not known, never produce it. Self-hosted targets are not in the catalog: name them with an override.
- *Specialized* means fine-tuned (a ``.ft-`` name, or the catalog's ``baseModel``) or domain-trained: a name token
  for code (``codestral``, ``coder``, ``codex``, ``codellama``, ``starcoder``), medicine (``med``, ``medical``,
  ``clinical``, ``medimage*``, ``biomed*``, ``cxr*``, ``medgemma``), biology (``bio``, ``biogpt*``), law (``legal``),
  finance (``finance``, ``financial``) or maths (``math``, ``mathstral``). ``mistral-medium`` is not medicine:
  tokens are matched whole.
- *Versions* (:func:`compare_versions`): ISO dates wherever they sit (``turbo-2024-04-09``); four-digit Azure OpenAI
  versions are month+day, issued March 2023 to January 2024 (``0301`` < ``0613`` < ``0914`` < ``1106`` < ``0125``):
  January and February are 2024, other months 2023; integers and dotted numbers (``1`` < ``2``, ``3.0`` < ``3.1``).
  Kinds that do not mix (an integer and a date) are not comparable.
"""

from __future__ import annotations

import fnmatch
import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date
from enum import StrEnum

from daemon.lifecycle.skus import SkuFamily, sku_family


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


# ---------------------------------------------------------------------------------------------------- versions

_ISO_DATE = re.compile(r"(?<!\d)(\d{4})-(\d{2})-(\d{2})(?!\d)")
_FOUR_DIGIT = re.compile(r"^(\d{2})(\d{2})(?:-[a-z]+)*$")
_NUMBER = re.compile(r"^v?(\d+(?:\.\d+)*)$")


def _azure_month_day(month: int, day: int) -> date | None:
    """A four-digit Azure OpenAI version: issued from March 2023 (0301) to January 2024 (0125)."""
    try:
        return date(2024 if month <= 2 else 2023, month, day)
    except ValueError:
        return None


def _version_key(version: str | None) -> tuple[str, tuple[int, ...]] | None:
    """``("date", (y, m, d))`` or ``("number", parts)``; None when the text has no order this code can read."""
    text = (version or "").strip().casefold()
    if not text:
        return None
    iso = _ISO_DATE.search(text)
    if iso:
        try:
            day = date(int(iso.group(1)), int(iso.group(2)), int(iso.group(3)))
        except ValueError:
            return None
        return "date", (day.year, day.month, day.day)
    four = _FOUR_DIGIT.match(text)
    if four:
        day_of = _azure_month_day(int(four.group(1)), int(four.group(2)))
        if day_of is not None:
            return "date", (day_of.year, day_of.month, day_of.day)
    number = _NUMBER.match(text)
    if number:
        return "number", tuple(int(part) for part in number.group(1).split("."))
    return None


def _pad(parts: tuple[int, ...], length: int) -> tuple[int, ...]:
    return parts + (0,) * (length - len(parts))


def compare_versions(a: str | None, b: str | None) -> int | None:
    """-1 when ``a`` is older than ``b``, 0 when they are the same release, 1 when newer; None when the two cannot
    be ordered (absent, unreadable, or of kinds that do not mix such as ``1`` and ``2024-05-13``)."""
    left, right = _version_key(a), _version_key(b)
    if left is None or right is None or left[0] != right[0]:
        return None
    length = max(len(left[1]), len(right[1]))
    x, y = _pad(left[1], length), _pad(right[1], length)
    return (x > y) - (x < y)


def is_downgrade(from_version: str | None, to_version: str | None, *, from_name: str | None = None,
                 to_name: str | None = None) -> bool:
    """True when the move is known to go back to an older release. Without names the versions alone decide (use it
    for a same-name move). With names, a move to another model is never a downgrade, and for the same model a date
    stamp in the name (``Codestral-2501 -> Codestral-2405``) counts before the versions do."""
    if from_name is None and to_name is None:
        return compare_versions(from_version, to_version) == 1
    order = _release_order(from_name, from_version, to_name, to_version)
    return order is not None and order > 0


# ---------------------------------------------------------------------------------------------------- names

VENDOR_PREFIXES = frozenset({"meta", "microsoft", "mistralai", "openai", "azure", "xai", "cohere"})
STAGE_WORDS = frozenset({"preview", "latest", "beta", "alpha", "exp", "experimental", "v"})
# Words that name a line within a family (size or flavour), wherever they sit in the name.
VARIANT_WORDS = frozenset({"mini", "nano", "tiny", "small", "medium", "large", "base", "plus", "pro", "lite",
                           "turbo", "instruct", "chat", "fast", "flash"})
DOMAIN_TOKENS: Mapping[str, str] = {
    "code": "code", "coder": "code", "codex": "code", "codestral": "code", "codellama": "code",
    "starcoder": "code", "starcoder2": "code",
    "med": "medicine", "medical": "medicine", "clinical": "medicine", "medgemma": "medicine",
    "bio": "biology", "legal": "law", "finance": "finance", "financial": "finance",
    "math": "maths", "mathstral": "maths",
}
DOMAIN_PREFIXES: Mapping[str, str] = {"medimage": "medicine", "biomed": "medicine", "cxr": "medicine",
                                      "biogpt": "biology"}
# Azure OpenAI's legacy names carry no generation number (GPT-3: ada, babbage, curie, davinci and their text-*-001
# and *-002 successors; GPT-3.5: text-davinci-002/003; the second embedding generation: text-embedding-ada-002).
_LEGACY: Mapping[str, tuple[str, int, int, frozenset[str]]] = {
    **{name: ("gpt", 3, 0, frozenset({base})) for base in ("ada", "babbage", "curie", "davinci")
       for name in (base, f"text-{base}-001", f"{base}-002")},
    "text-davinci-002": ("gpt", 3, 5, frozenset({"davinci"})),
    "text-davinci-003": ("gpt", 3, 5, frozenset({"davinci"})),
    "text-embedding-ada-002": ("text-embedding", 2, 0, frozenset({"ada"})),
}
# gpt-4 versions that are GPT-4 Turbo: the previews before turbo-2024-04-09 (which names itself).
_TURBO = frozenset({"turbo"})
_VERSION_VARIANTS: Mapping[tuple[str, str], frozenset[str]] = {
    ("gpt-4", "1106-preview"): _TURBO, ("gpt-4", "0125-preview"): _TURBO, ("gpt-4", "vision-preview"): _TURBO,
}

_GPT_GENERATION = re.compile(r"^(\d+)(?:\.(\d+))?(o)?$")
_O_SERIES = re.compile(r"^o(\d+)$")
_NUMBER_TOKEN = re.compile(r"^v?(\d{1,3})(?:\.(\d+))?$")
_LETTERS_DIGITS = re.compile(r"^([a-z]+?)(\d+)(?:\.(\d+))?$")
_CONTEXT = re.compile(r"^\d+k$")
_SIZE = re.compile(r"^(?:\d+x)?\d+(?:\.\d+)?[bmte]$")
_STAMP_ISO = re.compile(r"(?:^|-)(20\d{2})-(\d{2})-(\d{2})(?=$|-)")
_STAMP_MONTH_YEAR = re.compile(r"(?:^|-)(\d{2})-(20\d{2})(?=$|-)")
_STAMP_FOUR = re.compile(r"^\d{4}$")


@dataclass(frozen=True)
class ModelName:
    """A model name read into parts. ``major`` is None when the name carries no generation number."""

    family: str
    major: int | None
    minor: int
    omni: bool
    variants: frozenset[str]
    context: frozenset[str] = frozenset()
    release: tuple[int, int, int] | str | None = None  # a date stamp; a bare month+day stays text (no year)
    domains: frozenset[str] = frozenset()
    fine_tuned: bool = False

    @property
    def readable(self) -> bool:
        """A generation number or a date stamp was found: enough to tell two families apart with confidence."""
        return self.major is not None or self.release is not None

    @property
    def line(self) -> tuple[str, int | None, int, bool, frozenset[str]]:
        """What makes two names the same model (release and context window aside)."""
        return self.family, self.major, self.minor, self.omni, self.variants


@functools.lru_cache(maxsize=4096)  # an estate has few distinct model names; notify and the forecast ask often
def parse_model_name(name: str | None, version: str | None = None) -> ModelName | None:
    """The parts of a model name (and the variant its version names, if any); None for a blank name."""
    text = (name or "").strip().casefold()
    if not text:
        return None
    fine_tuned = ".ft-" in text
    text = text.split(".ft-", 1)[0]
    text, dated = _take_stamp(text)
    tokens = [token for token in re.split(r"[-_ ]+", text) if token]
    while len(tokens) > 1 and tokens[0] in VENDOR_PREFIXES:
        tokens = tokens[1:]
    tokens, four_digit = _take_four_digit_stamp(tokens)
    release = dated or four_digit
    parsed = _legacy(tokens) or _gpt(tokens) or _o_series(tokens) or _generic(tokens)
    extra = _version_variants(text, version)
    return replace(parsed, variants=parsed.variants | extra, release=release,
                   domains=_domains(tokens), fine_tuned=fine_tuned)


def _take_stamp(text: str) -> tuple[str, tuple[int, int, int] | None]:
    """A ``2024-07-18`` or ``08-2024`` date stamp, taken out of the name."""
    iso = _STAMP_ISO.search(text)
    month_year = None if iso else _STAMP_MONTH_YEAR.search(text)
    found = iso or month_year
    if found is None:
        return text, None
    if iso:
        year, month, day = int(iso.group(1)), int(iso.group(2)), int(iso.group(3))
    else:
        year, month, day = int(found.group(2)), int(found.group(1)), 1
    if not (1 <= month <= 12 and 1 <= day <= 31):
        return text, None
    return text[:found.start()] + text[found.end():], (year, month, day)


def _take_four_digit_stamp(tokens: list[str]) -> tuple[list[str], tuple[int, int, int] | str | None]:
    """``2405`` (year 2024, May: Mistral) or ``0528`` (month and day, year unknown: DeepSeek), after the first
    token; ``gpt-35`` and version-like numbers stay."""
    for index, token in enumerate(tokens):
        if index == 0 or not _STAMP_FOUR.match(token):
            continue
        first, second = int(token[:2]), int(token[2:])
        if 23 <= first <= 39 and 1 <= second <= 12:
            return tokens[:index] + tokens[index + 1:], (2000 + first, second, 1)
        if 1 <= first <= 12 and 1 <= second <= 31:
            return tokens[:index] + tokens[index + 1:], token
    return tokens, None


def _legacy(tokens: list[str]) -> ModelName | None:
    known = _LEGACY.get("-".join(tokens))
    return ModelName(known[0], known[1], known[2], False, known[3]) if known else None


def _rest(tokens: list[str]) -> tuple[frozenset[str], frozenset[str]]:
    """Variants and context windows among the tokens after the generation."""
    context = frozenset(token for token in tokens if _CONTEXT.match(token))
    variants = frozenset(token for token in tokens if token not in context and token not in STAGE_WORDS)
    return variants, context


def _gpt(tokens: list[str]) -> ModelName | None:
    if len(tokens) < 2 or tokens[0] != "gpt":
        return None
    generation = _GPT_GENERATION.match(tokens[1])
    if not generation:
        return None
    digits, minor = generation.group(1), generation.group(2)
    major, minor_number = (int(digits[0]), 5) if minor is None and len(digits) == 2 and digits.endswith("5") \
        else (int(digits), int(minor or 0))  # gpt-35-turbo is GPT-3.5
    variants, context = _rest(tokens[2:])
    return ModelName("gpt", major, minor_number, bool(generation.group(3)), variants, context)


def _o_series(tokens: list[str]) -> ModelName | None:
    series = _O_SERIES.match(tokens[0])
    if not series:
        return None
    variants, context = _rest(tokens[1:])
    return ModelName("o", int(series.group(1)), 0, False, variants, context)


def _generic(tokens: list[str]) -> ModelName:
    family: list[str] = []
    variants: set[str] = set()
    context: set[str] = set()
    for index, token in enumerate(tokens):
        if token in STAGE_WORDS:
            continue
        if _CONTEXT.match(token):
            context.add(token)
            continue
        if _SIZE.match(token) or token in VARIANT_WORDS:
            variants.add(token)
            continue
        generation = _generation_of(token)
        if family and generation:
            letters, major, minor = generation
            if letters:
                family.append(letters)
            rest_tokens = tokens[index + 1:]
            if not minor and rest_tokens and rest_tokens[0].isdigit() and len(rest_tokens[0]) == 1:
                minor, rest_tokens = int(rest_tokens[0]), rest_tokens[1:]  # embed-v-4-0 is 4.0
            rest, rest_context = _rest(rest_tokens)
            return ModelName("-".join(family), major, minor, False,
                             frozenset(variants) | rest, frozenset(context) | rest_context)
        family.append(token)
    return ModelName("-".join(family) or "-".join(tokens), None, 0, False, frozenset(variants), frozenset(context))


def _generation_of(token: str) -> tuple[str, int, int] | None:
    """``3.1`` -> ("", 3, 1); ``v3.5`` -> ("", 3, 5); ``r1`` -> ("r", 1, 0): letters before a number join the
    family (``DeepSeek-R1`` is family ``deepseek-r``), except a ``v``."""
    plain = _NUMBER_TOKEN.match(token)
    if plain:
        return "", int(plain.group(1)), int(plain.group(2) or 0)
    mixed = _LETTERS_DIGITS.match(token)
    if mixed:
        letters = "" if mixed.group(1) == "v" else mixed.group(1)
        return letters, int(mixed.group(2)), int(mixed.group(3) or 0)
    return None


def _version_variants(name: str, version: str | None) -> frozenset[str]:
    """Variants a version string names: ``turbo-2024-04-09`` (and the GPT-4 Turbo previews) on ``gpt-4``."""
    text = (version or "").strip().casefold()
    if not text:
        return frozenset()
    known = _VERSION_VARIANTS.get((name, text))
    if known is not None:
        return known
    words = re.split(r"[-_ .]+", _ISO_DATE.sub("", text))
    return frozenset(word for word in words if word.isalpha() and word not in STAGE_WORDS)


def _domains(tokens: list[str]) -> frozenset[str]:
    found = {DOMAIN_TOKENS[token] for token in tokens if token in DOMAIN_TOKENS}
    found |= {domain for token in tokens for prefix, domain in DOMAIN_PREFIXES.items() if token.startswith(prefix)}
    return frozenset(found)


# ---------------------------------------------------------------------------------------------------- SKUs

def _option_changes(from_sku: str | None, target_skus: Sequence[str] | None) -> bool:
    family = sku_family(from_sku)
    if family is SkuFamily.UNKNOWN or not target_skus:
        return False
    return all(sku_family(sku) != family for sku in target_skus)


# ---------------------------------------------------------------------------------------------------- the rules

def _release_order(from_name: str | None, from_version: str | None, to_name: str | None,
                   to_version: str | None) -> int | None:
    source, target = parse_model_name(from_name, from_version), parse_model_name(to_name, to_version)
    if source is None or target is None:
        return None
    return _order(source, target, from_name, from_version, to_name, to_version)


def _order(source: ModelName, target: ModelName, from_name: str | None, from_version: str | None,
           to_name: str | None, to_version: str | None) -> int | None:
    """For two releases of the same model: -1 (the target is newer), 0, 1 (older); None when they are different
    models or cannot be ordered. The same name is the same model whatever its versions say (``gpt-4
    turbo-2024-04-09 -> gpt-4 0613`` goes back); otherwise the model line must match and a date stamp in the name
    counts before the version."""
    if (from_name or "").strip().casefold() == (to_name or "").strip().casefold():
        return compare_versions(from_version, to_version)
    if source.line != target.line:
        return None
    if source.release != target.release:
        if isinstance(source.release, tuple) and isinstance(target.release, tuple):
            return (source.release > target.release) - (source.release < target.release)
        return None
    return compare_versions(from_version, to_version)


def classify_update(from_name: str | None, from_version: str | None, to_name: str | None,
                    to_version: str | None, overrides: ScopeOverrides = (), *, from_sku: str | None = None,
                    target_skus: Sequence[str] | None = None, from_is_fine_tuned: bool = False,
                    target_is_fine_tuned: bool = False) -> UpdateScope:
    """The scope of moving ``from_name from_version`` to ``to_name to_version`` (the module's table, row by row).

    ``from_sku`` is the deployment's SKU and ``target_skus`` the SKU names the catalog lists for the target model
    version (rule 3); ``from_is_fine_tuned`` / ``target_is_fine_tuned`` say what the names may not (a fine-tune such
    as ``ada.1`` that the catalog marks with a ``baseModel``; rules 4 and 5)."""
    if not from_name or not to_name:
        return UpdateScope.UNKNOWN
    for override in overrides:
        if override.matches(from_name, to_name):
            return override.scope
    source, target = parse_model_name(from_name, from_version), parse_model_name(to_name, to_version)
    if source is None or target is None:
        return UpdateScope.UNKNOWN
    order = _order(source, target, from_name, from_version, to_name, to_version)
    if order is not None and order > 0:
        return UpdateScope.UNKNOWN
    if _option_changes(from_sku, target_skus):
        return UpdateScope.DEPLOYMENT_OPTION_CHANGE
    specialization = _specialization(source, target, from_name.casefold() == to_name.casefold(),
                                     from_is_fine_tuned, target_is_fine_tuned)
    return specialization or _by_name(source, target, from_version, to_version, order)


def _specialization(source: ModelName, target: ModelName, same_name: bool, from_is_fine_tuned: bool,
                    target_is_fine_tuned: bool) -> UpdateScope | None:
    if same_name:
        return None
    if target.fine_tuned or target_is_fine_tuned or not target.domains <= source.domains:
        return UpdateScope.MODEL_CHANGE_SPECIALIZED
    if source.fine_tuned or from_is_fine_tuned or not source.domains <= target.domains:
        return UpdateScope.MODEL_CHANGE_GENERAL
    return None


def _by_name(source: ModelName, target: ModelName, from_version: str | None, to_version: str | None,
             order: int | None) -> UpdateScope:
    if source.family != target.family:
        readable = source.readable and target.readable
        return UpdateScope.MODEL_CHANGE_GENERAL if readable else UpdateScope.UNKNOWN
    if (source.major is None) != (target.major is None):
        return UpdateScope.UNKNOWN
    if source.major != target.major:
        return UpdateScope.MAJOR_VERSION
    if source.minor != target.minor:
        return UpdateScope.INTERMEDIATE_VERSION
    if source.omni != target.omni:
        same = source.variants - _TURBO == target.variants - _TURBO
        return UpdateScope.GENERATIONAL if same else UpdateScope.VARIANT
    if source.variants != target.variants:
        return UpdateScope.VARIANT
    if order == 0 or (order is None and source.release == target.release
                      and (from_version or "").casefold() == (to_version or "").casefold()):
        return UpdateScope.VARIANT if source.context != target.context else UpdateScope.UNKNOWN
    return UpdateScope.MINOR_VERSION
