"""`mailbot customers import` / `list`: real CSV files, real SQLite (and PostgreSQL), real CLI."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from click.testing import CliRunner
from sqlalchemy import select

from factories import T0, config_data, make_app, make_config
from mailbot.cli import cli
from mailbot.clock import FixedClock
from mailbot.customers.csvfile import parse_csv
from mailbot.customers.importer import CustomerImportError, import_customers
from mailbot.customers.listing import list_customers
from mailbot.daemon import App
from mailbot.db.models import Customer

OLGA = "olga@staff.test"


def settings(tmp_path: Path) -> dict[str, Any]:
    (tmp_path / "secret").write_text("x" * 32)
    return {
        "service_levels": {"standard": {"calendar": "Mon-Fri 09:00-18:00",
                                        "timezone": "Europe/Kyiv"},
                           "extended": {"calendar": "24x7", "timezone": "UTC"}},
        "managers": [{"email": OLGA, "name": "Olga"}],
        "security": {"secret_file": str(tmp_path / "secret")},
        "organizations": [{"name": "Acme", "domains": ["acme.example"], "manager": OLGA}],
    }


@pytest.fixture
def app(tmp_path: Path) -> App:
    return make_app(make_config(tmp_path, **settings(tmp_path)), FixedClock(T0))


def csv_file(tmp_path: Path, content: str | bytes, name: str = "customers.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return path


def stored(app: App) -> dict[str, Customer]:
    with app.db.session() as session:
        return {c.email: c for c in session.scalars(select(Customer))}


def run_import(app: App, path: Path, **kw: Any) -> Any:
    assert isinstance(app.clock, FixedClock)
    return import_customers(app.db, app.config, path, now=app.clock.now(), **kw)


GOOD = (
    "email,name,organization,timezone,language,service_level\n"
    "Olena@Shop.com.UA,Олена Коваленко,acme,Europe/Kyiv,UK,Extended\n"
    "bob@globex.example,Bob,Globex,,,\n"
    "carol@example.org,,,America/New_York,en,standard\n"
)


def test_import_stores_normalised_rows_and_notes_plain_organizations(app: App,
                                                                      tmp_path: Path) -> None:
    # Addresses are lowercased, a configured organization takes its configured spelling, codes
    # are normalised, empty cells are NULL, and an unknown organization is kept with a note.
    result = run_import(app, csv_file(tmp_path, GOOD))
    assert (result.added, result.updated, result.unchanged) == (3, 0, 0)
    assert result.summary() == "3 added, 0 updated, 0 unchanged"
    assert result.notes == ["note: line 3: organization 'Globex' is not an [[organizations]] "
                            "entry; kept as a plain name (no personal manager or organization "
                            "settings)"]
    rows = stored(app)
    olena = rows["olena@shop.com.ua"]
    assert (olena.name, olena.organization, olena.timezone, olena.language,
            olena.service_level) == ("Олена Коваленко", "Acme", "Europe/Kyiv", "uk", "extended")
    assert olena.created_at == olena.updated_at == T0
    bob = rows["bob@globex.example"]
    assert (bob.organization, bob.timezone, bob.language, bob.service_level) == (
        "Globex", None, None, None)
    assert rows["carol@example.org"].name == ""


def test_excel_export_with_bom_and_semicolons(app: App, tmp_path: Path) -> None:
    # "CSV UTF-8" from a comma-decimal locale: BOM, CRLF, ';' — and a comma inside a name.
    data = ("\ufeffEmail;Name;Organization\r\n"
            "olena@shop.com.ua;Kovalenko, Olena;Acme\r\n"
            ";;\r\n"
            "ivan@shop.com.ua;\"Petrenko; Ivan\";\r\n").encode("utf-8")
    assert data.startswith(b"\xef\xbb\xbf")
    result = run_import(app, csv_file(tmp_path, data))
    assert (result.added, result.updated) == (2, 0)
    rows = stored(app)
    assert rows["olena@shop.com.ua"].name == "Kovalenko, Olena"
    assert rows["olena@shop.com.ua"].organization == "Acme"
    assert rows["ivan@shop.com.ua"].name == "Petrenko; Ivan"
    assert parse_csv(data.decode("utf-8")).delimiter == ";"


def test_every_bad_row_is_reported_with_its_line_and_nothing_is_written(app: App,
                                                                         tmp_path: Path) -> None:
    # All problems of all rows, FILE:LINE: column: problem, and not even the good rows land.
    path = csv_file(tmp_path, (
        "email,name,timezone,language,service_level\n"
        "good@example.org,Good,Europe/Kyiv,en,standard\n"        # 2: fine
        "not-an-address,X,Mars/Olympus,klingon,gold\n"           # 3: four problems
        ",Nobody,,,\n"                                            # 4: no address
        "GOOD@example.org,Again,,,\n"                             # 5: duplicate of line 2
        "\"multi@example.org\",\"two\nlines\",,,\n"              # 6-7: a name over two lines
        "late@example.org,Late,UTC,ru,standard,surplus\n"        # 8: a cell too many
        "tz@example.org,,europe/kyiv,,\n"                         # 9: zone names are exact
    ))
    with pytest.raises(CustomerImportError) as raised:
        run_import(app, path)
    name = str(path)
    assert raised.value.problems == [
        f"{name}:3: email: 'not-an-address': An email address must have an @-sign.",
        f"{name}:3: timezone: 'Mars/Olympus' is not an IANA time zone (e.g. Europe/Kyiv)",
        f"{name}:3: language: 'klingon' is not one of en, ru, uk (add templates for another "
        "language first)",
        f"{name}:3: service_level: 'gold' is not defined under [service_levels] "
        "(have: extended, standard)",
        f"{name}:4: email: required",
        f"{name}:5: email: good@example.org is already on line 2",
        f"{name}:6: name: must be one line without control characters",
        f"{name}:8: row: 1 cell(s) more than the header's 5 columns",
        f"{name}:9: timezone: 'europe/kyiv' is not an IANA time zone (e.g. Europe/Kyiv)",
    ]
    assert stored(app) == {}


def test_unknown_and_missing_columns_are_named(app: App, tmp_path: Path) -> None:
    # A header with columns mailbot does not know is refused, naming each of them.
    with pytest.raises(CustomerImportError) as raised:
        run_import(app, csv_file(tmp_path, "email,Phone,company\na@example.org,1,X\n"))
    assert raised.value.problems == [
        f"{tmp_path / 'customers.csv'}:1: unknown column(s): Phone, company (known: email, name, "
        "organization, timezone, language, service_level)"]
    with pytest.raises(CustomerImportError) as raised:
        run_import(app, csv_file(tmp_path, "name;timezone\nOlena;UTC\n"))
    assert raised.value.problems == [f"{tmp_path / 'customers.csv'}:1: the email column is "
                                     "required"]


def test_a_legacy_code_page_file_is_refused_with_a_hint(app: App, tmp_path: Path) -> None:
    # Excel's plain "CSV" on Russian Windows is cp1251: refused, not imported as mojibake.
    path = csv_file(tmp_path, "email,name\nolena@shop.com.ua,Олена\n".encode("cp1251"))
    with pytest.raises(CustomerImportError) as raised:
        run_import(app, path)
    assert raised.value.problems == [
        f"{path}:2: not UTF-8 text (in Excel, save as \"CSV UTF-8\")"]
    assert stored(app) == {}


def test_dry_run_counts_but_writes_nothing(app: App, tmp_path: Path) -> None:
    # --dry-run reports what would change, for new rows and for changed ones, and writes nothing.
    path = csv_file(tmp_path, GOOD)
    result = run_import(app, path, dry_run=True)
    assert result.summary() == "dry run, nothing written: 3 would be added, 0 would be updated, " \
                               "0 unchanged"
    assert stored(app) == {}
    run_import(app, path)
    changed = csv_file(tmp_path, GOOD.replace("America/New_York", "Asia/Tokyo"), "changed.csv")
    result = run_import(app, changed, dry_run=True)
    assert (result.added, result.updated, result.unchanged) == (0, 1, 2)
    assert stored(app)["carol@example.org"].timezone == "America/New_York"


def test_reimport_is_idempotent_and_updates_what_changed(app: App, tmp_path: Path) -> None:
    # The same file twice changes nothing; an edited file updates only the changed rows (an empty
    # cell clears, a column the file lacks is left alone) and keeps created_at.
    run_import(app, csv_file(tmp_path, GOOD))
    assert isinstance(app.clock, FixedClock)
    app.clock.set(T0 + timedelta(days=1))
    again = run_import(app, csv_file(tmp_path, GOOD))
    assert (again.added, again.updated, again.unchanged) == (0, 0, 3)
    assert stored(app)["carol@example.org"].updated_at == T0

    edited = csv_file(tmp_path, "email,timezone,language\n"
                                "carol@example.org,Asia/Tokyo,\n"
                                "olena@shop.com.ua,Europe/Kyiv,uk\n"
                                "new@example.org,,\n", "edited.csv")
    result = run_import(app, edited)
    assert (result.added, result.updated, result.unchanged) == (1, 1, 1)
    carol = stored(app)["carol@example.org"]
    assert (carol.timezone, carol.language, carol.service_level) == ("Asia/Tokyo", None,
                                                                     "standard")
    assert (carol.created_at, carol.updated_at) == (T0, T0 + timedelta(days=1))
    assert set(stored(app)) == {"olena@shop.com.ua", "bob@globex.example", "carol@example.org",
                                "new@example.org"}


def test_list_filters_by_organization_ignoring_case(app: App, tmp_path: Path) -> None:
    # `list --organization acme` finds Acme's people; configured and plain names are told apart.
    run_import(app, csv_file(tmp_path, GOOD))
    rows = list_customers(app.db, app.config)
    assert [r["email"] for r in rows] == ["olena@shop.com.ua", "bob@globex.example",
                                          "carol@example.org"]
    (acme,) = list_customers(app.db, app.config, "acme")
    assert (acme["email"], acme["organization_configured"]) == ("olena@shop.com.ua", True)
    (globex,) = list_customers(app.db, app.config, "GLOBEX")
    assert globex["organization_configured"] is False
    assert list_customers(app.db, app.config, "Initech") == []


def test_postgresql_import_and_reimport(tmp_path: Path, pg_url: str) -> None:
    # The same upsert on PostgreSQL: added, then unchanged, then one update.
    app = make_app(make_config(tmp_path, database={"url": pg_url}, **settings(tmp_path)),
                   FixedClock(T0))
    try:
        assert run_import(app, csv_file(tmp_path, GOOD)).added == 3
        assert run_import(app, csv_file(tmp_path, GOOD)).unchanged == 3
        result = run_import(app, csv_file(tmp_path, GOOD.replace(",Bob,", ",Robert,"), "b.csv"))
        assert (result.updated, result.unchanged) == (1, 2)
        assert stored(app)["bob@globex.example"].name == "Robert"
        assert [r["email"] for r in list_customers(app.db, app.config, "Globex")] == [
            "bob@globex.example"]
    finally:
        app.db.dispose()


# --------------------------------------------------------------------------- the CLI


def cli_setup(tmp_path: Path) -> tuple[CliRunner, Path]:
    path = tmp_path / "mailbot.toml"
    path.write_text(tomli_w.dumps(config_data(tmp_path, **settings(tmp_path))))
    runner = CliRunner()
    assert runner.invoke(cli, ["--config", str(path), "db", "upgrade"]).exit_code == 0
    return runner, path


def test_cli_import_list_and_errors(tmp_path: Path) -> None:
    # Import prints notes and counts; a bad file prints each problem and exits 1; list shows rows.
    runner, config = cli_setup(tmp_path)
    good = csv_file(tmp_path, GOOD)
    result = runner.invoke(cli, ["--config", str(config), "customers", "import", str(good),
                                 "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "dry run, nothing written: 3 would be added" in result.output
    result = runner.invoke(cli, ["--config", str(config), "customers", "import", str(good)])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1] == "3 added, 0 updated, 0 unchanged"
    assert "organization 'Globex' is not an [[organizations]] entry" in result.output

    bad = csv_file(tmp_path, "email,language\nx@example.org,de\nnope,\n", "bad.csv")
    result = runner.invoke(cli, ["--config", str(config), "customers", "import", str(bad)])
    assert result.exit_code == 1
    assert f"{bad}:2: language: 'de' is not one of en, ru, uk" in result.output
    assert f"{bad}:3: email: 'nope': An email address must have an @-sign." in result.output
    assert f"mailbot: 2 problem(s) in {bad}; nothing was imported" in result.output
    assert "Traceback" not in result.output

    missing = runner.invoke(cli, ["--config", str(config), "customers", "import",
                                  str(tmp_path / "nope.csv")])
    assert missing.exit_code == 1 and "cannot read" in missing.output

    listed = runner.invoke(cli, ["--config", str(config), "customers", "list", "--json"])
    rows = json.loads(listed.output)
    assert {r["email"] for r in rows} == {"olena@shop.com.ua", "bob@globex.example",
                                          "carol@example.org"}
    assert {"email", "name", "organization", "timezone", "language", "service_level"} <= set(
        rows[0])
    table = runner.invoke(cli, ["--config", str(config), "customers", "list",
                                "--organization", "Globex"]).output
    assert table.splitlines()[0].split() == ["EMAIL", "NAME", "ORGANIZATION", "TIME", "ZONE",
                                             "LANG", "LEVEL"]
    assert "bob@globex.example" in table and "Globex (plain)" in table
    assert "olena@" not in table


def test_a_language_with_admin_templates_is_accepted(tmp_path: Path) -> None:
    # An admin who added ack.de.txt.j2 may give customers German.
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "ack.de.txt.j2").write_text("Subject: Danke\n\nDanke.\n")
    app = make_app(make_config(tmp_path, **settings(tmp_path)), FixedClock(T0))
    result = run_import(app, csv_file(tmp_path, "email,language\nhans@example.de,de\n"))
    assert result.added == 1 and stored(app)["hans@example.de"].language == "de"


@pytest.mark.parametrize("command", [["customers", "import"], ["customers", "list"]])
def test_cli_help_has_an_example(command: list[str]) -> None:
    # Every new command documents itself with an example.
    result = CliRunner().invoke(cli, [*command, "--help"])
    assert result.exit_code == 0
    assert "Example:" in result.output and f"mailbot {' '.join(command)}" in result.output


def test_the_documented_example_file_imports_against_the_example_config(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # config/customers.example.csv is valid for config/mailbot.example.toml: the docs do not rot.
    from mailbot.config import load_config
    from mailbot.customers.csvfile import read_csv
    from mailbot.customers.importer import validate_rows

    repo = Path(__file__).resolve().parents[2]
    monkeypatch.setenv("MAILBOT_IMAP_PASSWORD", "x")
    monkeypatch.setenv("MAILBOT_SMTP_PASSWORD", "y")
    monkeypatch.setenv("MAILBOT_SECRET", "z" * 32)
    config = load_config(repo / "config" / "mailbot.example.toml")
    assert config.customers.unregistered_ack == "auto"
    table = read_csv(repo / "config" / "customers.example.csv")
    entries, problems = validate_rows(table.rows, table.columns, config)
    assert problems == []
    assert [e.settings["organization"] for e in entries] == ["Acme", "Acme", "Globex", None]
