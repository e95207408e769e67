"""The anonymisation gate as Great Expectations expectations.

Importing this module registers two custom GX 1.x expectations with GX's registry, so that suites
naming them load like any built-in one:

- ``expect_table_columns_to_not_be_identifiers``: no column is named like a direct identifier
  (names, travel documents, dates of birth, national ids, phones, e-mail, street addresses,
  trader names, tax or EORI numbers), in English, French, Portuguese, Spanish, German and
  Afrikaans/Dutch spellings;
- ``expect_column_values_to_not_contain_identifiers`` (kwargs ``column``, ``kinds``): no cell of
  the column contains one of the identifier shapes in ``VALUE_PATTERNS``.

Suites mark both with meta {"gate": "anonymisation"}, which is what borderx.validation reports
as the anonymisation gate. The value check is implemented for GX's pandas engine, the one
borderx validates with.

Neither ever puts a cell value in its result: the column check reports rows through GX's own
index list, and the name check reports a column name only when every word of it is vocabulary
(a file without a header row has its first data row read as column names).
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any, ClassVar, Dict, List, Optional, Tuple, Union

from great_expectations.compatibility import pydantic
from great_expectations.execution_engine import ExecutionEngine, PandasExecutionEngine
from great_expectations.expectations.expectation import BatchExpectation, ColumnMapExpectation
from great_expectations.expectations.metrics.map_metric_provider import (
    ColumnMapMetricProvider,
    column_condition_partial,
)
from great_expectations.render import LegacyRendererType, RenderedStringTemplateContent
from great_expectations.render.renderer.renderer import renderer

# --------------------------------------------------------------------------------------------
# Identifiers inside values
#
# Every pattern keeps to the syntax RE2 and Python's re share, and avoids \b, \d, \w, \s,
# lookarounds and $: pandas then hands a compiled pattern to pyarrow's RE2 kernel instead of
# looping over the cells in Python, which is what keeps a million rows cheap. "Not alphanumeric
# or an end" stands in for the word boundaries.

_EDGE_BEFORE = r"(?:^|[^0-9A-Za-z])"
_EDGE_AFTER = r"(?:[^0-9A-Za-z]|\Z)"

# An MRZ line is 30 (TD1), 36 (TD2) or 44 (TD3) characters of [A-Z0-9<] with runs of fillers.
# Any run of at least MRZ_WINDOW such characters that contains "<<" has a window of exactly that
# length containing it, so one alternative per position of the "<<" in the window says it
# without a lookahead. The window is shorter than a TD1 line so that a truncated line or a lone
# SURNAME<<GIVEN<NAMES field still counts.
MRZ_WINDOW = 20


def _mrz_pattern(window: int) -> str:
    cls = "[A-Z0-9<]"
    return "(?:" + "|".join(
        f"{cls}{{{before}}}<<{cls}{{{window - 2 - before}}}" for before in range(window - 1)
    ) + ")"


VALUE_PATTERNS: Dict[str, str] = {
    "email": r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}",
    # International form only (+CC or 00CC), 8 to 15 digits as E.164 allows, with single or
    # paired separators between digits: counts, masses and codes never start with + and a
    # count with two leading zeros and eight more digits is not a count.
    "phone": r"(?:\+|" + _EDGE_BEFORE + r"00)[1-9](?:[ .()/-]{0,2}[0-9]){7,14}" + _EDGE_AFTER,
    "mrz": _mrz_pattern(MRZ_WINDOW),
    # One or two letters and 6-9 digits standing alone: a 32-hex token can hold that shape only
    # inside a longer alphanumeric run, which the edges rule out.
    "document_number": _EDGE_BEFORE + r"[A-Za-z]{1,2}[0-9]{6,9}" + _EDGE_AFTER,
    # A full date where only a band belongs: YYYY-MM-DD and DD/MM/YYYY, with -, / or . between.
    "date_of_birth": (
        r"[0-9]{4}[-/.][0-9]{1,2}[-/.][0-9]{1,2}|[0-9]{1,2}[-/.][0-9]{1,2}[-/.][0-9]{4}"
    ),
}
IDENTIFIER_KINDS: Tuple[str, ...] = tuple(VALUE_PATTERNS)
COMPILED_PATTERNS: Dict[str, "re.Pattern[str]"] = {
    kind: re.compile(pattern) for kind, pattern in VALUE_PATTERNS.items()
}
KIND_LABELS: Dict[str, str] = {
    "email": "e-mail address",
    "phone": "international phone number",
    "mrz": "MRZ line",
    "document_number": "travel-document number",
    "date_of_birth": "full date (date of birth)",
}


def combined_pattern(kinds: Any) -> "re.Pattern[str]":
    """One pattern that matches wherever any of ``kinds`` matches: a search for an alternation
    finds something exactly when a search for one of its branches does."""
    # re keeps the patterns it compiled: a batch after the first pays a lookup, not a compile.
    return re.compile("|".join(f"(?:{VALUE_PATTERNS[kind]})" for kind in kinds))


def identifier_mask(values: Any, kinds: Any) -> Any:
    """A boolean Series: True where a cell contains an identifier of one of ``kinds``.

    Each distinct value is matched once, against one alternation of the kinds, and the verdicts
    are mapped back to the rows. Extract columns hold few distinct values (codes, bands,
    dates), so this costs a hash of the column instead of one regex pass per kind over every
    cell, which was most of the time of validating a large extract.
    """
    import numpy as np
    import pandas as pd

    series = values if isinstance(values, pd.Series) else pd.Series(values)
    if not pd.api.types.is_string_dtype(series.dtype):
        series = series.astype("str")
    codes, distinct = pd.factorize(series, use_na_sentinel=True)
    hits = pd.Series(distinct).str.contains(combined_pattern(kinds), regex=True, na=False)
    # Empty cells get code -1, which picks the False appended last.
    verdicts = np.append(hits.to_numpy(dtype=bool, na_value=False), False)
    return pd.Series(verdicts[codes], index=series.index)


class ColumnValuesNotContainIdentifiers(ColumnMapMetricProvider):
    condition_metric_name = "column_values.not_contain_identifiers"
    condition_value_keys = ("kinds",)

    @column_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column, kinds, **kwargs):
        return ~identifier_mask(column, kinds)


def _check_kinds(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        if not value:
            raise ValueError("kinds must name at least one identifier kind")
        unknown = [k for k in value if k not in VALUE_PATTERNS]
        if unknown:
            raise ValueError(
                f"unknown identifier kinds {unknown}; known: {', '.join(IDENTIFIER_KINDS)}"
            )
    return value


class ExpectColumnValuesToNotContainIdentifiers(ColumnMapExpectation):
    """Expect no cell of the column to contain a direct identifier of the given kinds.

    Args:
        column: the column to check.
        kinds: a subset of email, phone, mrz, document_number, date_of_birth.
    """

    kinds: Union[List[str], Tuple[str, ...]] = pydantic.Field(
        description="identifier kinds to look for: " + ", ".join(IDENTIFIER_KINDS)
    )

    map_metric = "column_values.not_contain_identifiers"
    success_keys = ("kinds", "mostly")
    args_keys = ("column", "kinds")

    library_metadata: ClassVar[Dict[str, Union[str, list, bool]]] = {
        "maturity": "production",
        "tags": ["borderx", "anonymisation gate", "column map expectation"],
        "contributors": ["borderx"],
        "requirements": [],
        "has_full_test_suite": True,
        "manually_reviewed_code": True,
    }

    @pydantic.validator("kinds")
    def _valid_kinds(cls, value):
        return _check_kinds(value)

    @classmethod
    @renderer(renderer_type=LegacyRendererType.PRESCRIPTIVE)
    def _prescriptive_renderer(
        cls, configuration=None, result=None, runtime_configuration=None, **kwargs
    ):
        kwargs_ = configuration.kwargs if configuration else {}
        labels = ", ".join(KIND_LABELS.get(k, str(k)) for k in kwargs_.get("kinds") or [])
        return [
            RenderedStringTemplateContent(
                content_block_type="string_template",
                string_template={
                    "template": "$column values must not contain any $kinds.",
                    "params": {"column": kwargs_.get("column"), "kinds": labels},
                    "styling": (runtime_configuration or {}).get("styling"),
                },
            )
        ]


# --------------------------------------------------------------------------------------------
# Identifiers as column names
#
# A name is folded (accents, case, ß, camelCase, any separator) into words, and matched by whole
# words, so "nationality" is not "national" and "direction" is not "dirección". Four kinds of
# vocabulary:
# - WORDS: flag wherever they occur as a word, also with a plural s or a number suffix glued on
#   ("names", "passportno", "eorinumber");
# - PHRASES: flag as consecutive words once filler words (of, de, ...) are dropped;
# - WEAK_WORDS: short or ambiguous words (cell, mobile, van, tin, bi, ...) that flag only when
#   every other word of the name is a qualifier, so "cell_no" and "trader_tin" flag while
#   "cell_count" does not;
# - STEMS: long, unmistakable stems that flag at the start of any word of the name or of the
#   name with its separators removed ("Reisepassnummer", "pass_port", "DateOfBirth").

WORDS = frozenset(
    """
    name nom nome nombre naam prenom surname forename firstname lastname givenname fullname
    familyname maidenname middlename vorname nachname familienname voornaam achternaam
    familienaam apelido apellido sobrenome
    passport passeport passaporte pasaporte reisepass paspoort
    dob birthdate birthday geburtsdatum geboortedatum geburtstag
    ssn msisdn nationalid idnumber idno personalausweis ausweis cedula identidad identidade
    identiteitsnummer
    phone telephone telefone telefono telefon telefoon cellphone mobilephone handynummer
    email courriel correo
    address adresse endereco direccion street strasse adres straat
    consignee consignor eori
    """.split()
)

PHRASES: Tuple[Tuple[str, ...], ...] = tuple(
    tuple(p.split())
    for p in """
    date birth|birth date|date naissance|data nascimento|fecha nacimiento|datum geboorte
    e mail|mail address|mail adresse
    document number|document no|document nr|document num|document id|documento numero
    numero documento|doc number|doc no|doc nr|doc num|travel document|travel doc
    document voyage|documento viagem|documento viaje|reise dokument
    id number|id no|id nr|id num|id card|identity number|identity no|identity card
    identity document|national id|national identity|numero identite|carte identite
    numero identidad|numero identidade|bilhete identidade|social security|insurance number
    tax id|tax number|tax no|tax nr|tax ref|tax reference|tax code|tax identification
    vat number|vat no|vat nr|vat id|vat reg|vat registration|btw nummer|numero fiscal
    codigo fiscal|fiscal number|fiscal code|steuer nummer|steuer id
    mobile number|mobile no|mobile nr|cell number|cell no|cell nr|tel no|tel nr|tel number
    raison sociale|razon social|razao social|post address|postal address|street address
    house number|huis nummer|person id|traveller id|traveler id|passenger id|customer id
    client id|driver id|holder id
    """.replace("\n", "|").split("|")
    if p.strip()
)

WEAK_WORDS = frozenset(
    """
    nin cni bi dni tin nif nuit cpf nic
    cell mobile tel mail van
    trader importer exporter declarant company holder firma fiscal
    """.split()
)

QUALIFIERS = frozenset(
    """
    no nr num number numero nummer n id code ref reference registration reg
    holder trader importer exporter declarant company person personal traveller traveler
    passenger driver owner agent contact primary secondary home work private business
    national tax vat customs the a
    1 2 3
    """.split()
)

STEMS: Tuple[str, ...] = (
    "passport", "passeport", "passaporte", "pasaporte", "reisepass", "paspoort",
    "surname", "firstname", "lastname", "givenname", "forename", "familyname", "fullname",
    "vorname", "nachname", "familienname", "voornaam", "achternaam", "familienaam",
    "apellido", "apelido", "sobrenome",
    "dateofbirth", "datebirth", "birthdate", "birthday", "datenaissance", "datanascimento",
    "fechanacimiento", "geburtsdatum", "geboortedatum", "geburtstag",
    "telephone", "telefon", "telefoon", "cellphone", "phonenumber", "msisdn",
    "email", "courriel",
    "address", "adresse", "endereco", "direccion", "strasse", "streetname",
    "personalausweis", "ausweis", "identitynumber", "identitycard", "nationalid",
    "identiteitsnummer", "steuernummer", "vatnumber", "taxnumber", "eori",
    "consignee", "consignor", "tradername", "companyname", "importername", "exportername",
)

_NUMBER_SUFFIXES = ("", "s", "no", "nr", "num", "number", "nummer", "numero", "id")

FILLERS = frozenset("of the de do da dos das del du des d l la le di".split())


def normalise_words(name: str) -> List[str]:
    """Fold a column name into lower-case ASCII words."""
    text = str(name)
    # camelCase and ACRONYMWord boundaries become separators before case is folded.
    text = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", text)
    text = re.sub(r"(?<=[A-Z])(?=[A-Z][a-z])", " ", text)
    text = text.casefold()
    text = unicodedata.normalize("NFKD", text)
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    text = text.replace("ß", "ss").replace("ø", "o").replace("æ", "ae").replace("œ", "oe")
    return re.findall(r"[a-z0-9]+", text)


def _word_is(word: str, term: str) -> bool:
    return word.startswith(term) and word[len(term):] in _NUMBER_SUFFIXES


def identifier_term(name: str) -> Optional[str]:
    """The vocabulary term that makes ``name`` look like a direct identifier, or None."""
    words = normalise_words(name)
    if not words:
        return None
    content = [w for w in words if w not in FILLERS]

    for word in words:
        for term in WORDS:
            if _word_is(word, term):
                return term

    for phrase in PHRASES:
        size = len(phrase)
        for start in range(len(content) - size + 1):
            window = content[start : start + size]
            # The last word may carry a plural or number suffix, as in "tax_numbers".
            *leading, last = phrase
            if window[:-1] == leading and _word_is(window[-1], last):
                return " ".join(phrase)

    for index, word in enumerate(content):
        for term in WEAK_WORDS:
            if _word_is(word, term):
                others = content[:index] + content[index + 1 :]
                if all(o in QUALIFIERS or o in WEAK_WORDS for o in others):
                    return term

    # Stems may start at any word, and run on across the separators that follow it.
    for sequence in (words, content):
        for start in range(len(sequence)):
            joined = "".join(sequence[start:])
            for stem in STEMS:
                if joined.startswith(stem):
                    return stem
    return None


_VOCABULARY = (
    WORDS
    | WEAK_WORDS
    | QUALIFIERS
    | FILLERS
    | frozenset(w for phrase in PHRASES for w in phrase)
    | frozenset(
        """
        first last given family full middle maiden other alt alternative birth date place
        line street postal post city town zip mail e electronic mobile cell phone tel fax
        issue issuing expiry type country old new previous current primary
        """.split()
    )
)


def _displayable(name: str) -> bool:
    """Whether a flagged name is made only of vocabulary, and so cannot be someone's data."""
    words = normalise_words(name)
    if not words or len(str(name)) > 64:
        return False
    for word in words:
        if word in _VOCABULARY:
            continue
        if any(_word_is(word, term) for term in WORDS | WEAK_WORDS):
            continue
        if any(word.startswith(stem) and word[len(stem):] in _NUMBER_SUFFIXES for stem in STEMS):
            continue
        return False
    return True


