"""Synthetic extracts for the demo, the tests and the benchmarks. No real person is in them."""

from __future__ import annotations

import csv
import datetime as dt
import random
from pathlib import Path

TRAVELLER_FLOWS_COLUMNS = [
    "period", "border_point", "direction", "nationality", "age_band", "sex",
    "travel_mode", "traveller_category", "travellers",
]
NATIONALITIES = ["ZAF", "BWA", "NAM", "ZWE", "MOZ", "LSO", "SWZ", "ZMB", "MWI", "AGO", "COD", "GBR", "DEU", "CHN", "IND"]
AGE_BANDS = ["0-17", "18-29", "30-44", "45-64", "65+", "UNK"]
SEXES = ["F", "M", "X", "UNK"]
MODES = ["ROAD", "RAIL", "AIR", "SEA", "FOOT"]
CATEGORIES = ["RESIDENT", "VISITOR", "TRANSIT", "WORKER", "ASYLUM_SEEKER", "OTHER"]


def traveller_flows_rows(border_points: list[str], start: dt.date, days: int, *, seed: int = 7, small_every: int = 0):
    """Distinct aggregated rows; every `small_every`-th row gets a count below 5 (a small cell)."""
    rng = random.Random(seed)
    seen = set()
    n = 0
    for offset in range(days):
        period = (start + dt.timedelta(days=offset)).isoformat()
        for point in border_points:
            for direction in ("ENTRY", "EXIT"):
                for _ in range(6):
                    key = (period, point, direction, rng.choice(NATIONALITIES), rng.choice(AGE_BANDS),
                           rng.choice(SEXES), rng.choice(MODES), rng.choice(CATEGORIES))
                    if key in seen:
                        continue
                    seen.add(key)
                    n += 1
                    small = small_every and n % small_every == 0
                    yield [*key, str(rng.randint(1, 4) if small else rng.randint(5, 900))]


GOODS_CROSSINGS_COLUMNS = [
    "declaration_ref", "lodged_date", "customs_office", "procedure", "hs_code", "origin_country",
    "destination_country", "transport_mode", "gross_mass_kg", "statistical_value", "currency",
]
HS_CODES = ["870323", "100630", "271019", "847130", "300490", "220421", "080510", "720839", "610910", "940360"]
COUNTRIES = ["ZA", "BW", "NA", "ZW", "MZ", "ZM", "CN", "DE", "IN", "US", "AE", "GB"]
GOODS_MODES = ["SEA", "RAIL", "ROAD", "AIR", "POST"]


def goods_crossings_rows(offices: list[str], start: dt.date, days: int, *, per_day: int = 20, seed: int = 11):
    """Declarations with opaque references: a keyed hash stands where the real reference would be."""
    import hashlib

    rng = random.Random(seed)
    for offset in range(days):
        lodged = (start + dt.timedelta(days=offset)).isoformat()
        for n in range(per_day):
            ref = hashlib.blake2b(f"{seed}/{offset}/{n}".encode(), digest_size=16).hexdigest()
            procedure = rng.choice(["IMPORT", "EXPORT", "TRANSIT"])
            origin, destination = rng.sample(COUNTRIES, 2)
            yield [ref, lodged, rng.choice(offices), procedure, rng.choice(HS_CODES), origin, destination,
                   rng.choice(GOODS_MODES), f"{rng.uniform(1, 40000):.1f}", f"{rng.uniform(50, 2_000_000):.2f}",
                   rng.choice(["ZAR", "BWP", "USD"])]


def write_csv(path: Path, header: list[str], rows) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
    return path
