"""The seed's update-scope table (daemon/lifecycle/scope.py, README "Update scopes"), row by row, with model names and
versions as Azure spells them in deployments and in the model catalog."""

from __future__ import annotations

import pytest

from daemon.lifecycle.scope import (
    UpdateScope,
    classify_update,
    compare_versions,
    is_downgrade,
    parse_model_name,
    parse_scope_overrides,
)
from daemon.lifecycle.skus import SkuFamily, sku_family

S = UpdateScope

# One row per row of the module's table: (row, from name, from version, to name, to version, scope).
TABLE_EXAMPLES = [
    (2, "gpt-4o", "2024-11-20", "gpt-4o", "2024-08-06", S.UNKNOWN),
    (4, "gpt-4", "0613", "Codestral-2501", "2", S.MODEL_CHANGE_SPECIALIZED),
    (5, "Codestral-2501", "2", "gpt-4o", "2024-11-20", S.MODEL_CHANGE_GENERAL),
    (6, "gpt-4", "0613", "DeepSeek-R1", "1", S.MODEL_CHANGE_GENERAL),
    (7, "davinci", "1", "gpt-4", "0613", S.MAJOR_VERSION),
    (8, "davinci", "1", "gpt-35-turbo", "0125", S.INTERMEDIATE_VERSION),
    (9, "gpt-4", "turbo-2024-04-09", "gpt-4o", "2024-05-13", S.GENERATIONAL),
    (10, "gpt-4", "0613", "gpt-4", "turbo-2024-04-09", S.VARIANT),
    (11, "gpt-35-turbo", "0613", "gpt-35-turbo", "0125", S.MINOR_VERSION),
    (12, "gpt-4-32k", "0613", "gpt-4", "0613", S.VARIANT),
    (13, "whisper", "001", "gpt-4o-transcribe", "2025-03-20", S.UNKNOWN),
]


@pytest.mark.parametrize(("row", "source", "source_version", "target", "target_version", "scope"), TABLE_EXAMPLES,
                         ids=[f"row-{example[0]}" for example in TABLE_EXAMPLES])
def test_each_table_row_with_its_example(row: int, source: str, source_version: str, target: str,
                                         target_version: str, scope: UpdateScope) -> None:
    assert classify_update(source, source_version, target, target_version) is scope


def test_table_row_1_an_override_names_the_pair() -> None:
    overrides = parse_scope_overrides({"gpt-4 -> gpt-4o": "variant"})
    assert classify_update("gpt-4", "0613", "gpt-4o", "2024-05-13", overrides) is S.VARIANT
    assert classify_update("gpt-4", "0613", "gpt-4o", "2024-05-13") is S.GENERATIONAL


def test_table_row_3_from_microsofts_catalog_example() -> None:
    """ListLocationModels (2025-09-01 example): gpt-4o 2024-05-13 lists only ``provisioned``, gpt-4o 2024-08-06
    ``Standard`` and ``provisioned``, gpt-35-turbo 0301 ``Standard`` and ``Provisioned``."""
    only_provisioned, both = ["provisioned"], ["Standard", "provisioned"]
    assert classify_update("gpt-35-turbo", "0301", "gpt-4o", "2024-05-13", from_sku="Standard",
                           target_skus=only_provisioned) is S.DEPLOYMENT_OPTION_CHANGE
    assert classify_update("gpt-35-turbo", "0301", "gpt-4o", "2024-08-06", from_sku="Standard",
                           target_skus=both) is S.MAJOR_VERSION
    # the catalog's lower-case "provisioned" covers every provisioned deployment SKU
    for sku in ("ProvisionedManaged", "GlobalProvisionedManaged", "DataZoneProvisionedManaged"):
        assert classify_update("gpt-35-turbo", "0301", "gpt-4o", "2024-05-13", from_sku=sku,
                               target_skus=only_provisioned) is S.MAJOR_VERSION
    # its replacementConfig: gpt-4o 2024-05-13 -> gpt-4.1 2025-04-14
    assert classify_update("gpt-4o", "2024-05-13", "gpt-4.1", "2025-04-14") is S.INTERMEDIATE_VERSION