def offending_columns(columns: Any) -> List[Dict[str, Any]]:
    """One entry per column named like an identifier: position (1-based), term, shown name."""
    found = []
    for position, name in enumerate(columns, start=1):
        term = identifier_term(name) if isinstance(name, str) else None
        if term is None:
            continue
        if _displayable(name):
            shown = name
        else:
            shown = f"column {position} (named like '{term}')"
        found.append({"position": position, "term": term, "column": shown})
    return found


class ExpectTableColumnsToNotBeIdentifiers(BatchExpectation):
    """Expect no column to be named like a direct identifier.

    observed_value lists the offending columns: by name, or, when a name holds anything but
    vocabulary (as a header-less file's first data row would), by position and the term matched.
    """

    metric_dependencies = ("table.columns",)
    args_keys = ()

    library_metadata: ClassVar[Dict[str, Union[str, list, bool]]] = {
        "maturity": "production",
        "tags": ["borderx", "anonymisation gate", "table expectation"],
        "contributors": ["borderx"],
        "requirements": [],
        "has_full_test_suite": True,
        "manually_reviewed_code": True,
    }

    def _validate(
        self,
        metrics: Dict,
        runtime_configuration: Optional[dict] = None,
        execution_engine: Optional[ExecutionEngine] = None,
    ):
        found = offending_columns(metrics["table.columns"])
        return {
            "success": not found,
            "result": {
                "observed_value": [entry["column"] for entry in found],
                "details": {
                    "offending_columns": [
                        {"position": e["position"], "term": e["term"]} for e in found
                    ]
                },
            },
        }

    @classmethod
    @renderer(renderer_type=LegacyRendererType.PRESCRIPTIVE)
    def _prescriptive_renderer(
        cls, configuration=None, result=None, runtime_configuration=None, **kwargs
    ):
        return [
            RenderedStringTemplateContent(
                content_block_type="string_template",
                string_template={
                    "template": (
                        "No column may be named like a direct identifier (names, travel "
                        "documents, dates of birth, national ids, phones, e-mail, addresses, "
                        "traders, tax or EORI numbers)."
                    ),
                    "params": {},
                    "styling": (runtime_configuration or {}).get("styling"),
                },
            )
        ]


GATE_EXPECTATION_TYPES = frozenset(
    {
        "expect_table_columns_to_not_be_identifiers",
        "expect_column_values_to_not_contain_identifiers",
    }
)
