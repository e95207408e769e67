"""Configuration: typed models, every problem reported as `file: field: problem` in one run."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pytest
import yaml

from borderx.cli import main
from borderx.config.loader import check_config, load_config
from borderx.errors import ConfigError
from borderx.exchange import Runtime

REPO = Path(__file__).resolve().parents[2]
TODAY = dt.date(2026, 11, 28)


@pytest.fixture
def home(tmp_path):
    """A copy of the project's sample deployment."""
    root = tmp_path / "home"
    shutil.copytree(REPO / "config", root / "config")
    shutil.copytree(REPO / "expectations", root / "expectations")
    return root


def _edit(path: Path, **changes):
    data = yaml.safe_load(path.read_text())
    data.update(changes)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def test_project_config_is_valid_and_typed(home):
    config = load_config(home, today=TODAY)
    assert set(config.agencies) == {"ZA-DHA", "BW-DIC", "ZA-SARS", "NA-MHAISS", "BW-BURS"}
    assert config.agencies["ZA-SARS"].kind.value == "customs"
    agreement = config.agreements["DSA-2026-001"]
    assert agreement.in_force_on(TODAY)
    assert agreement.terms_for("ZA-SARS").min_cell_size == 5
    assert config.suite_path("traveller_flows").is_file()


def test_every_problem_is_reported_in_one_run(home):
    _edit(home / "config" / "agencies" / "ZA-SARS.yaml", kind="navy", country="South Africa")
    _edit(home / "config" / "agreements" / "DSA-2026-001.yaml", providers=["ZA-DHA", "XX-NOPE"], colour="blue")
    (home / "config" / "agencies" / "BW-DIC.yaml").write_text("id: [unclosed\n")
    problems = [str(p) for p in check_config(home, today=TODAY)]
    assert "config/agencies/ZA-SARS.yaml: kind: Input should be 'customs', 'migration', 'police' or 'international'" in problems
    assert any(p.startswith("config/agencies/ZA-SARS.yaml: country: ") for p in problems)
    assert "config/agreements/DSA-2026-001.yaml: colour: Extra inputs are not permitted" in problems
    assert any(p.startswith("config/agencies/BW-DIC.yaml: line ") and "not valid YAML" in p for p in problems)


def test_cross_references_are_checked(home):
    agreement = home / "config" / "agreements" / "DSA-2026-001.yaml"
    data = yaml.safe_load(agreement.read_text())
    data["providers"] = ["ZA-DHA", "XX-NOPE"]
    data["recipients"][0]["columns"].append("passport_number")
    data["datasets"].append("weather")
    agreement.write_text(yaml.safe_dump(data, sort_keys=False))
    shutil.copy(agreement, agreement.with_name("copy.yaml"))
    (home / "expectations" / "traveller_flows.json").unlink()
    problems = {str(p) for p in check_config(home, today=TODAY)}
    assert "config/agreements/DSA-2026-001.yaml: providers.1: unknown agency 'XX-NOPE'" in problems
    assert "config/agreements/DSA-2026-001.yaml: datasets.1: unknown dataset 'weather'" in problems
    assert ("config/agreements/DSA-2026-001.yaml: recipients.0.columns.6: 'passport_number' is not a column of "
            "traveller_flows") in problems
    assert "config/agreements/copy.yaml: id: duplicate id 'DSA-2026-001', also in config/agreements/DSA-2026-001.yaml" in problems
    assert any(p.startswith("config/datasets/traveller_flows.yaml: suite: no expectation suite") for p in problems)


def test_recipient_without_a_usable_age_key_is_a_problem(home):
    sars = home / "config" / "agencies" / "ZA-SARS.yaml"
    data = yaml.safe_load(sars.read_text())
    data["age_recipients"][0]["revoked"] = True
    sars.write_text(yaml.safe_dump(data, sort_keys=False))
    problems = {str(p) for p in check_config(home, today=TODAY)}
    assert "config/agreements/DSA-2026-001.yaml: recipients.0.agency: ZA-SARS has no valid age key today" in problems


def test_malformed_keys_are_named_without_echoing_them(home):
    dha = home / "config" / "agencies" / "ZA-DHA.yaml"
    data = yaml.safe_load(dha.read_text())
    data["age_recipients"][0]["key"] = "age1qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq"
    dha.write_text(yaml.safe_dump(data, sort_keys=False))
    problems = [str(p) for p in check_config(home, today=TODAY)]
    assert any(p.startswith("config/agencies/ZA-DHA.yaml: age_recipients.0.key: ") for p in problems)


