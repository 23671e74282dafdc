"""Curated retirement dates (Microsoft's retirement tables): which rows match a deployment, the earliest date wins,
where each date comes from, when catalog and table conflict, and how the rows are read and refused."""

from __future__ import annotations

import csv
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from daemon.cli import main
from daemon.config import ConfigError, curated_dates, load_config, parse_config
from daemon.dates_file import DatesFileError, parse_dates_csv, read_dates_file
from daemon.lifecycle import CatalogIndex, Consequence, CuratedDate, CuratedDates, DateSource, assess
from daemon.lifecycle.assess import DateStatus
from daemon.lifecycle.curated import combine, earliest, sku_matches
from daemon.records import CatalogModel, Deployment, SkuRetirement, location_scope
from daemon.report import status_rows, to_table

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "config" / "retirement-dates.csv"
TABLE = "https://learn.microsoft.com/en-us/azure/foundry/openai/concepts/model-retirement-schedule"
ACCOUNT = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.CognitiveServices/accounts/a"
EASTUS = location_scope("eastus")
TODAY = date(2026, 5, 1)


def dep(name: str = "gpt-4o", version: str = "2024-05-13", sku: str | None = "Standard",
        location: str = "eastus", option: str = "NoAutoUpgrade", fmt: str = "OpenAI") -> Deployment:
    return Deployment(id=f"{ACCOUNT}/deployments/d", account_id=ACCOUNT, subscription_id="s", resource_group="rg",
                      account_name="a", location=location, name="d", model_format=fmt, model_name=name,
                      model_version=version, sku_name=sku, upgrade_option=option, provisioning_state="Succeeded")


def row(retirement: date, model: str = "gpt-4o", version: str = "2024-05-13", sku: str | None = None,
        region: str | None = None, source: str = TABLE) -> CuratedDate:
    return CuratedDate(model=model, version=version, retirement=retirement, source=source, sku=sku, region=region)


def catalog(retires: date | None, *, sku_dates: tuple[SkuRetirement, ...] = (), lifecycle: str = "GenerallyAvailable",
            name: str = "gpt-4o", version: str = "2024-05-13") -> CatalogModel:
    return CatalogModel(scope=EASTUS, format="OpenAI", name=name, version=version, lifecycle_status=lifecycle,
                        inference_retirement=retires, deprecation_status="Planned" if retires else None,
                        sku_retirements=sku_dates)


# -- which rows match -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("curated", "deployment", "matches"),
    [
        (row(date(2026, 6, 30), model="GPT-4O"), dep(), True),  # model names compare case-insensitively
        (row(date(2026, 6, 30), model="gpt-4o-mini"), dep(), False),  # a name is not a prefix
        (row(date(2026, 6, 30), version="2024-*"), dep(), True),
        (row(date(2026, 6, 30), version="2024-08-*"), dep(), False),
        (row(date(2026, 6, 30), version="*"), dep(version="2024-11-20"), True),
        (row(date(2026, 6, 30), version="0125-PREVIEW"), dep(version="0125-preview"), True),
        (row(date(2026, 6, 30), sku="standard"), dep(sku="Standard"), True),  # SKU names too
        (row(date(2026, 6, 30), sku="Standard"), dep(sku="GlobalStandard"), False),  # Standard is a SKU, not a family
        (row(date(2026, 6, 30), sku="provisioned"), dep(sku="DataZoneProvisionedManaged"), True),  # a family word
        (row(date(2026, 6, 30), sku="provisioned"), dep(sku="GlobalStandard"), False),
        (row(date(2026, 6, 30), sku="batch"), dep(sku="GlobalBatch"), True),
        (row(date(2026, 6, 30), sku="Global*"), dep(sku="GlobalProvisionedManaged"), True),  # a glob
        (row(date(2026, 6, 30), sku="Global*"), dep(sku=None), False),
        (row(date(2026, 6, 30), sku="Standard"), dep(sku=None), False),
        (row(date(2026, 6, 30), region="East US"), dep(location="eastus"), True),  # as people write regions
        (row(date(2026, 6, 30), region="usgov*"), dep(location="usgovvirginia"), True),
        (row(date(2026, 6, 30), region="westeurope"), dep(location="eastus"), False),
    ],
)
def test_which_rows_apply(curated: CuratedDate, deployment: Deployment, matches: bool) -> None:
    assert curated.applies_to(deployment) is matches
    assert (CuratedDates([curated]).earliest(deployment) is curated) is matches