# The families around each row, as Azure spells them.
FAMILIES = [
    # minor version: same model, newer version or name date stamp
    ("gpt-4o", "2024-08-06", "gpt-4o", "2024-11-20", S.MINOR_VERSION),  # the seed's second minor example
    ("gpt-35-turbo", "0301", "gpt-35-turbo", "0613", S.MINOR_VERSION),
    ("gpt-35-turbo", "1106", "gpt-35-turbo", "0125", S.MINOR_VERSION),  # 0125 is January 2024, after 1106
    ("gpt-35-turbo-16k", "0613", "gpt-35-turbo", "0125", S.MINOR_VERSION),  # a context suffix does not decide
    ("gpt-4", "1106-Preview", "gpt-4", "turbo-2024-04-09", S.MINOR_VERSION),  # both GPT-4 Turbo
    ("gpt-4", "vision-preview", "gpt-4", "turbo-2024-04-09", S.MINOR_VERSION),
    ("o1", "2024-12-17", "o1", "2025-06-01", S.MINOR_VERSION),
    ("o1-preview", "1", "o1", "2024-12-17", S.MINOR_VERSION),
    ("Codestral-2405", "1", "Codestral-2501", "2", S.MINOR_VERSION),  # a date-stamped name is a release
    ("Mistral-Large-2407", "1", "Mistral-Large-2411", "2", S.MINOR_VERSION),
    ("Mistral-small", "1", "mistral-small-2503", "1", S.MINOR_VERSION),  # unstamped vs stamped: unorderable
    ("DeepSeek-R1", "1", "DeepSeek-R1-0528", "1", S.MINOR_VERSION),
    ("Cohere-command-r-plus", "1", "Cohere-command-r-plus-08-2024", "1", S.MINOR_VERSION),
    ("Llama-3.3-70B-Instruct", "4", "Llama-3.3-70B-Instruct", "5", S.MINOR_VERSION),
    ("gpt-4o", "2024-05-13", "gpt-4o", "2024-08-06", S.MINOR_VERSION),
    # no upgrade: same model, older release
    ("gpt-35-turbo", "0125", "gpt-35-turbo", "0613", S.UNKNOWN),
    ("gpt-35-turbo-16k", "0613", "gpt-35-turbo", "0301", S.UNKNOWN),
    ("Codestral-2501", "2", "Codestral-2405", "1", S.UNKNOWN),
    ("Mistral-Large-2411", "2", "Mistral-Large-2407", "1", S.UNKNOWN),
    ("gpt-4", "turbo-2024-04-09", "gpt-4", "0125-Preview", S.UNKNOWN),
    ("gpt-4", "turbo-2024-04-09", "gpt-4", "0613", S.UNKNOWN),  # the same name going back, variant or not
    ("gpt-4o", "2024-08-06", "gpt-4o", "2024-08-06", S.UNKNOWN),  # no move at all
    # intermediate version: GPT-3 -> GPT-3.5 and its kin
    ("ada", "1", "gpt-35-turbo-instruct", "0914", S.INTERMEDIATE_VERSION),
    ("text-davinci-001", "1", "text-davinci-003", "1", S.INTERMEDIATE_VERSION),
    ("gpt-4o-mini", "2024-07-18", "gpt-4.1-mini", "2025-04-14", S.INTERMEDIATE_VERSION),
    ("gpt-5-chat", "2025-08-07", "gpt-5.2-chat", "2025-12-11", S.INTERMEDIATE_VERSION),
    ("Meta-Llama-3.1-70B-Instruct", "4", "Llama-3.3-70B-Instruct", "5", S.INTERMEDIATE_VERSION),
    ("Phi-3-mini-4k-instruct", "15", "Phi-3.5-mini-instruct", "6", S.INTERMEDIATE_VERSION),
    # major version: GPT-3 -> GPT-4 and its kin
    ("davinci-002", "3", "gpt-4o", "2024-11-20", S.MAJOR_VERSION),
    ("gpt-35-turbo", "0125", "gpt-4o-mini", "2024-07-18", S.MAJOR_VERSION),
    ("gpt-4.1", "2025-04-14", "gpt-5", "2025-08-07", S.MAJOR_VERSION),
    ("gpt-4o", "2024-11-20", "gpt-5.1", "2025-11-13", S.MAJOR_VERSION),
    ("o1", "2024-12-17", "o3", "2025-04-16", S.MAJOR_VERSION),
    ("o3-mini", "2025-01-31", "o4-mini", "2025-04-16", S.MAJOR_VERSION),
    ("text-embedding-ada-002", "2", "text-embedding-3-small", "1", S.MAJOR_VERSION),
    ("Cohere-rerank-v3.5", "1", "Cohere-rerank-v4.0-pro", "1", S.MAJOR_VERSION),
    ("Cohere-embed-v3-english", "1", "embed-v-4-0", "1", S.MAJOR_VERSION),
    # variant: GPT-4 -> GPT-4 Turbo or GPT-4o-mini and its kin
    ("gpt-4", "0613", "gpt-4o-mini", "2024-07-18", S.VARIANT),
    ("gpt-4", "0314", "gpt-4", "1106-Preview", S.VARIANT),
    ("gpt-4", "turbo-2024-04-09", "gpt-4o-mini", "2024-07-18", S.VARIANT),
    ("gpt-4o", "2024-08-06", "gpt-4o-mini", "2024-07-18", S.VARIANT),  # another model: its older date is no matter
    ("gpt-4.1", "2025-04-14", "gpt-4.1-mini", "2025-04-14", S.VARIANT),
    ("gpt-4.1-mini", "2025-04-14", "gpt-4.1-nano", "2025-04-14", S.VARIANT),
    ("o3", "2025-04-16", "o3-mini", "2025-01-31", S.VARIANT),
    ("gpt-5", "2025-08-07", "gpt-5-chat", "2025-08-07", S.VARIANT),
    ("gpt-35-turbo", "0125", "gpt-35-turbo-instruct", "0914", S.VARIANT),
    ("gpt-4", "0613", "gpt-4-32k", "0613", S.VARIANT),
    ("Meta-Llama-3.1-70B-Instruct", "4", "Meta-Llama-3.1-8B-Instruct", "5", S.VARIANT),  # 70B is a size
    ("Llama-3.2-90B-Vision-Instruct", "2", "Llama-3.2-11B-Vision-Instruct", "2", S.VARIANT),
    ("text-embedding-3-small", "1", "text-embedding-3-large", "1", S.VARIANT),
    ("Mistral-Large-2411", "2", "mistral-medium-2505", "1", S.VARIANT),
    ("gpt-oss-120b", "1", "gpt-oss-20b", "1", S.VARIANT),
    ("Phi-4", "7", "Phi-4-mini-instruct", "1", S.VARIANT),
    # generational: GPT-4 -> GPT-4o
    ("gpt-4", "0613", "gpt-4o", "2024-05-13", S.GENERATIONAL),
    ("gpt-4", "1106-Preview", "gpt-4o", "2024-08-06", S.GENERATIONAL),
    ("gpt-4", "vision-preview", "gpt-4o", "2024-11-20", S.GENERATIONAL),
    ("gpt-4-32k", "0613", "gpt-4o", "2024-11-20", S.GENERATIONAL),
    # model change (general): another family
    ("gpt-4o", "2024-11-20", "Llama-3.3-70B-Instruct", "5", S.MODEL_CHANGE_GENERAL),
    ("gpt-4o", "2024-11-20", "Mistral-Large-2411", "2", S.MODEL_CHANGE_GENERAL),
    ("dall-e-3", "3.0", "gpt-image-1-mini", "2025-10-06", S.MODEL_CHANGE_GENERAL),
    ("gpt-4o", "2024-11-20", "o3-mini", "2025-01-31", S.MODEL_CHANGE_GENERAL),
    ("gpt-35-turbo-0613.ft-5c6f2b9a4e", "1", "gpt-35-turbo", "0125", S.MODEL_CHANGE_GENERAL),  # leaves a fine-tune
    # model change (specialized): a fine-tuned or domain-trained target
    ("gpt-5", "2025-08-07", "gpt-5-codex", "2025-09-15", S.MODEL_CHANGE_SPECIALIZED),
    ("Qwen2.5-72B-Instruct", "1", "Qwen2.5-Coder-32B-Instruct", "1", S.MODEL_CHANGE_SPECIALIZED),
    ("gpt-4o", "2024-11-20", "MedImageInsight", "1", S.MODEL_CHANGE_SPECIALIZED),
    ("Codestral-2501", "2", "MedImageInsight", "1", S.MODEL_CHANGE_SPECIALIZED),  # another domain
    ("gpt-4o-mini", "2024-07-18", "gpt-4o-mini-2024-07-18.ft-0a1b2c3d", "1", S.MODEL_CHANGE_SPECIALIZED),
    # unknown: names the rules cannot read
    ("tts", "001", "gpt-4o-mini-tts", "2025-03-20", S.UNKNOWN),
    (None, None, "gpt-4o", "2024-11-20", S.UNKNOWN),
    ("gpt-4o", "2024-11-20", "", None, S.UNKNOWN),
]


