"""render: outbox context → subject and body, from admin-editable Jinja2 templates.

The only module that uses Jinja2 (DESIGN.md, "Templates"). What it guarantees:

- Templates run in ``SandboxedEnvironment`` with ``StrictUndefined`` (a misspelt
  variable is an error, not an empty string); ``.html.j2`` files are autoescaped.
  Customer text only ever arrives as data in the context, never as template
  source, so a subject ``{{ 7*7 }}`` is printed as written.
- Lookup goes from specific to general — ``<kind>.<lang>.txt.j2``, then
  ``<kind>.txt.j2`` (English) — each first in the admin's directory, then in the
  packaged defaults. The HTML part, if any, must be the same variant as the text.
- Files are re-read when their modification time or size changes, so an edit
  takes effect on the next mail without a restart.
- A file that fails to load or render never stops a mail: the last version of that
  file that rendered well in this process is used, else the packaged default. The
  failure is logged and returned on ``Rendered.failures`` so the outbox worker can
  tell the admin (once per file content; see ``mailbot.outbox.notice``).

A text template's first line is ``Subject: …``; the rest, after a blank line, is
the body. The case token is added to the subject by code, not by the template.
"""

from __future__ import annotations

import hashlib
import logging
import operator
import traceback
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from babel.core import UnknownLocaleError
from babel.dates import format_datetime
from jinja2 import StrictUndefined, Template
from jinja2 import TemplateError as JinjaTemplateError
from jinja2 import TemplateSyntaxError
from jinja2.sandbox import SandboxedEnvironment

from mailbot.errors import TemplateError

log = logging.getLogger("mailbot.render")

DEFAULT_DIR = Path(__file__).resolve().parent.parent / "default_templates"
KINDS: tuple[str, ...] = (
    "ack", "ack_unregistered", "manager_new_case", "relay", "followup", "reminder", "escalation", "closed",
)
BASE_LANGUAGE = "en"  # ``<kind>.txt.j2`` is English; a missing variant falls back to it
PARTS = ("txt", "html")
LOCAL_PATTERN = "EEE d MMM y, HH:mm"  # CLDR; the same shape as the English strftime format
MAX_OUTPUT = 200_000  # characters one template may produce: a runaway loop is an error


def known_kinds(default_dir: Path = DEFAULT_DIR) -> tuple[str, ...]:
    """The documented kinds plus any other kind a feature ships a default template for."""
    extra = sorted({p.name.split(".", 1)[0] for p in default_dir.glob("*.txt.j2")} - set(KINDS))
    return (*KINDS, *extra)


@dataclass(frozen=True)
class TemplateFailure:
    """One template file that could not be used: what the admin must fix."""

    path: str
    line: int | None
    message: str
    content_sha256: str

    def location(self) -> str:
        return f"{self.path}:{self.line}" if self.line else self.path


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str | None
    source: str  # which file was used: shown in logs and previews
    failures: tuple[TemplateFailure, ...] = field(default=())


class TemplateUnavailable(TemplateError):
    """No version of the template (admin, last good, packaged) could render this context."""

    def __init__(self, message: str, failures: tuple[TemplateFailure, ...]) -> None:
        super().__init__(message)
        self.failures = failures


def format_local(value: datetime | str | None, zone: str, fmt: str = "%a %d %b %Y, %H:%M",
                 language: str = BASE_LANGUAGE) -> str:
    """A UTC instant as the customer reads it: in their zone, with the zone named, and with
    day and month names in their language (CLDR data via Babel: "вт 24 нояб. 2026, 10:00")."""
    if value is None or value == "":
        return ""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    local = value.astimezone(ZoneInfo(zone))
    if language != BASE_LANGUAGE:
        try:
            return f"{format_datetime(local, LOCAL_PATTERN, locale=language)} ({zone})"
        except (UnknownLocaleError, ValueError):
            pass  # a language CLDR does not know: English names rather than no date
    return f"{local.strftime(fmt)} ({zone})"


def one_line(text: str) -> str:
    """Control characters (CR, LF, TAB, NUL…) become spaces and runs of space collapse.

    Applied to every value that can reach a header, so no variable can add one.
    """
    return " ".join("".join(ch if ch >= " " and ch != "\x7f" else " " for ch in text).split())


class _Sandbox(SandboxedEnvironment):
    """The sandbox, plus limits on the two operators that can exhaust memory or CPU."""

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Any, operator_: str, left: Any, right: Any) -> Any:
        if operator_ == "**":
            if isinstance(right, (int, float)) and abs(right) > 64:
                raise JinjaTemplateError("exponent too large")
            return operator.pow(left, right)
        if isinstance(left, (str, list, tuple)) or isinstance(right, (str, list, tuple)):
            size = len(left) if isinstance(left, (str, list, tuple)) else len(right)
            times = right if isinstance(left, (str, list, tuple)) else left
            if isinstance(times, int) and size * times > MAX_OUTPUT:
                raise JinjaTemplateError("repetition too large")
        return operator.mul(left, right)