def test_sku_family_words_and_globs() -> None:
    assert sku_matches("developer", "Developer")
    assert not sku_matches("provisioned", None)
    assert not sku_matches("[", "Standard")  # a broken glob matches nothing rather than failing


def test_earliest_row_wins_and_the_first_written_on_a_tie() -> None:
    late, early, tie = row(date(2026, 10, 1)), row(date(2026, 3, 31), sku="Standard"), row(date(2026, 3, 31))
    dates = CuratedDates([late, early, tie, row(date(2025, 1, 1), version="2024-08-06")])
    assert dates.matching(dep()) == [late, early, tie]
    assert dates.earliest(dep()) is early
    assert dates.earliest(dep(sku="GlobalStandard")) is tie, "the Standard row does not apply to GlobalStandard"
    assert earliest([]) is None
    assert dates.earliest(dep(name="o1")) is None


# -- catalog and curated together -----------------------------------------------------------------------------------


def test_curated_fills_in_where_the_catalog_is_silent() -> None:
    curated = row(date(2026, 10, 1))
    dated = combine(None, None, curated)
    assert (dated.day, dated.curated, dated.conflict) == (date(2026, 10, 1), curated, None)


def test_the_earlier_date_wins_and_the_catalog_on_a_tie() -> None:
    curated = row(date(2026, 6, 30))
    assert combine(date(2026, 12, 31), "inference", curated).curated is curated
    assert combine(date(2026, 6, 1), "sku", curated).day == date(2026, 6, 1)
    assert combine(date(2026, 6, 1), "sku", curated).curated is None
    tie = combine(date(2026, 6, 30), "inference", curated)
    assert (tie.day, tie.curated) == (date(2026, 6, 30), None)
    assert combine(date(2026, 6, 30), "inference", None).day == date(2026, 6, 30)


@pytest.mark.parametrize(("apart", "conflict"), [(0, False), (7, False), (8, True), (-8, True), (-7, False)])
def test_a_conflict_is_more_than_conflict_days_apart(apart: int, conflict: bool) -> None:
    curated = row(date(2026, 6, 30))
    dated = combine(curated.retirement + timedelta(days=apart), "inference", curated, conflict_days=7)
    assert (dated.conflict is not None) is conflict
    if dated.conflict is not None:
        assert dated.conflict.days == abs(apart)
        assert dated.conflict.catalog_date == curated.retirement + timedelta(days=apart)


@given(catalog_day=st.one_of(st.none(), st.dates(date(2024, 1, 1), date(2030, 1, 1))),
       curated_day=st.one_of(st.none(), st.dates(date(2024, 1, 1), date(2030, 1, 1))),
       days=st.integers(0, 400))
def test_combine_takes_the_earliest_date_and_flags_every_wide_gap(catalog_day: date | None,
                                                                  curated_day: date | None, days: int) -> None:
    curated = row(curated_day) if curated_day else None
    dated = combine(catalog_day, "inference", curated, days)
    known = [day for day in (catalog_day, curated_day) if day is not None]
    assert dated.day == (min(known) if known else None)
    both = catalog_day is not None and curated_day is not None
    assert (dated.conflict is not None) == (both and abs((curated_day - catalog_day).days) > days)  # type: ignore[operator]
    assert (dated.curated is not None) == (curated_day is not None and (catalog_day is None
                                                                        or curated_day < catalog_day))


def test_conflict_words_name_both_dates_and_the_table() -> None:
    conflict = combine(date(2026, 12, 31), "inference", row(date(2026, 6, 30))).conflict
    assert conflict is not None
    assert conflict.words == (f"the catalog says 2026-12-31, Microsoft's retirement table says 2026-06-30 ({TABLE})")
    other = combine(date(2026, 12, 31), "inference", row(date(2026, 6, 30), source="https://wiki.contoso.example/x"))
    assert other.conflict is not None and "the retirement table says 2026-06-30" in other.conflict.words
    sneaky = combine(date(2026, 12, 31), "inference", row(date(2026, 6, 30), source="https://notmicrosoft.com/x"))
    assert sneaky.conflict is not None and "Microsoft" not in sneaky.conflict.words


