"""The command line (DESIGN.md, "Command line and configuration"): parsing and printing only.

Exit codes: 0 ok, 1 failure, 2 bad usage or bad config. Errors an admin can fix
are one line naming what to fix; a traceback is printed only with ``--debug``.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import click

from mailbot.errors import ConfigError, DatabaseNotReady, MailbotError

F = TypeVar("F", bound=Callable[..., Any])
log = logging.getLogger("mailbot")


class Ctx:
    def __init__(self, config_path: str | None, debug: bool) -> None:
        self.config_path = config_path
        self.debug = debug

    def config(self) -> Any:
        from mailbot.config import load_config

        from mailbot.logsetup import setup_logging

        config = load_config(self.config_path)
        setup_logging(config.logging.level if not self.debug else "DEBUG", config.logging.format)
        return config

    def app(self, *, clock: Any = None, require_schema: bool = True) -> Any:
        from mailbot.daemon import App

        app = App.build(self.config(), clock=clock)
        if require_schema:
            app.db.require_current()
        return app


def handled(func: F) -> F:
    """Turn known failures into one readable line and the documented exit code."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        owner = click.get_current_context().find_object(Ctx)
        debug = owner.debug if owner is not None else False
        try:
            return func(*args, **kwargs)
        except ConfigError as exc:
            click.echo(f"mailbot: bad config: {exc}", err=True)
            sys.exit(2)
        except DatabaseNotReady as exc:
            click.echo(f"mailbot: {exc}", err=True)
            sys.exit(2)
        except MailbotError as exc:
            click.echo(f"mailbot: {exc}", err=True)
            sys.exit(1)
        except (click.exceptions.Exit, click.ClickException):
            raise
        except Exception as exc:
            if debug:
                raise
            click.echo(f"mailbot: internal error: {type(exc).__name__}: {exc} "
                       "(run with --debug for details)", err=True)
            sys.exit(1)

    return wrapper  # type: ignore[return-value]


def _terminal_width() -> int | None:
    """Columns to draw tables for on a terminal; None when piped (plain, stable text)."""
    import shutil

    if not sys.stdout.isatty():
        return None
    return shutil.get_terminal_size().columns


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_path", metavar="PATH", envvar="MAILBOT_CONFIG",
              help="Configuration file (default: $MAILBOT_CONFIG, then config/mailbot.toml).")
@click.option("--debug", is_flag=True, help="Verbose logs and full tracebacks.")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None, debug: bool) -> None:
    """mailbot: a support mailbox turned into a case system.

    \b
    Example:
      mailbot --config /etc/mailbot/mailbot.toml db upgrade
      mailbot --config /etc/mailbot/mailbot.toml run
    """
    ctx.obj = Ctx(config_path, debug)


@cli.command()
@click.pass_obj
@handled
def run(obj: Ctx) -> None:
    """Run the daemon (IDLE/poll, outbox) until SIGTERM or SIGINT.

    \b
    Example:
      mailbot --config /etc/mailbot/mailbot.toml run
    """
    from mailbot.daemon import Daemon

    app = obj.app()
    asyncio.run(Daemon(app).run())


@cli.command()
@click.option("--once", is_flag=True, required=True, help="Do one pass and exit (required).")
@click.option("--now", metavar="ISO", help="Evaluate time as of this instant (dry runs, tests).")
@click.pass_obj
@handled
def poll(obj: Ctx, once: bool, now: str | None) -> None:
    """One pass: ingest every mailbox, flush the outbox, exit.

    \b
    Example:
      mailbot poll --once
      mailbot poll --once --now 2026-11-23T08:30:00+02:00
    """
    from mailbot.clock import FixedClock
    from mailbot.daemon import parse_now, run_once

    clock = None
    if now:
        try:
            clock = FixedClock(parse_now(now))
        except ValueError:
            raise click.BadParameter(f"{now!r} is not an ISO 8601 instant", param_hint="--now")
    report = run_once(obj.app(clock=clock))
    for drained in report.drained:
        click.echo(f"{drained.mailbox}: {len(drained.outcomes)} message(s): "
                   f"{drained.count('stored')} stored, {drained.count('duplicate')} duplicate, "
                   f"{drained.count('dropped')} dropped, {drained.count('quarantined')} quarantined")
    flushed = report.flushed
    click.echo(f"outbox: {len(flushed.sent)} sent, {flushed.deferred} deferred, "
               f"{flushed.failed} failed")
    for mailbox, holder in report.skipped.items():
        click.echo(f"{mailbox}: skipped: {holder} (another mailbot is polling it)")
    for mailbox, reason in report.errors.items():
        click.echo(f"{mailbox}: FAILED: {reason}", err=True)
    if not report.ok:
        sys.exit(1)


