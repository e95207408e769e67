"""The anonymisation gate: identifier-like column names and identifiers inside values."""

import datetime as dt
import hashlib
import itertools
import json
import logging
import random
import time
from pathlib import Path

import pytest

from borderx.validation import gate
from borderx.validation import (
    FailedExpectation,
    SuiteError,
    ValidationOutcome,
    load_suite,
    validate_extract,
)

EXPECTATIONS = Path(__file__).resolve().parents[2] / "expectations"
FLOWS_SUITE = EXPECTATIONS / "traveller_flows.json"
GOODS_SUITE = EXPECTATIONS / "goods_crossings.json"

FLOWS_HEADER = [
    "period", "border_point", "direction", "nationality", "age_band", "sex", "travel_mode",
    "traveller_category", "travellers",
]
GOODS_HEADER = [
    "declaration_ref", "lodged_date", "customs_office", "procedure", "hs_code", "origin_country",
    "destination_country", "transport_mode", "gross_mass_kg", "statistical_value", "currency",
]
SECRET = "SECRETVALUE123"

NAMES_GATE = "expect_table_columns_to_not_be_identifiers"
VALUES_GATE = "expect_column_values_to_not_contain_identifiers"


def flows_row(i: int) -> dict:
    return {
        "period": f"2024-{i % 12 + 1:02d}-01",
        "border_point": "ZA-BEI",
        "direction": "ENTRY",
        "nationality": "ZAF",
        "age_band": ["0-17", "18-29", "30-44", "45-64", "65+", "UNK"][i // 12 % 6],
        "sex": ["F", "M", "X", "UNK"][i // 72 % 4],
        "travel_mode": "ROAD",
        "traveller_category": "VISITOR",
        "travellers": str(i * 3),
    }


def goods_row(i: int) -> dict:
    return {
        "declaration_ref": hashlib.blake2b(str(i).encode(), digest_size=16).hexdigest(),
        "lodged_date": f"2024-03-{i % 28 + 1:02d}",
        "customs_office": ["ZA-BEI", "ZA-LEB", "BW-RAM"][i % 3],
        "procedure": ["IMPORT", "EXPORT", "TRANSIT"][i % 3],
        "hs_code": ["870323", "100630", "271019"][i % 3],
        "origin_country": "ZA",
        "destination_country": "BW",
        "transport_mode": ["SEA", "ROAD", "AIR", "FIXED_INSTALLATION"][i % 4],
        "gross_mass_kg": f"{i * 12.5:.1f}",
        "statistical_value": f"{i * 1000 + 0.25:.2f}",
        "currency": "ZAR",
    }


def build(make, n: int, **changes_by_row) -> list[dict]:
    """n valid rows; changes_by_row maps "r<1-based row>" to the cells to override."""
    out = [make(i) for i in range(n)]
    for key, changes in changes_by_row.items():
        out[int(key[1:]) - 1].update(changes)
    return out


def write_csv(path: Path, header: list[str], data: list[dict]) -> Path:
    lines = [",".join(header)] + [",".join(row.get(c, "") for c in header) for row in data]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def gate_failures(outcome: ValidationOutcome) -> list[FailedExpectation]:
    return [f for f in outcome.failures if f.gate]


def only_gate_failure(outcome: ValidationOutcome) -> FailedExpectation:
    assert not outcome.success
    assert outcome.error is None
    found = gate_failures(outcome)
    assert len(found) == 1, [(f.expectation, f.column) for f in found]
    assert found[0].rule.startswith("anonymisation gate: ")
    return found[0]


def assert_no_leak(outcome: ValidationOutcome, secret: str = SECRET) -> None:
    assert secret not in json.dumps(outcome.to_dict(), ensure_ascii=False)
    assert secret not in str(outcome)
    assert secret not in repr(outcome)


# ------------------------------------------------------------------------------------------
# The suites carry the gate


@pytest.mark.parametrize(
    "suite_path, header, extra",
    [
        (FLOWS_SUITE, FLOWS_HEADER, {"age_band": {"date_of_birth"}}),
        (GOODS_SUITE, GOODS_HEADER, {"declaration_ref": {"document_number"}}),
    ],
)
def test_suites_carry_the_gate(suite_path, header, extra):
    data = json.loads(suite_path.read_text(encoding="utf-8"))
    gated = [e for e in data["expectations"] if e["meta"].get("gate") == "anonymisation"]
    assert [e["type"] for e in gated].count(NAMES_GATE) == 1
    kinds = {
        e["kwargs"]["column"]: set(e["kwargs"]["kinds"]) for e in gated if e["type"] == VALUES_GATE
    }
    assert set(kinds) == set(header)
    for column in header:
        assert kinds[column] == {"email", "phone", "mrz"} | extra.get(column, set())
    # Only the gate's own expectations are marked.
    assert {e["type"] for e in gated} == {NAMES_GATE, VALUES_GATE}
    suite = load_suite(suite_path)
    assert suite.to_json_dict() == data


def test_suite_with_unknown_identifier_kind_is_rejected(tmp_path):
    data = json.loads(FLOWS_SUITE.read_text(encoding="utf-8"))
    data["expectations"].append(
        {"type": VALUES_GATE, "kwargs": {"column": "sex", "kinds": ["email", "iban"]}, "meta": {}}
    )
    bad = tmp_path / "kinds.json"
    bad.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(SuiteError, match=f"kinds.json.*{VALUES_GATE}"):
        load_suite(bad)


# ------------------------------------------------------------------------------------------
# Column names


IDENTIFIER_NAMES = {
    "names": [
        "name", "first_name", "surname", "last_name", "family_name", "given_names", "full_name",
        "nom", "prénom", "Nom de famille", "nome", "apelido", "sobrenome", "nombre", "apellido",
        "Vorname", "Nachname", "naam", "van", "voornaam", "FirstName", "GIVEN-NAMES",
    ],
    "travel documents": [
        "passport", "passport_no", "PassportNumber", "document_number", "doc_no",
        "travel_document", "numéro_de_passeport", "passaporte", "pasaporte", "reisepass",
        "Reisepassnummer", "paspoort",
    ],
    "dates of birth": [
        "date_of_birth", "dob", "DOB", "birth_date", "birthdate", "DateOfBirth",
        "date_de_naissance", "data_de_nascimento", "fecha_de_nacimiento", "geburtsdatum",
        "geboortedatum",
    ],
    "national ids": [
        "national_id", "id_number", "nin", "ssn", "identity_number", "cni", "bi", "dni",
        "personalausweis", "numero_de_identidad", "person_id",
    ],
    "phones": [
        "phone", "telephone", "mobile", "msisdn", "cell", "cell_no", "téléphone", "telefone",
        "telefono", "Telefonnummer", "mobile_number", "PhoneNumber",
    ],
    "e-mail": [
        "email", "e_mail", "E-Mail", "courriel", "correo", "email_address", "E-Mail-Adresse",
    ],
    "addresses": [
        "address", "street", "adresse", "endereço", "dirección", "straße", "strasse", "adres",
        "Street Address", "postal_address",
    ],
    "traders": [
        "trader_name", "company_name", "importer_name", "exporter_name", "consignee",
        "consignor", "trader", "raison_sociale",
    ],
    "tax and EORI numbers": [
        "tax_id", "tin", "vat_number", "eori", "eori_number", "EORINumber", "nif", "nuit",
        "trader_tin", "numero_fiscal", "steuernummer",
    ],
}

LEGIT_COLUMNS = FLOWS_HEADER + GOODS_HEADER + [
    "cell_count", "mobile_units", "fiscal_year", "age_origin", "nationality_code",
    "direction_code", "country_of_birth", "id", "count", "border_point_code",
]


@pytest.mark.parametrize(
    "name", [n for names in IDENTIFIER_NAMES.values() for n in names]
)
def test_identifier_column_names_are_recognised(name):
    assert gate.identifier_term(name) is not None


@pytest.mark.parametrize("name", LEGIT_COLUMNS)
def test_legitimate_column_names_do_not_hit(name):
    assert gate.identifier_term(name) is None


# Each kind by name in at least three languages, through the whole validation.
NAME_CASES = [
    ("names", "surname"), ("names", "prénom"), ("names", "apellido"), ("names", "Nachname"),
    ("names", "naam"),
    ("travel documents", "passport_no"), ("travel documents", "numéro_de_passeport"),
    ("travel documents", "passaporte"), ("travel documents", "Reisepass"),
    ("dates of birth", "date_of_birth"), ("dates of birth", "date_de_naissance"),
    ("dates of birth", "data_de_nascimento"), ("dates of birth", "Geburtsdatum"),
    ("dates of birth", "geboortedatum"),
    ("national ids", "national_id"), ("national ids", "cni"), ("national ids", "bi"),
    ("national ids", "dni"), ("national ids", "personalausweis"),
    ("phones", "phone"), ("phones", "téléphone"), ("phones", "telefone"), ("phones", "telefono"),
    ("e-mail", "email"), ("e-mail", "courriel"), ("e-mail", "correo"), ("e-mail", "E-Mail"),
    ("addresses", "street_address"), ("addresses", "adresse"), ("addresses", "endereço"),
    ("addresses", "dirección"), ("addresses", "Straße"),
    ("traders", "trader_name"), ("traders", "consignee"), ("traders", "raison_sociale"),
    ("tax and EORI numbers", "eori_number"), ("tax and EORI numbers", "vat_number"),
    ("tax and EORI numbers", "nif"), ("tax and EORI numbers", "nuit"),
    ("tax and EORI numbers", "Steuernummer"),
]


@pytest.mark.parametrize("kind, name", NAME_CASES, ids=[n for _, n in NAME_CASES])
def test_identifier_column_fails_the_gate(tmp_path, kind, name):
    header = FLOWS_HEADER + [name]
    data = [dict(r, **{name: "x"}) for r in build(flows_row, 3)]
    outcome = validate_extract(write_csv(tmp_path / "named.csv", header, data), FLOWS_SUITE)
    failure = only_gate_failure(outcome)
    assert failure.expectation == NAMES_GATE
    assert failure.column is None
    assert failure.rows == []
    assert failure.observed == name
    assert failure.gate is True
    # The extra column breaks the layout too, which is not a gate rule.
    others = [(f.expectation, f.gate) for f in outcome.failures if f is not failure]
    assert others == [("expect_table_columns_to_match_ordered_list", False)]


def test_renamed_column_is_named_in_the_gate_failure(tmp_path):
    header = [("passport_no" if c == "nationality" else c) for c in FLOWS_HEADER]
    data = [dict(r, passport_no="ZAF") for r in build(flows_row, 3)]
    outcome = validate_extract(write_csv(tmp_path / "renamed.csv", header, data), FLOWS_SUITE)
    gated = gate_failures(outcome)
    assert [(f.expectation, f.column, f.observed) for f in gated] == [
        (NAMES_GATE, None, "passport_no"),
        # The value check on the column that vanished could not run, and says so.
        (VALUES_GATE, "nationality", "not evaluated: column missing from file"),
    ]
    # The gate is reported straight after the layout, before the checks the rename defeats.
    assert [f.expectation for f in outcome.failures[:2]] == [
        "expect_table_columns_to_match_ordered_list", NAMES_GATE,
    ]


def test_several_identifier_columns_are_all_named(tmp_path):
    header = FLOWS_HEADER + ["Vorname", "email", "eori"]
    data = [dict(r, Vorname="x", email="y", eori="z") for r in build(flows_row, 2)]
    failure = only_gate_failure(
        validate_extract(write_csv(tmp_path / "names.csv", header, data), FLOWS_SUITE)
    )
    assert failure.observed == "Vorname, email, eori"


def test_identifier_like_header_made_of_data_is_shown_by_position(tmp_path):
    # Without a header row, the first data row becomes the column names; a street address
    # there must be reported by position only.
    street = f"12 {SECRET} Street"
    data = build(flows_row, 3, r1={"border_point": street})
    path = tmp_path / "headerless.csv"
    lines = [",".join(r[c] for c in FLOWS_HEADER) for r in data]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    outcome = validate_extract(path, FLOWS_SUITE)
    names = [f for f in gate_failures(outcome) if f.expectation == NAMES_GATE]
    assert [f.observed for f in names] == ["column 2 (named like 'street')"]
    assert_no_leak(outcome)


# ------------------------------------------------------------------------------------------
# Values


FLOWS_VALUE_CASES = [
    ("email", "nationality", f"{SECRET.lower()}@example.org"),
    ("email in text", "traveller_category", f"contact {SECRET}.x@mail.gov.za please"),
    ("phone +27", "border_point", "+27 82 123 4567"),
    ("phone 0027", "travellers", "0027821234567"),
    ("phone separators", "border_point", "+27-82-123-4567"),
    ("phone brackets", "sex", "(+264) 81 123 4567"),
    ("mrz td3 line 1", "traveller_category", f"P<ZAF{SECRET}<<ANNA<MARIA<<<<<<<<<<<<<<<<<"),
    ("mrz td3 line 2", "nationality", "L898902C36UTO7408122F1204159ZE184226B<<<<<10"),
    ("mrz td1 line 1", "direction", "I<UTOD231458907<<<<<<<<<<<<<<<"),
    ("date of birth iso", "age_band", "1980-01-31"),
    ("date of birth dmy", "age_band", "31/01/1980"),
]


@pytest.mark.parametrize(
    "label, column, value", FLOWS_VALUE_CASES, ids=[c[0] for c in FLOWS_VALUE_CASES]
)
def test_identifier_value_fails_the_gate(tmp_path, label, column, value):
    data = build(flows_row, 5, r3={column: value})
    outcome = validate_extract(write_csv(tmp_path / "value.csv", FLOWS_HEADER, data), FLOWS_SUITE)
    failure = only_gate_failure(outcome)
    assert failure.expectation == VALUES_GATE
    assert failure.column == column
    assert failure.rows == [3]
    assert failure.unexpected_count == 1
    assert failure.gate is True
    assert all(not f.gate for f in outcome.failures if f is not failure)
    assert value not in json.dumps(outcome.to_dict(), ensure_ascii=False)


def test_document_number_in_declaration_ref_fails_the_gate(tmp_path):
    data = build(
        goods_row, 4, r2={"declaration_ref": "ZA1234567"}, r4={"declaration_ref": "A12345678"}
    )
    outcome = validate_extract(write_csv(tmp_path / "doc.csv", GOODS_HEADER, data), GOODS_SUITE)
    failure = only_gate_failure(outcome)
    assert failure.expectation == VALUES_GATE
    assert failure.column == "declaration_ref"
    assert failure.rows == [2, 4]
    assert failure.gate is True
    assert "travel-document number" in failure.rule


def test_identifier_values_in_goods_columns_fail_the_gate(tmp_path):
    data = build(goods_row, 4, r1={"currency": "x@y.com"}, r4={"hs_code": "+27 82 123 4567"})
    outcome = validate_extract(write_csv(tmp_path / "goods.csv", GOODS_HEADER, data), GOODS_SUITE)
    got = {f.column: f.rows for f in gate_failures(outcome)}
    assert got == {"hs_code": [4], "currency": [1]}


@pytest.mark.parametrize(
    "kind, value",
    [
        ("email", "a@b"),
        ("email", "@home"),
        ("phone", "65+"),
        ("phone", "1234567890"),
        ("phone", "0012"),
        ("phone", "1000000.00"),
        ("phone", "+12345"),
        ("phone", "2024-01-01"),
        ("mrz", "ASYLUM_SEEKER"),
        ("mrz", "A<<B"),
        ("mrz", "FIXED_INSTALLATION"),
        ("document_number", "ZA-BEI"),
        ("document_number", "870323"),
        ("document_number", "ABC1234567"),
        ("document_number", "A12345"),
        ("document_number", "A1234567890"),
        ("document_number", "ab12345678cdef0123456789abcdef01"),
        ("date_of_birth", "18-29"),
        ("date_of_birth", "65+"),
    ],
)
def test_value_patterns_leave_ordinary_values_alone(kind, value):
    assert not gate.identifier_mask([value], [kind]).any()


def test_hex_tokens_never_look_like_identifiers():
    tokens = [hashlib.sha256(str(i).encode()).hexdigest()[:32] for i in range(20000)]
    assert not gate.identifier_mask(tokens, gate.IDENTIFIER_KINDS).any()


def test_value_patterns_stay_on_the_vectorised_path():
    # pandas hands these to pyarrow's RE2 kernel only if they avoid Python-only syntax.
    import pandas as pd

    array = pd.Series(["ZA-BEI"], dtype="str").array
    if not hasattr(array, "_needs_python_regex"):
        pytest.skip("string storage without a pyarrow regex kernel")
    for kind, pattern in gate.COMPILED_PATTERNS.items():
        assert not array._needs_python_regex(pattern), kind
    for kinds in ALL_KIND_SETS:
        assert not array._needs_python_regex(gate.combined_pattern(kinds)), kinds


# Every non-empty set of kinds, in suite order and reversed.
ALL_KIND_SETS = [
    kinds
    for size in range(1, len(gate.IDENTIFIER_KINDS) + 1)
    for combo in itertools.combinations(gate.IDENTIFIER_KINDS, size)
    for kinds in (list(combo), list(reversed(combo)))
]

# Hits of every kind, near misses, ordinary values of both datasets, and each of them repeated.
MIXED_VALUES = (
    [value for _, _, value in FLOWS_VALUE_CASES]
    + ["ZA1234567", "A12345678", "x@y.com", "+27 82 123 4567 and 1980-01-31"]
    + ["a@b", "@home", "65+", "1234567890", "0012", "1000000.00", "+12345", "ASYLUM_SEEKER",
       "A<<B", "ZA-BEI", "870323", "ABC1234567", "A12345", "A1234567890", "18-29", "", " "]
    + list(flows_row(7).values()) + list(goods_row(11).values())
)


def reference_mask(values, kinds):
    """One search per cell and per kind: what the gate means, spelt out slowly."""
    return [
        isinstance(v, str) and any(gate.COMPILED_PATTERNS[k].search(v) for k in kinds)
        for v in values
    ]


@pytest.mark.parametrize("kinds", ALL_KIND_SETS, ids=["+".join(k) for k in ALL_KIND_SETS])
def test_distinct_value_matching_finds_what_each_kind_finds(kinds):
    import pandas as pd

    values = MIXED_VALUES * 3
    rng = random.Random(len(kinds))
    rng.shuffle(values)
    # GX hands the check a column without its empty cells, so its index has gaps.
    series = pd.Series(values, index=range(5, 5 + 2 * len(values), 2), dtype="str")
    got = gate.identifier_mask(series, kinds)
    assert got.index.equals(series.index)
    assert got.dtype == bool
    assert got.tolist() == reference_mask(values, kinds)
    assert got.any()


def test_distinct_value_matching_of_nulls_and_other_types():
    import pandas as pd

    values = [None, "x@y.com", float("nan"), "x@y.com", 27821234567, None, "ENTRY", pd.NA]
    got = gate.identifier_mask(pd.Series(values, dtype="object"), gate.IDENTIFIER_KINDS)
    assert got.tolist() == [False, True, False, True, False, False, False, False]
    assert gate.identifier_mask(pd.Series([], dtype="str"), ["email"]).tolist() == []
    assert gate.identifier_mask([None, None], ["email"]).tolist() == [False, False]
    # Numbers are matched as their text, which has no + or 00 in front.
    assert gate.identifier_mask(pd.Series([27, 27821234567, 27]), ["phone"]).tolist() == [
        False, False, False
    ]
    assert gate.identifier_mask(pd.Series(["0027821234567"] * 3 + [None]), ["phone"]).tolist() == [
        True, True, True, False
    ]


def test_repeated_identifier_is_reported_on_every_row(tmp_path):
    dob = "1980-01-31"
    data = build(
        flows_row, 60, r3={"age_band": dob}, r4={"age_band": ""}, r5={"age_band": ""},
        r41={"age_band": dob}, r60={"age_band": dob},
    )
    outcome = validate_extract(write_csv(tmp_path / "dob.csv", FLOWS_HEADER, data), FLOWS_SUITE)
    failure = only_gate_failure(outcome)
    assert failure.column == "age_band"
    assert failure.rows == [3, 41, 60]
    assert failure.unexpected_count == 3
    assert dob not in json.dumps(outcome.to_dict(), ensure_ascii=False)


def test_legitimate_files_of_both_datasets_pass(tmp_path):
    # 288 is every distinct key flows_row can make.
    flows_csv = write_csv(tmp_path / "f.csv", FLOWS_HEADER, build(flows_row, 288))
    goods_csv = write_csv(tmp_path / "g.csv", GOODS_HEADER, build(goods_row, 2000))
    flows = validate_extract(flows_csv, FLOWS_SUITE)
    goods = validate_extract(goods_csv, GOODS_SUITE)
    assert flows.success, flows.failures
    assert goods.success, goods.failures


def test_demo_samples_pass_the_gate(tmp_path):
    from borderx.dev import samples

    start = dt.date(2026, 11, 1)
    flows = samples.write_csv(
        tmp_path / "flows.csv", samples.TRAVELLER_FLOWS_COLUMNS,
        samples.traveller_flows_rows(["ZA-BEI", "BW-MART"], start, 14, seed=1, small_every=9),
    )
    goods = samples.write_csv(
        tmp_path / "goods.csv", samples.GOODS_CROSSINGS_COLUMNS,
        samples.goods_crossings_rows(["ZA-BEI", "ZA-LEB"], start, 30, seed=5),
    )
    for path, suite in ((flows, FLOWS_SUITE), (goods, GOODS_SUITE)):
        outcome = validate_extract(path, suite)
        assert gate_failures(outcome) == []
        assert outcome.success, outcome.failures


# ------------------------------------------------------------------------------------------
# Several gate rules at once, and nothing leaks


def test_several_gate_rules_are_all_reported(tmp_path):
    header = FLOWS_HEADER + ["given_names"]
    data = build(
        flows_row,
        6,
        r1={"nationality": f"{SECRET}@example.org"},
        r3={"border_point": "+27 82 123 4567"},
        r4={"age_band": "1980-01-31"},
        r5={"traveller_category": f"P<ZAF{SECRET}<<ANNA<<<<<<<<<<<<<<<<<<<<<<<<"},
        r6={"age_band": "02/03/1990"},
    )
    for row in data:
        row["given_names"] = SECRET
    outcome = validate_extract(write_csv(tmp_path / "multi.csv", header, data), FLOWS_SUITE)
    got = {(f.expectation, f.column): f.rows for f in gate_failures(outcome)}
    assert got == {
        (NAMES_GATE, None): [],
        (VALUES_GATE, "border_point"): [3],
        (VALUES_GATE, "nationality"): [1],
        (VALUES_GATE, "age_band"): [4, 6],
        (VALUES_GATE, "traveller_category"): [5],
    }
    names = next(f for f in outcome.failures if f.expectation == NAMES_GATE)
    assert names.observed == "given_names"
    assert_no_leak(outcome)


@pytest.mark.parametrize(
    "column, value",
    [
        ("nationality", f"{SECRET}@example.org"),
        ("border_point", f"+27 82 123 4567 {SECRET}"),
        ("traveller_category", f"P<ZAF{SECRET}<<ANNA<MARIA<<<<<<<<<<<<<<<<<"),
        ("age_band", f"1980-01-31 {SECRET}"),
    ],
)
def test_identifier_values_never_leak(tmp_path, caplog, capfd, column, value):
    caplog.set_level(logging.DEBUG)
    data = build(flows_row, 4, r2={column: value})
    outcome = validate_extract(
        write_csv(tmp_path / "leak.csv", FLOWS_HEADER, data), FLOWS_SUITE,
        data_docs_dir=tmp_path / "docs",
    )
    assert gate_failures(outcome)
    assert_no_leak(outcome)
    assert outcome.data_docs is not None
    assert SECRET not in Path(outcome.data_docs).read_text(encoding="utf-8")
    assert SECRET not in caplog.text
    out, err = capfd.readouterr()
    assert SECRET not in out + err


# ------------------------------------------------------------------------------------------
# A million rows: many blocks, every worker, and a clean file still passes the gate


def test_million_rows_with_the_gate(tmp_path):
    combos = list(itertools.product(
        ["ENTRY", "EXIT"],
        ["0-17", "18-29", "30-44", "45-64", "65+", "UNK"],
        ["F", "M", "X", "UNK"],
        ["ROAD", "RAIL", "AIR", "SEA", "FOOT"],
        ["RESIDENT", "VISITOR", "TRANSIT", "WORKER", "ASYLUM_SEEKER", "OTHER"],
    ))
    start = dt.date(2020, 1, 1)
    path = tmp_path / "million.csv"
    with path.open("w", encoding="utf-8") as f:
        f.write(",".join(FLOWS_HEADER) + "\n")
        for i in range(1_000_000):
            day, k = divmod(i, len(combos))
            d, a, s, m, c = combos[k]
            f.write(f"{start + dt.timedelta(days=day)},ZA-BEI,{d},ZAF,{a},{s},{m},{c},{i % 997}\n")
    began = time.perf_counter()
    outcome = validate_extract(path, FLOWS_SUITE)
    elapsed = time.perf_counter() - began
    print(f"\ntraveller_flows with the gate, 1,000,000 rows: {elapsed:.1f} s")
    assert outcome.success, outcome.failures
    assert outcome.rows == 1_000_000