# -- assess with curated dates --------------------------------------------------------------------------------------


def test_assess_takes_an_earlier_curated_date_with_its_source() -> None:
    index = CatalogIndex([catalog(date(2026, 12, 31))], CuratedDates([row(date(2026, 6, 30))]))
    assessment = assess(dep(), index, TODAY)
    assert assessment.retirement_date == assessment.strikes_on == date(2026, 6, 30)
    assert assessment.consequence is Consequence.OUTAGE
    assert assessment.date_source is DateSource.CURATED and assessment.date_url == TABLE
    assert assessment.date_status is DateStatus.PUBLISHED
    assert assessment.date_conflict is not None and assessment.date_conflict.catalog_date == date(2026, 12, 31)


def test_assess_keeps_an_earlier_catalog_date_and_still_shows_the_conflict() -> None:
    sku_date = (SkuRetirement("Standard", date(2026, 3, 31)),)
    index = CatalogIndex([catalog(date(2026, 12, 31), sku_dates=sku_date)], CuratedDates([row(date(2026, 6, 30))]))
    assessment = assess(dep(), index, TODAY)
    assert assessment.retirement_date == date(2026, 3, 31)
    assert assessment.date_source is DateSource.SKU and assessment.date_url is None
    assert assessment.date_status is DateStatus.CONFIRMED
    assert assessment.date_conflict is not None and assessment.date_conflict.catalog_source == "sku"


def test_conflict_days_come_from_the_dates() -> None:
    wide = CatalogIndex([catalog(date(2026, 7, 30))], CuratedDates([row(date(2026, 6, 30))], conflict_days=30))
    assert assess(dep(), wide, TODAY).date_conflict is None
    narrow = CatalogIndex([catalog(date(2026, 7, 30))], CuratedDates([row(date(2026, 6, 30))], conflict_days=29))
    assert assess(dep(), narrow, TODAY).date_conflict is not None


def test_a_curated_date_dates_a_model_the_catalog_does_not_list() -> None:
    index = CatalogIndex([], CuratedDates([row(date(2026, 5, 14), model="Cohere-rerank-v3.5", version="1")]))
    assessment = assess(dep("Cohere-rerank-v3.5", "1", sku="GlobalStandard", fmt="Cohere"), index, TODAY)
    assert not assessment.catalog_found
    assert (assessment.consequence, assessment.strikes_on, assessment.days_left) == (
        Consequence.OUTAGE, date(2026, 5, 14), 13)
    assert assessment.manual_migration and assessment.date_url == TABLE
    assert assess(dep("Cohere-rerank-v3.5", "1"), CatalogIndex([]), TODAY).consequence is Consequence.NONE


def test_a_curated_date_ends_a_pending_retirement() -> None:
    legacy = catalog(None, lifecycle="Legacy")
    assert assess(dep(), CatalogIndex([legacy]), TODAY).date_pending
    dated = assess(dep(), CatalogIndex([legacy], CuratedDates([row(date(2026, 6, 30))])), TODAY)
    assert not dated.date_pending and dated.strikes_on == date(2026, 6, 30) and dated.date_conflict is None


