"""TOML configuration → validated, frozen settings.

The file is the contract admins rely on (DESIGN.md, "Command line and
configuration"): every key is checked at start, unknown keys are refused (a typo
must not silently fall back to a default), and a problem is reported as
``file: key: reason`` — never a traceback. Secrets are read from the environment
or a file named in the config, never from the config itself, and are held as
``SecretStr`` so they cannot end up in a log line by accident.
"""

from __future__ import annotations

import os
import re
import tomllib
from datetime import time as dt_time
from datetime import timedelta
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from mailbot.errors import ConfigError

DEFAULT_PATH = Path("config/mailbot.toml")
_EMAIL_RE = re.compile(r"^[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+$|^[^@\s<>]+@localhost$")
_INTERVAL_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$")


def parse_interval(text: str) -> timedelta:
    """Wall-clock intervals for timeouts, polling and windows: "500ms", "30s", "5m", "1h", "7d"."""
    match = _INTERVAL_RE.match(text)
    if not match:
        raise ValueError(f"{text!r} is not an interval like '30s', '5m' or '1h'")
    value, unit = float(match.group(1)), match.group(2)
    seconds = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}[unit] * value
    return timedelta(seconds=seconds)


def _check_interval(value: str) -> str:
    parse_interval(value)
    return value


def _check_single_line(value: str) -> str:
    if any(c in value for c in "\r\n"):
        raise ValueError("must be a single line")
    return value


