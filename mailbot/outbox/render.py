"""render: outbox context → subject and body, from admin-editable Jinja2 templates.

The only module that uses Jinja2. Templates run in the sandbox with
``StrictUndefined`` (a misspelt variable is an error, not an empty string);
customer text only ever arrives as data in the context, never as template source.
Lookup goes from specific to general — ``<kind>.<lang>.txt.j2``, then
``<kind>.txt.j2`` — first in the admin's directory, then in the packaged defaults,
so a missing or broken admin template never stops a mail. Edited files are picked
up on the next render (Jinja2 checks modification times).

A template's first line is ``Subject: …``; the rest, after a blank line, is the
body. The case token is added to the subject by code, not by the template.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import (
    ChoiceLoader,
    FileSystemLoader,
    StrictUndefined,
    TemplateError as JinjaTemplateError,
    TemplateNotFound,
    select_autoescape,
)
from jinja2.sandbox import SandboxedEnvironment

from mailbot.errors import TemplateError

log = logging.getLogger("mailbot.render")

DEFAULT_DIR = Path(__file__).resolve().parent.parent / "default_templates"


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str | None
    source: str  # which file was used: shown in logs and previews


def format_local(value: datetime | str | None, zone: str, fmt: str = "%a %d %b %Y, %H:%M") -> str:
    """A UTC instant as the customer reads it: in their zone, with the zone named."""
    if value is None or value == "":
        return ""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    local = value.astimezone(ZoneInfo(zone))
    return f"{local.strftime(fmt)} ({zone})"


class Renderer:
    def __init__(self, admin_dir: Path | None, default_dir: Path = DEFAULT_DIR) -> None:
        self.admin_dir = admin_dir
        self.default_dir = default_dir
        self._admin = self._environment([admin_dir] if admin_dir else [])
        self._default = self._environment([default_dir])

    @staticmethod
    def _environment(dirs: list[Path]) -> SandboxedEnvironment:
        env = SandboxedEnvironment(
            loader=ChoiceLoader([FileSystemLoader(str(d)) for d in dirs]),
            undefined=StrictUndefined,
            autoescape=select_autoescape(enabled_extensions=("html.j2",), default=False,
                                         default_for_string=False),
            auto_reload=True,
            keep_trailing_newline=True,
        )
        env.filters["local"] = format_local
        return env

    def render(self, kind: str, language: str, context: dict[str, Any]) -> Rendered:
        """Render ``kind`` in ``language`` (falling back to the default language file)."""
        names = [f"{kind}.{language}.txt.j2", f"{kind}.txt.j2"]
        errors: list[str] = []
        for env, where in ((self._admin, self.admin_dir), (self._default, self.default_dir)):
            try:
                template = env.select_template(names)
            except TemplateNotFound:
                continue
            except JinjaTemplateError as exc:
                errors.append(f"{where}: {exc}")
                log.error("template %s in %s failed to load: %s", kind, where, exc)
                continue
            try:
                subject, text = split_subject(template.render(context), template.filename or "")
                html = self._render_html(env, kind, language, context)
                return Rendered(subject, text, html, template.filename or kind)
            except (JinjaTemplateError, TemplateError, TypeError, ValueError) as exc:
                errors.append(f"{template.filename}: {exc}")
                log.error("template %s failed to render: %s", template.filename, exc)
        raise TemplateError(f"no usable template for {kind!r}: " + ("; ".join(errors) or "not found"))

    @staticmethod
    def _render_html(env: SandboxedEnvironment, kind: str, language: str,
                     context: dict[str, Any]) -> str | None:
        try:
            template = env.select_template([f"{kind}.{language}.html.j2", f"{kind}.html.j2"])
        except TemplateNotFound:
            return None
        return template.render(context)


def split_subject(rendered: str, filename: str) -> tuple[str, str]:
    """Separate the ``Subject:`` first line from the body."""
    head, _, body = rendered.lstrip("\n").partition("\n")
    if not head.lower().startswith("subject:"):
        raise TemplateError(f"{filename}: the first line must be 'Subject: …'")
    subject = " ".join(head[len("subject:"):].split())
    return subject, body.lstrip("\n")