def test_check_command_prints_one_line_per_problem_and_exits_1(home, capsys):
    _edit(home / "config" / "agencies" / "ZA-SARS.yaml", kind="navy")
    (home / "config" / "settings.yaml").unlink()
    assert main(["check", "--home", str(home)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("config/settings.yaml: -: missing")
    assert lines[1].startswith("config/agencies/ZA-SARS.yaml: kind: ")


def test_check_command_passes_on_the_project_home(capsys):
    assert main(["check", "--home", str(REPO)]) == 0
    assert "ok" in capsys.readouterr().out


def test_nothing_runs_on_a_bad_config(home, capsys):
    _edit(home / "config" / "agencies" / "ZA-SARS.yaml", kind="navy")
    with pytest.raises(ConfigError):
        Runtime.open(home)
    assert main(["run", "--once", "--home", str(home)]) == 1
    err = capsys.readouterr().err
    assert "config/agencies/ZA-SARS.yaml: kind:" in err and "nothing was run" in err
    assert not (home / "audit").exists() and not (home / "intake").exists()


def test_s3_intake_prefixes_are_checked(home):
    for agency, prefix in (("ZA-SARS", "intake/ZA"), ("ZA-DHA", "intake/ZA/DHA"), ("BW-DIC", "intake/../BW-DIC")):
        path = home / "config" / "agencies" / f"{agency}.yaml"
        data = yaml.safe_load(path.read_text())
        data["intake"] = {"s3_prefix": prefix}
        path.write_text(yaml.safe_dump(data, sort_keys=False))
    problems = {str(p) for p in check_config(home, today=TODAY)}
    assert "config/agencies/ZA-SARS.yaml: intake.s3_prefix: overlaps the S3 intake prefix of ZA-DHA" in problems
    assert any(p.startswith("config/agencies/BW-DIC.yaml: intake.s3_prefix: String should match pattern")
               for p in problems)


def test_intake_and_pull_sources_load_typed(home, tmp_path):
    path = home / "config" / "agencies" / "ZA-SARS.yaml"
    data = yaml.safe_load(path.read_text())
    data["intake"] = {"s3_prefix": "intake/ZA-SARS"}
    exports = tmp_path / "exports"
    exports.mkdir()
    data["pull"] = {"folder": str(exports)}
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    agency = load_config(home, today=TODAY).agencies["ZA-SARS"]
    assert agency.intake.s3_prefix == "intake/ZA-SARS" and agency.intake.folder is None
    assert (agency.pull.folder, agency.pull.s3, agency.pull.schedule) == (str(exports), None, "@hourly")
    assert load_config(home, today=TODAY).agencies["ZA-DHA"].pull is None


def test_agencies_load_alone_and_a_broken_one_is_named(home):
    from borderx.config.loader import load_agencies, load_agency_files

    agreements = home / "config" / "agreements"
    shutil.rmtree(agreements)
    # Without agreements the full load fails; the agencies alone still load, typed, with their files.
    assert check_config(home, today=TODAY)
    agencies = load_agencies(home)
    assert set(agencies) == {"ZA-DHA", "BW-DIC", "ZA-SARS", "NA-MHAISS", "BW-BURS"}
    assert agencies["ZA-SARS"].kind.value == "customs"
    assert load_agency_files(home)["ZA-SARS"][0] == home / "config" / "agencies" / "ZA-SARS.yaml"
    _edit(home / "config" / "agencies" / "ZA-SARS.yaml", kind="navy")
    with pytest.raises(ConfigError) as caught:
        load_agencies(home)
    assert [str(p) for p in caught.value.problems] == [
        "config/agencies/ZA-SARS.yaml: kind: Input should be 'customs', 'migration', 'police' or 'international'"]


def test_contacts_notices_and_due_rules_are_checked(home):
    _edit(home / "config" / "agencies" / "ZA-SARS.yaml",
          contacts={"email": ["not an address"], "webhook": ["ftp://x.test/hook"], "sms": ["+27"]})
    _edit(home / "config" / "agreements" / "DSA-2026-001.yaml",
          due=[{"every": "month", "by_day": 5, "providers": ["ZA-SARS"], "datasets": ["goods_crossings"]}])
    _edit(home / "config" / "agreements" / "DSA-2026-002.yaml", due={"cron": "0 0 * * *", "grace": "soon"})
    _edit(home / "config" / "settings.yaml", notices={"smtp": {"host": "smtp.test", "port": 99999}})
    problems = {str(p) for p in check_config(home, today=TODAY)}
    agency, agreement = "config/agencies/ZA-SARS.yaml", "config/agreements/DSA-2026-001.yaml"
    assert any(p.startswith(f"{agency}: contacts.email.0: String should match pattern") for p in problems)
    assert any(p.startswith(f"{agency}: contacts.webhook.0: String should match pattern") for p in problems)
    assert f"{agency}: contacts.sms: Extra inputs are not permitted" in problems
    assert f"{agreement}: due.0.providers.0: 'ZA-SARS' is not one of the agreement's providers" in problems
    assert f"{agreement}: due.0.datasets.0: 'goods_crossings' is not one of the agreement's datasets" in problems
    assert any(p.startswith("config/agreements/DSA-2026-002.yaml: due.0.grace: String should match pattern")
               for p in problems)
    assert any(p.startswith("config/settings.yaml: notices.smtp.port: ") for p in problems)
    assert "config/settings.yaml: notices.smtp.from: Field required" in problems


def test_delivery_format_and_column_types_are_checked(home):
    agreement = home / "config" / "agreements" / "DSA-2026-001.yaml"
    data = yaml.safe_load(agreement.read_text())
    data["recipients"][0]["format"] = "xlsx"
    data["recipients"][1]["format"] = "parquet"
    agreement.write_text(yaml.safe_dump(data, sort_keys=False))
    _edit(home / "config" / "datasets" / "goods_crossings.yaml",
          column_types={"gross_mass_kg": "number", "weight": "integer", "hs_code": "code"})
    problems = [str(p) for p in check_config(home, today=TODAY)]
    assert "config/agreements/DSA-2026-001.yaml: recipients.0.format: Input should be 'csv' or 'parquet'" in problems
    assert not any("recipients.1.format" in p for p in problems)
    assert any(p.startswith("config/datasets/goods_crossings.yaml: column_types.hs_code: ") for p in problems)
    _edit(home / "config" / "datasets" / "goods_crossings.yaml", column_types={"weight": "integer"})
    problems = [str(p) for p in check_config(home, today=TODAY)]
    assert any("goods_crossings.yaml" in p and "column_types names columns the dataset does not have: weight" in p
               for p in problems), problems


def test_count_column_is_an_integer_unless_typed_otherwise(home):
    config = load_config(home, today=TODAY)
    flows = config.datasets["traveller_flows"]
    assert flows.type_of("travellers") == "integer" and flows.type_of("period") == "string"
    assert config.agreements["DSA-2026-001"].terms_for("ZA-SARS").format == "csv"