@cli.group()
def db() -> None:
    """Database schema management.

    \b
    Example:
      mailbot --config /etc/mailbot/mailbot.toml db upgrade
    """


@db.command("upgrade")
@click.pass_obj
@handled
def db_upgrade(obj: Ctx) -> None:
    """Create or migrate the database schema to the newest version.

    \b
    Example:
      mailbot --config /etc/mailbot/mailbot.toml db upgrade
    """
    app = obj.app(require_schema=False)
    before, after = app.db.upgrade()
    if before == after:
        click.echo(f"database already at {after}")
    else:
        click.echo(f"database upgraded: {before or 'empty'} → {after}")


@cli.group()
def cases() -> None:
    """Look at cases.

    \b
    Example:
      mailbot cases list --status open
      mailbot cases show SUP-12
    """


@cases.command("list")
@click.option("--status", type=click.Choice(["open", "waiting", "closed"]), help="Only this status.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
@handled
def cases_list(obj: Ctx, status: str | None, as_json: bool) -> None:
    """List cases, newest first.

    \b
    Example:
      mailbot cases list --status open
      mailbot cases list --json | jq '.[].token'
    """
    from mailbot import views

    rows = views.list_cases(obj.app().db, status)
    if as_json:
        click.echo(json.dumps(rows, indent=2, ensure_ascii=False))
    else:
        click.echo(views.render_table(views.cases_table(rows), _terminal_width()))


@cases.command("show")
@click.argument("case_id")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
@handled
def cases_show(obj: Ctx, case_id: str, as_json: bool) -> None:
    """Show one case: participants, the conversation, the event log, the outbox.

    CASE_ID is the number (12) or the token (SUP-12).

    \b
    Example:
      mailbot cases show SUP-12
    """
    from mailbot import views

    app = obj.app()
    detail = views.show_case(app.db, case_id, app.config.cases.token_prefix)
    if detail is None:
        click.echo(f"mailbot: no case {case_id}", err=True)
        sys.exit(1)
    if as_json:
        click.echo(json.dumps(detail, indent=2, ensure_ascii=False))
    else:
        click.echo(views.case_text(detail))


@cli.group()
def customers() -> None:
    """The customer directory: who is registered, their zone, language and level.

    \b
    Example:
      mailbot customers import customers.csv --dry-run
      mailbot customers list --organization Acme
    """


@customers.command("import")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--dry-run", is_flag=True, help="Check the file and count the changes; write "
              "nothing.")
@click.pass_obj
@handled
def customers_import(obj: Ctx, file: Path, dry_run: bool) -> None:
    """Load customers from a CSV file with a header row (all rows, or none).

    Columns: email (required), name, organization, timezone, language,
    service_level; `,` or `;` separated, UTF-8 with or without BOM. Every bad row
    is reported as FILE:LINE: column: problem, and then nothing is written (exit 1).
    Importing again updates what changed; an empty cell clears that setting.

    \b
    Example:
      mailbot customers import customers.csv --dry-run
      mailbot customers import customers.csv
    """
    from mailbot.customers.importer import CustomerImportError, import_customers

    app = obj.app()
    try:
        result = import_customers(app.db, app.config, file, now=app.clock.now(),
                                  dry_run=dry_run)
    except CustomerImportError as exc:
        for problem in exc.problems:
            click.echo(problem, err=True)
        click.echo(f"mailbot: {len(exc.problems)} problem(s) in {file}; nothing was imported",
                   err=True)
        sys.exit(1)
    for note in result.notes:
        click.echo(note)
    click.echo(result.summary())