Interval = Annotated[str, AfterValidator(_check_interval)]
SingleLine = Annotated[str, AfterValidator(_check_single_line)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_email(value: str) -> str:
    value = value.strip()
    if not _EMAIL_RE.match(value):
        raise ValueError(f"{value!r} is not an email address")
    return value.lower()


Email = Annotated[str, AfterValidator(_check_email)]


class _HasSecret(_Section):
    """Sections whose password may come from ``password_env`` or ``password_file``."""

    password_env: str | None = None
    password_file: Path | None = None

    def secret(self) -> SecretStr | None:
        return _read_secret(self.password_env, self.password_file)


def _read_secret(env: str | None, file: Path | None) -> SecretStr | None:
    if env and file:
        raise ValueError("set either *_env or *_file, not both")
    if env:
        if env not in os.environ:
            raise ValueError(f"environment variable {env} is not set")
        return SecretStr(os.environ[env])
    if file:
        try:
            return SecretStr(Path(file).read_text(encoding="utf-8").rstrip("\r\n"))
        except OSError as exc:
            raise ValueError(f"cannot read secret file {file}: {exc.strerror}") from None
    return None


class DatabaseConfig(_Section):
    url: str = "sqlite:///var/mailbot.db"
    # How long a daemon's claim on a mailbox lasts without renewal: after a kill -9 another
    # daemon on the same PostgreSQL takes the mailbox over within this time.
    mailbox_lease: Interval = "15s"

    @field_validator("url")
    @classmethod
    def _known_backend(cls, value: str) -> str:
        if not (value.startswith("sqlite:") or value.startswith("postgresql")):
            raise ValueError("only sqlite:///PATH and postgresql+psycopg://… are supported")
        return value


class MailboxConfig(_HasSecret):
    """One watched mailbox: IMAP in production, a Maildir for the demo and for local delivery."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    address: Email
    kind: Literal["imap", "maildir"] = "imap"
    imap_host: str | None = None
    imap_port: int = Field(default=993, ge=1, le=65535)
    imap_ssl: bool = True
    imap_starttls: bool = False
    username: str | None = None
    folder: str = "INBOX"
    processed_folder: str | None = None
    quarantine_folder: str = Field(default="Quarantine", min_length=1)
    path: Path | None = None
    idle: bool = True
    poll_interval: Interval = "30s"
    batch_size: int = Field(default=100, ge=1, le=5000)
    batch_bytes: int = Field(default=32 * 1024 * 1024, ge=1024 * 1024)
    timeout: Interval = "60s"

    @model_validator(mode="after")
    def _complete(self) -> "MailboxConfig":
        if self.kind == "imap":
            if not self.imap_host:
                raise ValueError("imap_host is required for an IMAP mailbox")
            if not self.username:
                raise ValueError("username is required for an IMAP mailbox")
            if not (self.password_env or self.password_file):
                raise ValueError("password_env or password_file is required for an IMAP mailbox")
            if self.imap_ssl and self.imap_starttls:
                raise ValueError("imap_ssl and imap_starttls are mutually exclusive")
        elif self.path is None:
            raise ValueError("path is required for a maildir mailbox")
        if self.quarantine_folder in (self.folder, self.processed_folder):
            raise ValueError("quarantine_folder must differ from folder and processed_folder")
        return self

    @property
    def poll_interval_s(self) -> float:
        return parse_interval(self.poll_interval).total_seconds()

    @property
    def timeout_s(self) -> float:
        return parse_interval(self.timeout).total_seconds()


class SmtpConfig(_HasSecret):
    """Where outgoing mail goes: an SMTP server, or a directory of .eml files (demo, dry runs)."""

    transport: Literal["smtp", "directory"] = "smtp"
    host: str = "localhost"
    port: int = Field(default=587, ge=1, le=65535)
    ssl: bool = False
    starttls: bool = True
    username: str | None = None
    from_address: Email
    from_name: SingleLine = "Support"
    directory: Path | None = None
    timeout: Interval = "30s"
    retry_max_delay: Interval = "15m"
    stuck_warning_after: Interval = "10m"
    claim_lease: Interval = "5m"

    @model_validator(mode="after")
    def _complete(self) -> "SmtpConfig":
        if self.transport == "directory" and self.directory is None:
            raise ValueError("directory is required when transport = 'directory'")
        if self.ssl and self.starttls:
            raise ValueError("ssl and starttls are mutually exclusive")
        if self.username and not (self.password_env or self.password_file):
            raise ValueError("username is set but neither password_env nor password_file")
        return self


class CasesConfig(_Section):
    token_prefix: str = Field(default="SUP", pattern=r"^[A-Za-z][A-Za-z0-9_]{0,15}$")


class ServiceLevelConfig(_Section):
    calendar: str = "24x7"
    timezone: str = "UTC"
    holidays: str | None = None
    extra_holidays: list[str] = Field(default_factory=list)
    acknowledge: str = "5m"
    preliminary: str = "1d"
    detailed: str = "2d"

    @model_validator(mode="after")
    def _builds(self) -> "ServiceLevelConfig":
        from mailbot.schedule.calendar import BusinessCalendar, parse_duration

        for name in ("acknowledge", "preliminary", "detailed"):
            try:
                parse_duration(getattr(self, name))
            except ValueError as exc:
                raise ValueError(f"{name}: {exc}") from None
        BusinessCalendar.from_spec(
            self.calendar, self.timezone, self.holidays, self.extra_holidays
        )
        return self


def _check_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{value!r} is not an IANA time zone (e.g. 'Europe/Kyiv')") from None
    return value


Zone = Annotated[str, AfterValidator(_check_zone)]
Language = Annotated[str, Field(pattern=r"^[a-z]{2}$")]


class DefaultsConfig(_Section):
    service_level: str = "standard"
    timezone: Zone = "UTC"
    language: Language = "en"


class SecurityConfig(_Section):
    secret_env: str | None = None
    secret_file: Path | None = None
    # authserv-ids of our own border MTA, whose Authentication-Results (dkim=pass) we believe
    trusted_authserv_ids: list[str] = Field(default_factory=list)


class EscalationConfig(_Section):
    """Who hears about a missed deadline, and when the manager is reminded before it."""

    address: Email | None = None  # escalation at the deadline goes here (and to the manager)
    supervisor: Email | None = None  # ... and here if still unanswered `supervisor_after` later
    supervisor_after: str = "4h"  # working time of the case's service level
    reminder_at: float = Field(default=0.75, gt=0, lt=1)  # share of the window before reminding

    @field_validator("supervisor_after")
    @classmethod
    def _duration(cls, value: str) -> str:
        from mailbot.schedule.calendar import parse_duration

        parse_duration(value)
        return value


class FollowupConfig(_Section):
    """The overnight follow-up: when it reaches the customer, in the customer's zone."""

    enabled: bool = True
    local_time: str = Field(default="08:30", pattern=r"^([01]\d|2[0-3]):[0-5]\d$")
    min_gap: Interval = "6h"  # wall-clock time between the customer's message and the follow-up
    digest: bool = True  # managers get a morning digest of what came in during their night
    # Follow-ups in a row with no answer from the team in between: a robot that answers
    # every follow-up must not get one every morning for ever.
    max_unanswered: int = Field(default=2, ge=1)

    @property
    def time(self) -> dt_time:
        hours, minutes = self.local_time.split(":")
        return dt_time(int(hours), int(minutes))

    @property
    def gap(self) -> timedelta:
        return parse_interval(self.min_gap)


class ManagerConfig(_Section):
    """A person who answers cases from their own mail client."""

    email: Email
    name: SingleLine = ""
    timezone: Zone = "UTC"
    language: Language = "en"


class OrganizationConfig(_Section):
    """A customer organization: who its people are, their manager and their service level."""

    name: str = Field(min_length=1)
    domains: list[str] = Field(min_length=1)  # "acme.example" or a full address "ceo@acme.example"
    service_level: str | None = None
    manager: str | None = None  # the email or name of a [[managers]] entry
    timezone: Zone | None = None
    language: Language | None = None

    @field_validator("domains")
    @classmethod
    def _lower(cls, value: list[str]) -> list[str]:
        cleaned = [d.strip().lower().lstrip("@") for d in value]
        for domain in cleaned:
            if not domain or " " in domain or "." not in domain.rpartition("@")[2]:
                raise ValueError(f"{domain!r} is neither a domain nor an address")
        return cleaned


class CustomersConfig(_Section):
    """The customer directory (``mailbot customers import``) and how strangers are answered.

    ``unregistered_ack`` picks the acknowledgement of a sender who is neither in the
    directory nor at an ``[[organizations]]`` address: ``auto`` sends them
    ``ack_unregistered`` only once the directory has at least one row (an install
    that never imports customers keeps answering everyone with ``ack``),
    ``always`` does so regardless, ``never`` gives everyone ``ack``.
    """

    unregistered_ack: Literal["auto", "always", "never"] = "auto"


class TemplatesConfig(_Section):
    dir: Path = Path("templates")
    # Who is told (once per broken file version) that a template failed and a fallback was used.
    admin_address: Email | None = None


class StorageConfig(_Section):
    dir: Path = Path("var/storage")
    max_message_size: int = Field(default=50 * 1024 * 1024, ge=1024)


class ProcessingConfig(_Section):
    """How inbound mail is parsed: in worker processes, each message within a time limit."""

    # "auto": one per core, at most 4; 0: parse in the daemon's own process (no time limit).
    workers: int | Literal["auto"] = "auto"
    time_limit: Interval = "30s"

    @field_validator("workers")
    @classmethod
    def _workers(cls, value: int | str) -> int | str:
        if isinstance(value, int) and not 0 <= value <= 64:
            raise ValueError("must be \"auto\" or a number of processes from 0 to 64")
        return value

    @property
    def worker_count(self) -> int:
        if self.workers == "auto":
            return max(1, min(os.cpu_count() or 1, 4))
        return int(self.workers)

    @property
    def time_limit_s(self) -> float:
        return parse_interval(self.time_limit).total_seconds()


class LoopProtectionConfig(_Section):
    """Limits that stop mail loops the header rules miss (a helpdesk that strips every marker)."""

    max_acks_per_sender: int = Field(default=3, ge=0, le=10000)
    window: str = "1h"
    bounce_suppress: str = "7d"

    @field_validator("window", "bounce_suppress")
    @classmethod
    def _interval(cls, value: str) -> str:
        if parse_interval(value) <= timedelta(0):
            raise ValueError("must be longer than zero")
        return value

    @property
    def window_td(self) -> timedelta:
        return parse_interval(self.window)

    @property
    def bounce_suppress_td(self) -> timedelta:
        return parse_interval(self.bounce_suppress)


class LoggingConfig(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # text: the classic human line; kv: logfmt key=value; json: one JSON object per line.
    format: Literal["text", "kv", "json"] = "text"


def split_listen(value: str) -> tuple[str, int]:
    """``"127.0.0.1:9464"`` or ``"[::1]:9464"`` → host and port."""
    host, colon, port = value.rpartition(":")
    if not colon or not host or not port.isdigit():
        raise ValueError(f"{value!r} is not host:port (e.g. '127.0.0.1:9464')")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError(f"{value!r}: write an IPv6 address in brackets, e.g. '[::1]:9464'")
    if not 1 <= int(port) <= 65535 or not host or any(c.isspace() for c in host):
        raise ValueError(f"{value!r} is not host:port with a port from 1 to 65535")
    return host, int(port)


def _check_listen(value: str) -> str:
    split_listen(value)
    return value


class MetricsConfig(_Section):
    """The optional Prometheus endpoint (``/metrics``) and its health check (``/healthz``)."""

    enabled: bool = False
    # Unauthenticated: keep it on loopback unless a firewall guards the port.
    listen: Annotated[str, AfterValidator(_check_listen)] = "127.0.0.1:9464"
    # /healthz fails once a mailbox has been unreachable over IMAP for longer than this.
    # (The outbox counts as stuck after [smtp] stuck_warning_after, as in the log warning.)
    imap_unreachable_after: Interval = "5m"

    @property
    def address(self) -> tuple[str, int]:
        return split_listen(self.listen)

    @property
    def imap_unreachable_td(self) -> timedelta:
        return parse_interval(self.imap_unreachable_after)


class Config(_Section):
    """The whole validated configuration; ``source`` is the file it came from."""

    source: Path = Path("<memory>")
    database: DatabaseConfig = DatabaseConfig()
    mailboxes: list[MailboxConfig] = Field(default_factory=list)
    smtp: SmtpConfig
    cases: CasesConfig = CasesConfig()
    service_levels: dict[str, ServiceLevelConfig] = Field(
        default_factory=lambda: {"standard": ServiceLevelConfig()}
    )
    defaults: DefaultsConfig = DefaultsConfig()
    security: SecurityConfig = SecurityConfig()
    escalation: EscalationConfig = EscalationConfig()
    followup: FollowupConfig = FollowupConfig()
    managers: list[ManagerConfig] = Field(default_factory=list)
    organizations: list[OrganizationConfig] = Field(default_factory=list)
    customers: CustomersConfig = CustomersConfig()
    templates: TemplatesConfig = TemplatesConfig()
    storage: StorageConfig = StorageConfig()
    processing: ProcessingConfig = ProcessingConfig()
    loop_protection: LoopProtectionConfig = LoopProtectionConfig()
    logging: LoggingConfig = LoggingConfig()
    metrics: MetricsConfig = MetricsConfig()

    @model_validator(mode="after")
    def _consistent(self) -> "Config":
        names = [m.name for m in self.mailboxes]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"mailboxes: duplicate name {duplicates[0]!r}")
        if self.defaults.service_level not in self.service_levels:
            raise ValueError(
                f"defaults.service_level: {self.defaults.service_level!r} is not defined "
                f"under [service_levels] (have: {', '.join(sorted(self.service_levels))})"
            )
        emails = [m.email for m in self.managers]
        if len(set(emails)) != len(emails):
            raise ValueError("managers: the same email is listed twice")
        if self.managers and not (self.security.secret_env or self.security.secret_file):
            raise ValueError("security: secret_env or secret_file is required when [[managers]] "
                             "are configured (it signs the notifications managers reply to)")
        for index, org in enumerate(self.organizations):
            if org.service_level and org.service_level not in self.service_levels:
                raise ValueError(f"organizations[{index}].service_level: {org.service_level!r} "
                                 "is not defined under [service_levels]")
            if org.manager and self.find_manager(org.manager) is None:
                raise ValueError(f"organizations[{index}].manager: {org.manager!r} is not the "
                                 "email or name of any [[managers]] entry")
        return self

    def find_manager(self, ident: str) -> ManagerConfig | None:
        """A manager by email or (case-insensitive) name, as in ``#assign`` and the config."""
        wanted = ident.strip().strip("<>").lower()
        for manager in self.managers:
            if manager.email == wanted or (manager.name and manager.name.lower() == wanted):
                return manager
        return None

    @cached_property
    def own_addresses(self) -> frozenset[str]:
        """Every address mailbot sends from or receives at: mail from these is never answered."""
        return frozenset({self.smtp.from_address, *(m.address for m in self.mailboxes)})

    def mailbox(self, name: str) -> MailboxConfig:
        for mailbox in self.mailboxes:
            if mailbox.name == name:
                return mailbox
        raise KeyError(name)


def _format_loc(loc: tuple[Any, ...]) -> str:
    key = ""
    for part in loc:
        if isinstance(part, int):
            key += f"[{part}]"
        elif str(part).startswith("function-after") or part in ("", "model"):
            continue
        else:
            key += ("." if key else "") + str(part)
    return key


def _resolve_paths(data: dict[str, Any], base: Path) -> None:
    """Relative paths in the file are relative to the file, not to the caller's cwd.

    systemd and cron start mailbot from ``/``; an admin tests it from their home.
    Both must read the same database and storage.
    """

    def fix(section: dict[str, Any] | None, key: str) -> None:
        if section and isinstance(section.get(key), str) and section[key]:
            path = Path(section[key]).expanduser()
            section[key] = str(path if path.is_absolute() else base / path)

    # Defaults that name paths are paths next to the file too.
    data.setdefault("database", {}).setdefault("url", DatabaseConfig().url)
    data.setdefault("storage", {}).setdefault("dir", str(StorageConfig().dir))
    data.setdefault("templates", {}).setdefault("dir", str(TemplatesConfig().dir))
    for name in ("templates", "storage"):
        fix(data.get(name), "dir")
    fix(data.get("smtp"), "directory")
    fix(data.get("smtp"), "password_file")
    fix(data.get("security"), "secret_file")
    for mailbox in data.get("mailboxes") or []:
        if isinstance(mailbox, dict):
            fix(mailbox, "path")
            fix(mailbox, "password_file")
    database = data.get("database")
    if isinstance(database, dict) and isinstance(database.get("url"), str):
        url = database["url"]
        prefix = "sqlite:///"
        if url.startswith(prefix) and not url.startswith(prefix + "/") and url != "sqlite://":
            rest = url[len(prefix):]
            if rest and rest != ":memory:":
                database["url"] = prefix + str(base / rest)


def load_config(path: Path | str | None = None) -> Config:
    """Read, resolve and validate the configuration.

    Raises ``ConfigError`` naming the file, the key and the problem; the caller
    (the CLI) prints it and exits 2.
    """
    path = Path(path or os.environ.get("MAILBOT_CONFIG") or DEFAULT_PATH)
    shown = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(shown, "", "file not found (copy config/mailbot.example.toml)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(shown, "", f"cannot read: {exc}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(shown, "", f"not valid TOML: {exc}") from None
    return config_from_dict(data, source=path)


def config_from_dict(data: dict[str, Any], *, source: Path = Path("<memory>")) -> Config:
    """Validate an already-parsed mapping (tests and the demo build configs this way)."""
    data = dict(data)
    data.pop("source", None)
    _resolve_paths(data, source.resolve().parent if source.name != "<memory>" else Path.cwd())
    try:
        config = Config.model_validate({**data, "source": source})
        # Secrets are resolved now so a missing variable fails at start, not at 3 a.m.
        for index, mailbox in enumerate(config.mailboxes):
            try:
                mailbox.secret()
            except ValueError as exc:
                raise ConfigError(str(source), f"mailboxes[{index}].password", str(exc)) from None
        try:
            config.smtp.secret()
        except ValueError as exc:
            raise ConfigError(str(source), "smtp.password", str(exc)) from None
        try:
            _read_secret(config.security.secret_env, config.security.secret_file)
        except ValueError as exc:
            raise ConfigError(str(source), "security.secret", str(exc)) from None
        return config
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            key = _format_loc(tuple(error["loc"]))
            message = error["msg"].removeprefix("Value error, ")
            if error["type"] == "extra_forbidden":
                message = "unknown key (check the spelling against config/mailbot.example.toml)"
            elif error["type"] == "missing":
                message = "required key is missing"
            problems.append((key, message))
        key, why = problems[0]
        if len(problems) > 1:
            why += "".join(f"\n{source}: {k}: {w}" for k, w in problems[1:])
        raise ConfigError(str(source), key, why) from None


def security_secret(config: Config) -> bytes | None:
    """The HMAC key for signed Message-IDs and reply addresses, when configured."""
    secret = _read_secret(config.security.secret_env, config.security.secret_file)
    return secret.get_secret_value().encode() if secret else None


def zone_of(name: str) -> ZoneInfo:
    return ZoneInfo(_check_zone(name))