def _environment(autoescape: bool) -> SandboxedEnvironment:
    env = _Sandbox(
        undefined=StrictUndefined,
        autoescape=autoescape,
        keep_trailing_newline=True,
    )
    env.filters["local"] = format_local
    return env


@dataclass
class _Loaded:
    """One file as last read: its stat signature, source hash and compiled template (or error)."""

    signature: tuple[int, int]
    sha256: str
    template: Template | None
    failure: TemplateFailure | None


class Renderer:
    def __init__(self, admin_dir: Path | None, default_dir: Path = DEFAULT_DIR) -> None:
        self.admin_dir = Path(admin_dir) if admin_dir else None
        self.default_dir = Path(default_dir)
        self._text_env = _environment(autoescape=False)
        self._html_env = _environment(autoescape=True)
        self._files: dict[Path, _Loaded] = {}
        # name ("ack.ru.txt.j2") → the last admin template of that name that rendered well
        self._last_good: dict[str, Template] = {}
        self._reported: set[tuple[str, str]] = set()

    # ------------------------------------------------------------------ lookup

    def candidates(self, kind: str, language: str, part: str) -> list[tuple[str, Path]]:
        """Every file that may serve (kind, language, part), most specific first."""
        names = [f"{kind}.{language}.{part}.j2"] if language != BASE_LANGUAGE else []
        names.append(f"{kind}.{part}.j2")
        found: list[tuple[str, Path]] = []
        for name in names:
            for directory in (self.admin_dir, self.default_dir):
                if directory is not None and (directory / name).is_file():
                    found.append((name, directory / name))
        return found

    def load(self, path: Path, html: bool) -> _Loaded:
        """The compiled file, re-read only when its mtime or size changed (hot reload)."""
        stat = path.stat()
        signature = (stat.st_mtime_ns, stat.st_size)
        cached = self._files.get(path)
        if cached is not None and cached.signature == signature:
            return cached
        raw = path.read_bytes()
        sha = hashlib.sha256(raw).hexdigest()
        env = self._html_env if html else self._text_env
        try:
            source = raw.decode("utf-8")
            # Compiled under its real file name, so errors and tracebacks point at its lines.
            code = env.compile(source, name=path.name, filename=str(path))
            template = env.template_class.from_code(env, code, env.make_globals(None), None)
            template.mailbot_sha256 = sha  # type: ignore[attr-defined]
            loaded = _Loaded(signature, sha, template, None)
        except UnicodeDecodeError as exc:
            loaded = _Loaded(signature, sha, None,
                             TemplateFailure(str(path), None, f"not UTF-8: {exc}", sha))
        except TemplateSyntaxError as exc:
            loaded = _Loaded(signature, sha, None,
                             TemplateFailure(str(path), exc.lineno, exc.message or str(exc), sha))
        self._files[path] = loaded
        return loaded

    # ------------------------------------------------------------------ rendering

    def render(self, kind: str, language: str, context: dict[str, Any]) -> Rendered:
        """Render ``kind`` in ``language``; never gives up while any version works."""
        failures: list[TemplateFailure] = []
        for name, path in self.candidates(kind, language, "txt"):
            for label, attempt in self._versions(name, path, html=False, failures=failures):
                try:
                    subject, text = split_subject(_run(attempt, context), str(path),
                                                  getattr(attempt, "mailbot_sha256", ""))
                except TemplateFailureError as exc:
                    self._fail(exc.failure, failures)
                    continue
                self._remember(name, path, attempt)
                html = self._render_html(name, path, context, failures)
                return Rendered(subject, text, html, label, tuple(failures))
        detail = "; ".join(f"{f.location()}: {f.message}" for f in failures) or "not found"
        raise TemplateUnavailable(f"no usable template for {kind!r} ({language}): {detail}",
                                  tuple(failures))

    def _render_html(self, text_name: str, text_path: Path, context: dict[str, Any],
                     failures: list[TemplateFailure]) -> str | None:
        """The HTML alternative of the same variant as the text, if there is one.

        An HTML part that fails everywhere is dropped (the mail goes out as plain
        text) rather than stopping the mail.
        """
        name = text_name.removesuffix(".txt.j2") + ".html.j2"
        paths = [d / name for d in (self.admin_dir, self.default_dir)
                 if d is not None and (d / name).is_file()]
        for path in paths:
            for _label, attempt in self._versions(name, path, html=True, failures=failures):
                try:
                    html = _run(attempt, context)
                except TemplateFailureError as exc:
                    self._fail(exc.failure, failures)
                    continue
                self._remember(name, path, attempt)
                return html
        return None

    def _versions(self, name: str, path: Path, *, html: bool,
                  failures: list[TemplateFailure]) -> list[tuple[str, Template]]:
        """The file as it is now, then its last good version (admin files only)."""
        versions: list[tuple[str, Template]] = []
        try:
            loaded = self.load(path, html)
        except OSError as exc:  # deleted or unreadable between the lookup and the read
            loaded = _Loaded((0, 0), "", None, TemplateFailure(str(path), None, str(exc), ""))
        if loaded.template is not None:
            versions.append((str(path), loaded.template))
        elif loaded.failure is not None:
            self._fail(loaded.failure, failures)
        good = self._last_good.get(name)
        if good is not None and self._is_admin(path) and (
                loaded.template is None or good is not loaded.template):
            versions.append((f"{path} (last good version)", good))
        return versions

    def _remember(self, name: str, path: Path, template: Template) -> None:
        if self._is_admin(path):
            self._last_good[name] = template

    def _is_admin(self, path: Path) -> bool:
        return self.admin_dir is not None and path.parent == self.admin_dir

    def _fail(self, failure: TemplateFailure, failures: list[TemplateFailure]) -> None:
        if failure not in failures:
            failures.append(failure)
        key = (failure.path, failure.content_sha256)
        if key in self._reported:
            log.warning("template %s still broken, using a fallback", failure.location())
        else:
            self._reported.add(key)
            log.error("template %s: %s (falling back)", failure.location(), failure.message)