@pytest.mark.parametrize(("source", "source_version", "target", "target_version", "scope"), FAMILIES,
                         ids=[f"{f[0]} {f[1]} -> {f[2]} {f[3]}" for f in FAMILIES])
def test_families_around_each_row(source: str | None, source_version: str | None, target: str | None,
                                  target_version: str | None, scope: UpdateScope) -> None:
    assert classify_update(source, source_version, target, target_version) is scope


def test_mistral_medium_is_not_medicine_and_codestral_stays_code() -> None:
    assert parse_model_name("mistral-medium-2505").domains == frozenset()  # type: ignore[union-attr]
    assert parse_model_name("Codestral-2405").domains == {"code"}  # type: ignore[union-attr]
    assert classify_update("Mistral-Large-2411", "2", "mistral-medium-2505", "1") is S.VARIANT


def test_names_are_read_into_parts() -> None:
    llama = parse_model_name("Meta-Llama-3.1-70B-Instruct")
    assert llama is not None and (llama.family, llama.major, llama.minor) == ("llama", 3, 1)
    assert llama.variants == {"70b", "instruct"} and llama.release is None
    sixteen = parse_model_name("gpt-35-turbo-16k")
    assert sixteen is not None and (sixteen.major, sixteen.minor, sixteen.context) == (3, 5, {"16k"})
    turbo = parse_model_name("gpt-4", "turbo-2024-04-09")
    assert turbo is not None and turbo.variants == {"turbo"} and not turbo.omni
    codestral = parse_model_name("Codestral-2501")
    assert codestral is not None and codestral.major is None and codestral.release == (2025, 1, 1)
    fine_tune = parse_model_name("gpt-4o-mini-2024-07-18.ft-0a1b2c3d")
    assert fine_tune is not None and fine_tune.fine_tuned and fine_tune.release == (2024, 7, 18)
    assert parse_model_name("  ") is None