@pytest.mark.parametrize(
    ("target_row", "refused"),
    [
        (row(date(2026, 9, 30), model="gpt-4.1", version="2025-04-14"), True),  # the table retires it first
        (row(date(2026, 9, 30), model="gpt-4.1", version="*", sku="Standard", region="East US"), True),
        (row(date(2027, 3, 31), model="gpt-4.1", version="2025-04-14"), False),  # later: a fine target
        (row(date(2026, 9, 30), model="gpt-4.1", version="2025-04-14", sku="provisioned"), False),  # another SKU
        (row(date(2026, 9, 30), model="gpt-4.1", version="2025-04-14", region="westeurope"), False),
    ],
)
def test_a_replacement_the_table_retires_first_is_refused(target_row: CuratedDate, refused: bool) -> None:
    """The catalog names gpt-4.1 2025-04-14 as the replacement and gives it no date; a curated row that would
    date the deployment once moved there (same SKU and region) and falls before the deployment's own retirement
    makes it no replacement: Azure's upgrade would land on a model that is gone first."""
    deployed = replace(catalog(date(2026, 12, 31)), replacement_model="gpt-4.1", replacement_version="2025-04-14")
    target = catalog(None, name="gpt-4.1", version="2025-04-14")
    assessment = assess(dep(option="OnceCurrentVersionExpired"),
                        CatalogIndex([deployed, target], CuratedDates([target_row])), TODAY)
    if not refused:
        assert (assessment.consequence, assessment.replacement_model) == (Consequence.FORCED_UPGRADE, "gpt-4.1")
        return
    assert (assessment.consequence, assessment.replacement_model) == (Consequence.OUTAGE, None)
    assert assessment.replacement_refused == ("gpt-4.1 2025-04-14 retires first, on 2026-09-30 "
                                              "(Microsoft's retirement table)")
    assert assessment.retirement_date == date(2026, 12, 31), "the deployment's own date is the catalog's"


def test_a_later_curated_date_does_not_revive_a_model_the_catalog_calls_retired() -> None:
    retired = catalog(None, lifecycle="Deprecated")  # in this API: retired, every call fails
    future = assess(dep(), CatalogIndex([retired], CuratedDates([row(date(2026, 6, 30))])), TODAY)
    assert future.struck and future.consequence is Consequence.OUTAGE
    assert (future.strikes_on, future.days_left, future.retirement_date) == (None, None, date(2026, 6, 30))
    past = assess(dep(), CatalogIndex([retired], CuratedDates([row(date(2026, 4, 1))])), TODAY)
    assert past.struck and (past.strikes_on, past.days_left) == (date(2026, 4, 1), -30)
    dated = catalog(date(2026, 12, 31), lifecycle="Deprecated")
    ahead = assess(dep(), CatalogIndex([dated], CuratedDates([row(date(2026, 6, 30))])), TODAY)
    assert not ahead.struck and ahead.strikes_on == date(2026, 6, 30), "as with a future catalog date"


def test_without_curated_dates_nothing_changes() -> None:
    plain = assess(dep(), CatalogIndex([catalog(date(2026, 12, 31))]), TODAY)
    empty = assess(dep(), CatalogIndex([catalog(date(2026, 12, 31))], CuratedDates()), TODAY)
    assert plain == empty and plain.date_source is DateSource.INFERENCE and plain.date_conflict is None


def test_status_names_the_source_url_and_the_conflict() -> None:
    rows = status_rows([dep()], [catalog(date(2026, 12, 31))], TODAY, dates=CuratedDates([row(date(2026, 6, 30))]))
    assert rows[0].date_source == TABLE and rows[0].date_status == "published"
    assert rows[0].date_conflict == ("the catalog says 2026-12-31, Microsoft's retirement table says 2026-06-30 "
                                     f"({TABLE})")
    table = to_table(rows)
    assert "2026-06-30*!" in table and "'!': the catalog and a curated date disagree" in table
    assert "gpt-4o 2024-05-13: the catalog says 2026-12-31" in table
    plain = status_rows([dep()], [catalog(date(2026, 12, 31))], TODAY)
    assert plain[0].date_source == "inference" and plain[0].date_conflict is None


# -- the dates file -------------------------------------------------------------------------------------------------

HEADER = "model,version,sku,region,retirement,source,note\n"


def test_the_csv_skips_comments_and_blank_lines_and_knows_its_lines() -> None:
    text = (f"# copied 2026-09-02\n\n{HEADER}gpt-4o,2024-05-13,,,2026-10-01,{TABLE},Deprecated\n"
            f"# a comment between rows\n o1 ,2024-12-17,Standard,East US,2026-10-21,{TABLE},\"a, b\"\n")
    first, second = parse_dates_csv(text, "dates.csv")
    assert (first.model, first.sku, first.region, first.note) == ("gpt-4o", None, None, "Deprecated")
    assert first.origin == "dates.csv line 4"
    assert (second.model, second.sku, second.region, second.note, second.origin) == (
        "o1", "Standard", "East US", "a, b", "dates.csv line 6")