@customers.command("list")
@click.option("--organization", metavar="NAME", help="Only customers of this organization.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
@handled
def customers_list(obj: Ctx, organization: str | None, as_json: bool) -> None:
    """List the customer directory, by organization.

    \b
    Example:
      mailbot customers list --organization Acme
      mailbot customers list --json | jq '.[] | select(.timezone == null) | .email'
    """
    from mailbot.customers.listing import customers_table, list_customers
    from mailbot.views import render_table

    app = obj.app()
    rows = list_customers(app.db, app.config, organization)
    if as_json:
        click.echo(json.dumps(rows, indent=2, ensure_ascii=False))
    else:
        click.echo(render_table(customers_table(rows), _terminal_width()))


@cli.group()
def quarantine() -> None:
    """Mail that could not be processed: list it, retry it after a fix.

    \b
    Example:
      mailbot quarantine list --status held
      mailbot quarantine retry 7
    """


@quarantine.command("list")
@click.option("--status", type=click.Choice(["held", "retried"]), help="Only this status.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
@handled
def quarantine_list(obj: Ctx, status: str | None, as_json: bool) -> None:
    """List quarantined mail with the reason, newest first.

    \b
    Example:
      mailbot quarantine list
      mailbot quarantine list --status held --json | jq '.[].reason'
    """
    from mailbot.quarantine import list_quarantine, quarantine_table
    from mailbot.views import render_table

    rows = list_quarantine(obj.app().db, status)
    if as_json:
        click.echo(json.dumps(rows, indent=2, ensure_ascii=False))
    else:
        click.echo(render_table(quarantine_table(rows), _terminal_width()))


@quarantine.command("retry")
@click.argument("quarantine_id", type=int)
@click.pass_obj
@handled
def quarantine_retry(obj: Ctx, quarantine_id: int) -> None:
    """Run a quarantined message through the pipeline again (after a fix).

    QUARANTINE_ID is the ID shown by `mailbot quarantine list`. Exits 1 when the
    message fails again; it then stays quarantined with the new reason.

    \b
    Example:
      mailbot quarantine retry 7
    """
    from mailbot.quarantine import retry

    app = obj.app()
    result = retry(app.pipeline, app.db, quarantine_id)
    outcome = result.outcome
    if not result.ok:
        click.echo(f"mailbot: quarantined message {quarantine_id} failed again: {outcome.reason}",
                   err=True)
        sys.exit(1)
    where = f" → case {outcome.case_token}" if outcome.case_token else ""
    click.echo(f"quarantined message {quarantine_id}: {outcome.status}{where}"
               + (" (acknowledgement queued)" if outcome.ack_queued else "")
               + (f"; {outcome.reason}" if outcome.reason else ""))


@cli.group()
def templates() -> None:
    """Check and preview the admin-editable mail templates.

    \b
    Example:
      mailbot templates check
      mailbot templates preview ack --lang uk
    """


@templates.command("check")
@click.pass_obj
@handled
def templates_check(obj: Ctx) -> None:
    """Load every template and render it with sample data, for every language.

    Prints one line per template and language; on a problem prints FILE:LINE: MESSAGE
    and exits 1.

    \b
    Example:
      mailbot --config /etc/mailbot/mailbot.toml templates check
    """
    from mailbot.templates_cli import check_templates

    report = check_templates(obj.config())
    for line in report.lines:
        click.echo(line)
    for error in report.errors:
        click.echo(error, err=True)
    if not report.ok:
        click.echo(f"mailbot: {len(report.errors)} template problem(s)", err=True)
        sys.exit(1)
    click.echo("all templates ok")


@templates.command("preview")
@click.argument("name")
@click.option("--case", "case_id", metavar="ID", help="Use this case's data (number or token).")
@click.option("--lang", metavar="xx", help="Language variant (default: the case's, else the "
              "configured default).")
@click.pass_obj
@handled
def templates_preview(obj: Ctx, name: str, case_id: str | None, lang: str | None) -> None:
    """Print one mail as it would be sent: headers, then the body.

    NAME is a mail kind: ack, ack_unregistered, manager_new_case, relay, followup,
    reminder, escalation, closed. Without --case the sample data of `templates check` is used.

    \b
    Example:
      mailbot templates preview ack --lang uk
      mailbot templates preview ack --case SUP-12
    """
    from mailbot.outbox.render import known_kinds
    from mailbot.templates_cli import case_context, preview

    if name not in known_kinds():
        raise click.BadParameter(f"{name!r} is not one of {', '.join(known_kinds())}",
                                 param_hint="NAME")
    if lang is not None and not (len(lang) == 2 and lang.isalpha() and lang.islower()):
        raise click.BadParameter(f"{lang!r} is not a two-letter code", param_hint="--lang")
    if case_id is None:
        config = obj.config()
        from mailbot.clock import SystemClock

        click.echo(preview(config, name, lang, SystemClock().now(),
                           warn=lambda line: click.echo(line, err=True)))
        return
    app = obj.app()
    with app.db.session() as session:
        loaded = case_context(session, app.config, name, case_id, lang)
    click.echo(preview(app.config, name, lang, app.clock.now(), case_loader=lambda: loaded,
                       warn=lambda line: click.echo(line, err=True)))


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
@handled
def doctor(obj: Ctx, as_json: bool) -> None:
    """Check config, database, IMAP, SMTP and templates; say precisely what is wrong.

    One line per check, `ok` or `FAIL` with the reason. Logs in and looks, sends no
    mail. Exit 0 if all is well, 1 if a check failed, 2 if the config is unusable.

    \b
    Example:
      mailbot --config /etc/mailbot/mailbot.toml doctor
      mailbot doctor --json | jq '.checks[] | select(.ok | not)'
    """
    from mailbot.doctor import run_doctor

    echo = None if as_json else (lambda check: click.echo(check.line()))
    report = run_doctor(obj.config_path, on_check=echo or (lambda _c: None))
    if as_json:
        click.echo(json.dumps(report.as_json(), indent=2, ensure_ascii=False))
    if not report.config_ok:
        sys.exit(2)
    if not report.ok:
        sys.exit(1)


@cli.command()
@click.option("--dir", "directory", type=click.Path(path_type=Path), default=Path("demo"),
              show_default=True, help="Where the demo keeps its mailbox, outgoing mail and database.")
@handled
def demo(directory: Path) -> None:
    """Run the whole loop locally: no servers, no root.

    A Maildir stands in for the IMAP mailbox and a directory for the SMTP server.

    \b
    Example:
      mailbot demo --dir /tmp/mailbot-demo
    """
    from mailbot.demo import run_demo

    run_demo(directory, echo=click.echo)


@cli.group()
def schedule() -> None:
    """Scheduled work: SLA reminders and escalations, follow-ups, digests.

    \b
    Example:
      mailbot schedule list
    """


@schedule.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
@handled
def schedule_list(obj: Ctx, as_json: bool) -> None:
    """Pending jobs with their due time in UTC and local to whom they reach.

    \b
    Example:
      mailbot schedule list
      mailbot schedule list --json | jq '.[] | select(.kind == "followup")'
    """
    from mailbot import views

    app = obj.app()
    rows = views.list_jobs(app.db, app.config)
    click.echo(json.dumps(rows, indent=2) if as_json
               else views.render_table(views.jobs_table(rows), _terminal_width()))


@cli.group()
def report() -> None:
    """Reports on how the promises to customers are kept.

    \b
    Example:
      mailbot report sla --since 2026-11-01
      mailbot report sla --html sla.html
    """


@report.command("sla")
@click.option("--since", metavar="DATE", help="Only cases opened on or after this date (ISO).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--html", "html_path", metavar="FILE", type=click.Path(dir_okay=False, path_type=Path),
              help="Write a self-contained HTML page with charts to FILE (opens offline).")
@click.option("--zone", metavar="ZONE", help="Time zone whose Mondays start the weeks (default: "
              "the working-hours zone of the default service level).")
@click.option("--now", metavar="ISO", help="Judge pending/late as of this instant.")
@click.pass_obj
@handled
def report_sla(obj: Ctx, since: str | None, as_json: bool, html_path: Path | None,
               zone: str | None, now: str | None) -> None:
    """Per service level, organization and manager: acknowledgement, preliminary and detailed
    answers on time / late / pending, median and p90 working hours to each.

    With --html FILE it also writes a page with the on-time rate per week and the
    distribution of times to answer; open it in any browser, no network needed.

    \b
    Example:
      mailbot report sla --since 2026-11-01
      mailbot report sla --json | jq '.manager'
      mailbot report sla --since 2026-10-01 --html sla.html && xdg-open sla.html
    """
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    from mailbot.daemon import parse_now
    from mailbot.reports import report_text, sla_report
    from mailbot.schedule.deadlines import Deadlines

    try:
        since_at = parse_now(since) if since else None
        now_at = parse_now(now) if now else None
    except ValueError:
        raise click.BadParameter("expected an ISO date or instant, e.g. 2026-11-01")
    if zone is not None:
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise click.BadParameter(f"{zone!r} is not an IANA time zone, e.g. Europe/Kyiv",
                                     param_hint="--zone")
    app = obj.app()
    team_zone = zone or app.config.service_levels[app.config.defaults.service_level].timezone
    data = sla_report(app.db, Deadlines(app.config), now_at or app.clock.now(), since_at,
                      team_zone)
    if html_path is not None:
        from mailbot.report_html import write_html

        write_html(data, html_path)
        click.echo(f"report written to {html_path}", err=as_json)
    if as_json:
        click.echo(json.dumps(data, indent=2))
    elif html_path is None:
        click.echo(report_text(data, _terminal_width()))


@cli.command("import")
@click.option("--mailbox", "mailbox_name", required=True, metavar="NAME",
              help="A [[mailboxes]] name from the config (its server and login are used).")
@click.option("--folder", required=True, metavar="F", help="The IMAP folder to read, e.g. INBOX "
              "or Archive/2024. It is opened read-only.")
@click.option("--since", type=click.DateTime(formats=["%Y-%m-%d"]), metavar="DATE",
              help="Only mail the server received on or after this day (IMAP SEARCH SINCE).")
@click.option("--batch", "batch_size", type=click.IntRange(1, 5000), metavar="N",
              help="Messages per transaction and checkpoint (default: the mailbox's batch_size).")
@click.option("--restart", is_flag=True, help="Forget this folder's import checkpoint and read "
              "it from the start (needed after its UIDVALIDITY changed).")
@click.pass_obj
@handled
def import_(obj: Ctx, mailbox_name: str, folder: str, since: datetime | None,
            batch_size: int | None, restart: bool) -> None:
    """Backfill a folder's mail history into cases, sending and scheduling nothing.

    History threads into cases like live mail (raw mail kept, malformed mail
    quarantined, mail already recorded skipped), but nobody is acknowledged or
    notified and no deadline, reminder or follow-up is set: cases it opens are
    closed and marked `imported`; live mail reopens them. The folder is only read
    (EXAMINE): no flag, move or delete, so it may run beside the daemon.
    Interrupted (Ctrl-C, SIGTERM, even kill -9), the same command continues where
    it stopped. Progress and ETA go to stderr, the summary to stdout.

    \b
    Example:
      mailbot import --mailbox support --folder Archive/2024 --since 2024-01-01
      mailbot import --mailbox support --folder INBOX --batch 200
    """
    import logging as _logging

    from mailbot.backfill.progress import progress_for
    from mailbot.backfill.run import import_history, mailbox_named, stop_on_signals

    app = obj.app()
    mailbox = mailbox_named(app.config, mailbox_name)
    if mailbox is None:
        known = ", ".join(m.name for m in app.config.mailboxes) or "none"
        click.echo(f"mailbot: no mailbox {mailbox_name!r} in the config (configured: {known})",
                   err=True)
        sys.exit(2)
    if not obj.debug:  # one log line per message would tear the progress bar apart
        _logging.getLogger("mailbot.pipeline").setLevel(_logging.WARNING)
    progress = progress_for(sys.stderr, f"importing {mailbox.name}/{folder}")
    with stop_on_signals() as stop:
        report = import_history(app.pipeline, app.db, mailbox, folder,
                                since=since.date() if since else None, batch_size=batch_size,
                                restart=restart, stop=stop, progress=progress)
    for line in report.summary():
        click.echo(line)
    if report.interrupted:
        sys.exit(1)


def main() -> None:
    cli(prog_name="mailbot")