# ---------------------------------------------------------------------------------------------- specialized

def test_fine_tuned_target_from_the_catalog() -> None:
    """ListAccountModels' ``ada.1`` names its ``baseModel`` ada: a fine-tune the name alone does not reveal."""
    assert classify_update("ada", "1", "ada.1", "1") is S.UNKNOWN
    assert classify_update("ada", "1", "ada.1", "1", target_is_fine_tuned=True) is S.MODEL_CHANGE_SPECIALIZED
    assert classify_update("ada.1", "1", "babbage-002", "2", from_is_fine_tuned=True) is S.MODEL_CHANGE_GENERAL
    # the same fine-tune at a newer version is no model change
    assert classify_update("ada.1", "1", "ada.1", "2", from_is_fine_tuned=True,
                           target_is_fine_tuned=True) is S.MINOR_VERSION


# ---------------------------------------------------------------------------------------------- deployment option

@pytest.mark.parametrize(
    ("from_sku", "target_skus", "scope"),
    [
        ("Standard", ["provisioned"], S.DEPLOYMENT_OPTION_CHANGE),
        ("GlobalStandard", ["Provisioned"], S.DEPLOYMENT_OPTION_CHANGE),
        ("DataZoneStandard", ["provisioned"], S.DEPLOYMENT_OPTION_CHANGE),
        ("ProvisionedManaged", ["Standard", "GlobalStandard"], S.DEPLOYMENT_OPTION_CHANGE),
        ("GlobalBatch", ["GlobalStandard"], S.DEPLOYMENT_OPTION_CHANGE),
        ("Developer", ["GlobalStandard"], S.DEPLOYMENT_OPTION_CHANGE),
        ("GlobalStandard", ["Standard"], S.MINOR_VERSION),  # within the Standard family
        ("Standard", ["standard", "provisioned"], S.MINOR_VERSION),
        ("GlobalProvisionedManaged", ["provisioned"], S.MINOR_VERSION),
        ("GlobalBatch", ["GlobalBatch", "GlobalStandard"], S.MINOR_VERSION),
        ("SomethingNew", ["Standard"], S.MINOR_VERSION),  # an unknown SKU proves nothing
        ("Standard", ["SomethingNew"], S.DEPLOYMENT_OPTION_CHANGE),
        ("Standard", [], S.MINOR_VERSION),  # SKUs not known
        ("Standard", None, S.MINOR_VERSION),
        (None, ["provisioned"], S.MINOR_VERSION),
    ],
)
def test_deployment_option_change_by_sku_family(from_sku: str | None, target_skus: list[str] | None,
                                                scope: UpdateScope) -> None:
    assert classify_update("gpt-4o", "2024-08-06", "gpt-4o", "2024-11-20", from_sku=from_sku,
                           target_skus=target_skus) is scope