def test_optional_columns_may_be_left_out_and_in_any_order() -> None:
    (only,) = parse_dates_csv(f"source,retirement,version,model\n{TABLE},2026-05-14,1,Cohere-rerank-v3.5\n", "f")
    assert (only.model, only.version, only.retirement, only.sku) == ("Cohere-rerank-v3.5", "1", date(2026, 5, 14),
                                                                     None)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("# only comments\n", "f.csv: no header line"),
        ("model,version,retires,source\n", "f.csv: line 1: unknown column(s) 'retires'"),
        ("model,version,source\n", "f.csv: line 1: missing column(s) retirement"),
        ("model,model,version,retirement,source\n", "f.csv: line 1: column(s) named twice: model"),
        (f"{HEADER}gpt-4o,2024-05-13,,,30/06/2026,{TABLE},\n", "f.csv: line 2: retirement: not a date: "
                                                               "write YYYY-MM-DD (got '30/06/2026')"),
        (f"{HEADER}gpt-4o,2024-05-13,,,2026-02-30,{TABLE},\n", "f.csv: line 2: retirement: no such day"),
        (f"{HEADER}gpt-4o,2024-05-13,,,2099-12-31,{TABLE},\n", "f.csv: line 2: retirement: 2099-12-31 is "
                                                               "Azure's way of saying 'no date'"),
        (f"{HEADER}gpt-4o,,,,2026-06-30,{TABLE},\n", "f.csv: line 2: version: cannot be empty: "
                                                     "write * for every version"),
        (f"{HEADER},1,,,2026-06-30,{TABLE},\n", "f.csv: line 2: model: cannot be empty"),
        (f"{HEADER}gpt-4o,1,,,2026-06-30,learn.microsoft.com/x,\n", "f.csv: line 2: source: must be the "
                                                                    "URL"),
        (f"{HEADER}gpt-4o,1,,,2026-06-30,{TABLE},a,b\n", "f.csv: line 2: 8 fields, the header names 7"),
    ],
    ids=["no-header", "unknown-column", "missing-column", "twice", "bad-date", "no-such-day", "no-date-sentinel",
         "empty-version", "empty-model", "not-a-url", "too-many-fields"],
)
def test_a_bad_dates_file_names_the_file_the_line_and_the_problem(text: str, expected: str) -> None:
    with pytest.raises(DatesFileError) as error:
        parse_dates_csv(text, "f.csv")
    assert expected in str(error.value)


def test_every_bad_row_is_reported_not_just_the_first() -> None:
    text = f"{HEADER}gpt-4o,,,,2026-06-30,{TABLE},\ngpt-4o,1,,,2026-06-30,{TABLE},\no1,1,,,tomorrow,{TABLE},\n"
    with pytest.raises(DatesFileError) as error:
        parse_dates_csv(text, "f.csv")
    assert [problem.split(": ")[1] for problem in error.value.problems] == ["line 2", "line 4"]


def test_file_errors(tmp_path: Path) -> None:
    with pytest.raises(DatesFileError, match="file not found"):
        read_dates_file(tmp_path / "missing.csv")
    with pytest.raises(DatesFileError, match="is a directory"):
        read_dates_file(tmp_path)
    latin = tmp_path / "latin.csv"
    latin.write_bytes(HEADER.encode() + f"caf\xe9,1,,,2026-06-30,{TABLE},\n".encode("latin-1"))
    with pytest.raises(DatesFileError, match="not UTF-8"):
        read_dates_file(latin)
    bom = tmp_path / "excel.csv"
    bom.write_bytes(b"\xef\xbb\xbf" + f"{HEADER}gpt-4o,1,,,2026-06-30,{TABLE},\n".encode())
    assert read_dates_file(bom)[0].model == "gpt-4o"


# -- the config -----------------------------------------------------------------------------------------------------