class TemplateFailureError(Exception):
    """Internal: one attempt failed; carries the failure with file and line."""

    def __init__(self, failure: TemplateFailure) -> None:
        super().__init__(failure.message)
        self.failure = failure


def _run(template: Template, context: dict[str, Any]) -> str:
    """Render, turning every way a template can fail into a TemplateFailureError."""
    path = template.filename or "<template>"
    sha = getattr(template, "mailbot_sha256", "")
    try:
        out = template.render(context)
    except Exception as exc:  # any error in admin code must fall back, never escape
        raise TemplateFailureError(
            TemplateFailure(path, _template_line(exc, path), _describe(exc), sha)
        ) from None
    if len(out) > MAX_OUTPUT:
        raise TemplateFailureError(
            TemplateFailure(path, None, f"output longer than {MAX_OUTPUT} characters", sha))
    return out


def _describe(exc: Exception) -> str:
    if isinstance(exc, JinjaTemplateError):
        return exc.message or type(exc).__name__
    return f"{type(exc).__name__}: {exc}"


def _template_line(exc: BaseException, path: str) -> int | None:
    """The template line of the error: Jinja rewrites traceback frames to the template's."""
    lineno = getattr(exc, "lineno", None)
    if isinstance(lineno, int):
        return lineno
    line = None
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename in (path, "<template>"):
            line = frame.lineno
    return line


def split_subject(rendered: str, filename: str, sha256: str = "") -> tuple[str, str]:
    """Separate the ``Subject:`` first line from the body; the subject is one line."""
    head, _, body = rendered.lstrip("\n").partition("\n")
    if not head.lower().startswith("subject:"):
        raise TemplateFailureError(TemplateFailure(
            filename, 1, "the first line must be 'Subject: …'", sha256))
    subject = one_line(head[len("subject:"):])
    return subject, body.lstrip("\n")


def render_strict(path: Path, context: dict[str, Any]) -> tuple[str, str | None]:
    """Load and render one file with no fallback (``templates check``, ``preview``).

    Returns (output, None) or ("", "file:line: message").
    """
    renderer = Renderer(None, default_dir=path.parent)
    try:
        loaded = renderer.load(path, html=path.name.endswith(".html.j2"))
    except OSError as exc:
        return "", f"{path}: {exc}"
    if loaded.template is None:
        assert loaded.failure is not None
        return "", f"{loaded.failure.location()}: {loaded.failure.message}"
    try:
        out = _run(loaded.template, context)
        if path.name.endswith(".txt.j2"):
            split_subject(out, str(path), loaded.sha256)
    except TemplateFailureError as exc:
        return "", f"{exc.failure.location()}: {exc.failure.message}"
    return out, None


__all__ = [
    "BASE_LANGUAGE", "DEFAULT_DIR", "KINDS", "known_kinds", "PARTS", "Rendered", "Renderer", "TemplateFailure",
    "TemplateUnavailable", "format_local", "one_line", "render_strict", "split_subject",
]