def test_what_wins_over_a_deployment_option_change() -> None:
    skus = ["provisioned"]
    # it wins over the model rules ...
    assert classify_update("gpt-4", "0613", "DeepSeek-R1", "1", from_sku="Standard", target_skus=skus) \
        is S.DEPLOYMENT_OPTION_CHANGE
    assert classify_update("gpt-4", "0613", "Codestral-2501", "2", from_sku="Standard", target_skus=skus) \
        is S.DEPLOYMENT_OPTION_CHANGE
    # ... but an older release is no upgrade at all, and an override has the last word
    assert classify_update("gpt-4o", "2024-11-20", "gpt-4o", "2024-08-06", from_sku="Standard",
                           target_skus=skus) is S.UNKNOWN
    overrides = parse_scope_overrides({"gpt-4 -> DeepSeek-*": "model-change-general"})
    assert classify_update("gpt-4", "0613", "DeepSeek-R1", "1", overrides, from_sku="Standard",
                           target_skus=skus) is S.MODEL_CHANGE_GENERAL


def test_sku_families() -> None:
    assert {sku_family(s) for s in ("Standard", "GlobalStandard", "DataZoneStandard")} == {"standard"}
    assert {sku_family(s) for s in ("ProvisionedManaged", "GlobalProvisionedManaged", "DataZoneProvisionedManaged",
                                    "provisioned", "Provisioned")} == {"provisioned"}
    assert {sku_family(s) for s in ("GlobalBatch", "DataZoneBatch")} == {"batch"}
    assert sku_family("Developer") == "developer"
    assert sku_family("Mystery") is SkuFamily.UNKNOWN and sku_family(None) is SkuFamily.UNKNOWN


# ---------------------------------------------------------------------------------------------- versions

@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("0301", "0613", -1),
        ("0613", "1106", -1),
        ("1106", "0125", -1),  # 0125 is January 2024
        ("0125", "0613", 1),
        ("0613", "0613", 0),
        ("0914", "1106", -1),
        ("1106-Preview", "0125-Preview", -1),
        ("0613", "turbo-2024-04-09", -1),  # a four-digit version is a 2023/24 day
        ("0125", "2024-01-25", 0),
        ("2024-05-13", "2024-08-06", -1),
        ("2024-11-20", "2024-08-06", 1),
        ("turbo-2024-04-09", "2024-04-09", 0),
        ("2024-12-01-preview", "2025-06-03", -1),
        ("1", "2", -1),
        ("2", "1", 1),
        ("001", "1", 0),
        ("3.0", "3.1", -1),
        ("3", "3.0", 0),
        ("10", "9", 1),
        ("1", "2024-05-13", None),  # kinds that do not mix
        ("1", "0613", None),
        ("vision-preview", "turbo-2024-04-09", None),
        ("2024-13-45", "2024-01-01", None),
        (None, "1", None),
        ("", "1", None),
    ],
)
def test_compare_versions(a: str | None, b: str | None, expected: int | None) -> None:
    assert compare_versions(a, b) == expected
    assert compare_versions(b, a) == (None if expected is None else -expected)