def test_dates_file_is_relative_to_the_config_and_rows_add_to_it(tmp_path: Path) -> None:
    (tmp_path / "tables").mkdir()
    (tmp_path / "tables" / "dates.csv").write_text(f"{HEADER}gpt-4o,2024-05-13,,,2026-10-01,{TABLE},\n")
    path = tmp_path / "retirewatch.toml"
    path.write_text(f"""[dates]
dates_file = "tables/dates.csv"
conflict_days = 14

[[dates.rows]]
model = "o1"
version = "2024-12-17"
sku = "provisioned"
retirement = 2026-07-15
source = "{TABLE}"
note = "copied 2025-12-01"
""")
    config = load_config(path, env={})
    file_row, toml_row = config.curated_dates
    assert (file_row.model, file_row.retirement) == ("gpt-4o", date(2026, 10, 1))
    assert file_row.origin == f"{tmp_path / 'tables' / 'dates.csv'} line 2"
    assert (toml_row.model, toml_row.sku, toml_row.retirement) == ("o1", "provisioned", date(2026, 7, 15))
    assert toml_row.origin == f"{path} dates.rows[0]"
    dates = curated_dates(config)
    assert len(dates) == 2 and dates.conflict_days == 14


def test_no_dates_by_default() -> None:
    config = load_config(None, env={})
    assert config.dates.dates_file is None and config.curated_dates == () and curated_dates(config).conflict_days == 7


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"dates": {"conflict_days": -1}}, "f.toml: dates.conflict_days: Input should be greater than or equal to 0"),
        ({"dates": {"dates_file": " "}}, "f.toml: dates.dates_file: Value error, cannot be blank"),
        ({"dates": {"rows": [{"model": "gpt-4o", "version": "1", "retirement": "2026-06-30"}]}},
         "f.toml: dates.rows.0.source: Field required"),
        ({"dates": {"rows": [{"model": "gpt-4o", "version": "1", "retirement": "2026-06-30", "source": TABLE,
                              "copied": "x"}]}}, "f.toml: dates.rows.0.copied: unknown key"),
        ({"dates": {"rows": [{"model": "gpt-4o", "version": "1", "retirement": 20260630, "source": TABLE}]}},
         "f.toml: dates.rows.0.retirement: Value error, not a date"),
        ({"curated_dates": []}, "f.toml: curated_dates: unknown key"),
    ],
)
def test_bad_dates_config_names_the_key(raw: dict[str, object], expected: str) -> None:
    with pytest.raises(ConfigError) as error:
        parse_config(raw, "f.toml")
    assert expected in str(error.value)


def test_a_bad_dates_file_exits_2_naming_file_and_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "dates.csv").write_text(f"# copied 2026-09-02\n{HEADER}gpt-4o,2024-05-13,,,2026-10-01,{TABLE},\n"
                                        f"o1,2024-12-17,,,2026-21-10,{TABLE},\n")
    config = tmp_path / "retirewatch.toml"
    config.write_text('[dates]\ndates_file = "dates.csv"\n')
    assert main(["status", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("retirewatch: config error: ")
    assert f"{tmp_path / 'dates.csv'}: line 4: retirement: no such day: 2026-21-10" in err
    assert f"(dates.dates_file in {config})" in err and "Traceback" not in err


# -- the shipped starting file --------------------------------------------------------------------------------------


def test_the_shipped_file_loads_and_every_row_says_where_and_when_it_was_copied() -> None:
    rows = read_dates_file(SHIPPED)
    assert len(rows) >= 80
    header = [line for line in SHIPPED.read_text().splitlines() if line.startswith("#")]
    assert any(TABLE in line for line in header) and any("2026-09-02" in line for line in header)
    for curated in rows:
        assert curated.source == TABLE, curated.origin
        assert curated.note and "copied 2026-09-02" in curated.note, curated.origin
    by_key = {(r.model, r.version): r.retirement for r in rows}
    assert by_key[("gpt-4o", "2024-05-13")] == date(2026, 10, 1)
    assert by_key[("o3-mini", "2025-01-31")] == date(2026, 10, 1)
    assert by_key[("Cohere-rerank-v3.5", "1")] == date(2026, 5, 14)
    assert by_key[("Meta-Llama-3.1-8B-Instruct", "*")] == date(2026, 6, 13)
    assert not any(r.model == "gpt-realtime-mini" for r in rows), "listed twice with two dates on the page"
    with SHIPPED.open() as handle:
        data = [line for line in handle if not line.startswith("#")]
    assert next(csv.reader(data[:1])) == ["model", "version", "sku", "region", "retirement", "source", "note"]