@pytest.mark.parametrize(
    ("from_version", "to_version", "names", "expected"),
    [
        ("0613", "0301", {}, True),
        ("0613", "0125", {}, False),
        ("2024-11-20", "2024-08-06", {}, True),
        ("2", "1", {}, True),
        ("1", "2024-05-13", {}, False),  # unorderable: not known to be older
        ("2024-08-06", "2024-08-06", {}, False),
        ("2024-08-06", "2024-07-18", {"from_name": "gpt-4o", "to_name": "gpt-4o-mini"}, False),  # another model
        ("2024-08-06", "2024-07-18", {"from_name": "gpt-4o", "to_name": "gpt-4o"}, True),
        ("2", "1", {"from_name": "Codestral-2501", "to_name": "Codestral-2405"}, True),  # the name's stamp decides
        ("1", "2", {"from_name": "Codestral-2501", "to_name": "Codestral-2405"}, True),
        ("2", "1", {"from_name": "Codestral-2405", "to_name": "Codestral-2501"}, False),
        ("0613", "0301", {"from_name": "gpt-35-turbo-16k", "to_name": "gpt-35-turbo"}, True),
        ("turbo-2024-04-09", "0613", {"from_name": "gpt-4", "to_name": "GPT-4"}, True),
        ("2024-08-06", "2024-11-20", {"from_name": "gpt-4o", "to_name": "gpt-4o"}, False),
    ],
)
def test_is_downgrade(from_version: str, to_version: str, names: dict[str, str], expected: bool) -> None:
    assert is_downgrade(from_version, to_version, **names) is expected


# ---------------------------------------------------------------------------------------------- overrides

@pytest.mark.parametrize("scope", [s for s in UpdateScope if s is not UpdateScope.UNKNOWN])
def test_an_override_can_name_every_scope(scope: UpdateScope) -> None:
    overrides = parse_scope_overrides({"gpt-4o -> gpt-4o": scope.value.upper(), "whisper -> *": scope.value})
    assert classify_update("gpt-4o", "2024-08-06", "gpt-4o", "2024-11-20", overrides) is scope
    assert classify_update("whisper", "001", "gpt-4o-transcribe", "2025-03-20", overrides) is scope


def test_overrides_match_globs_case_blind_and_bad_ones_are_named() -> None:
    overrides = parse_scope_overrides({"whisper -> gpt-4o-*": "model-change-specialized",
                                       "GPT-4 -> gpt-4o": "Variant"})
    assert classify_update("whisper", "001", "gpt-4o-transcribe", "2025-03-20", overrides) \
        is S.MODEL_CHANGE_SPECIALIZED
    assert classify_update("gpt-4", "0613", "gpt-4o", "2024-05-13", overrides) is S.VARIANT
    assert classify_update("gpt-4", "0613", "gpt-4o-mini", "2024-07-18", overrides) is S.VARIANT  # not matched
    with pytest.raises(ValueError, match="FROM -> TO"):
        parse_scope_overrides({"gpt-4": "variant"})
    with pytest.raises(ValueError, match="unknown scope 'huge'"):
        parse_scope_overrides({"a -> b": "huge"})


def test_the_docstring_table_examples_hold() -> None:
    """Each row of the table in the module's docstring (the README shows the same) classifies its own example."""
    import re

    from daemon.lifecycle import scope as module

    rows = [line.split("|")[1:-1] for line in (module.__doc__ or "").splitlines() if re.match(r"^\| \d", line)]
    assert [int(row[0]) for row in rows] == list(range(1, 14))
    checked = 0
    for number, _, scope_text, example in rows:
        if int(number) in (1, 3):  # an override, SKUs: tested above
            continue
        pair = re.match(r"^\s*(\S+) (\S+) -> (\S+) (\S+)\s*(?:\(|$)", example)
        assert pair is not None, example
        scope = UpdateScope(scope_text.split("(")[0].strip())
        assert classify_update(*pair.groups()) is scope, example
        checked += 1
    assert checked == 11
