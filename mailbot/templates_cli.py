"""``mailbot templates check`` and ``preview``: what an admin runs after editing a template.

``check`` proves, before any customer sees it, that every template the renderer
would pick — for every kind and every language — loads and renders with the
sample data of ``mailbot.outbox.samples``; it names ``file:line: message`` for
each problem. ``preview`` prints one mail as it would go out (headers and body),
with the sample data or with a real case's data built by the same function the
pipeline uses.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select

from mailbot.config import Config
from mailbot.db.models import Case, Message, Outbox
from mailbot.errors import MailbotError
from mailbot.language import SUPPORTED
from mailbot.outbox.compose import compose
from mailbot.outbox.contexts import ack_context
from mailbot.outbox.queue import make_message_id
from mailbot.outbox.render import DEFAULT_DIR, Renderer, known_kinds, render_strict
from mailbot.outbox.samples import sample_context

# Mail to staff goes to the manager; everything else to the customer.
_TO_MANAGER = frozenset({"manager_new_case", "manager_update", "reminder", "escalation"})
_NAME_RE = re.compile(r"^(?P<kind>[a-z_]+)(?:\.(?P<lang>[a-z]{2}))?\.(?P<part>txt|html)\.j2$")


@dataclass
class CheckReport:
    lines: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


def check_templates(config: Config, default_dir: Path = DEFAULT_DIR) -> CheckReport:
    """Render every (kind, language, part) as the renderer would resolve it, with no fallback."""
    admin_dir = config.templates.dir
    report = CheckReport()
    kinds = known_kinds(default_dir)
    languages = {*SUPPORTED, config.defaults.language}
    admin_files = sorted(admin_dir.glob("*.j2")) if admin_dir.is_dir() else []
    for path in admin_files:
        match = _NAME_RE.match(path.name)
        if match is None or match["kind"] not in kinds:
            report.errors.append(
                f"{path}: not a template name mailbot uses (expected KIND[.xx].txt.j2 or "
                f".html.j2, KIND one of {', '.join(kinds)})")
            continue
        if match["lang"]:
            languages.add(match["lang"])
    renderer = Renderer(admin_dir, default_dir)
    checked: dict[Path, str | None] = {}
    for kind in kinds:
        for language in sorted(languages):
            try:
                context = sample_context(kind, language)
            except KeyError as exc:
                report.errors.append(f"{kind}: {exc.args[0]}")
                break
            text = renderer.candidates(kind, language, "txt")
            if not text:
                report.errors.append(f"{admin_dir / f'{kind}.txt.j2'}: missing (no packaged "
                                     "default either)")
                continue
            name, path = text[0]
            paths = [path]
            html_name = name.removesuffix(".txt.j2") + ".html.j2"
            for directory in (admin_dir, default_dir):
                if (directory / html_name).is_file():
                    paths.append(directory / html_name)
                    break
            for file in paths:
                if file not in checked:
                    checked[file] = render_strict(file, context)[1]
                error = checked[file]
                if error is None:
                    report.lines.append(f"ok     {kind:<17} {language}  {file}")
                else:
                    report.lines.append(f"ERROR  {kind:<17} {language}  {error}")
                    if error not in report.errors:
                        report.errors.append(error)
    return report


def _find_case(session: Any, ident: str, prefix: str) -> Case | None:
    from mailbot.views import find_case

    return find_case(session, ident, prefix)


def case_context(session: Any, config: Config, kind: str, ident: str,
                 language: str | None = None) -> tuple[Case, dict[str, Any]]:
    """A real case's variables for ``kind``: what the pipeline passes, over the sample data.

    Kinds whose feature is not built yet take their other variables from the sample.
    """
    case = _find_case(session, ident, config.cases.token_prefix)
    if case is None:
        raise MailbotError(f"no case {ident}")
    first = session.scalar(select(Message).where(Message.case_id == case.id,
                                                 Message.direction == "in")
                           .order_by(Message.received_at, Message.id).limit(1))
    received_at: datetime = first.received_at if first is not None else case.opened_at
    session.expunge(case)  # detached: the --lang override below can never be written back
    if language:
        case.language = language
    context = sample_context(kind, case.language)
    context.update({key: value for key, value in ack_context(case, received_at, config).items()
                    if key in context})
    return case, context


def preview(config: Config, kind: str, language: str | None, now: datetime,
            case_loader: Callable[[], tuple[Case, dict[str, Any]]] | None = None,
            warn: Callable[[str], None] = lambda line: None) -> str:
    """The mail as it would go out: headers, a blank line, the text, then any HTML."""
    if kind not in known_kinds():
        raise MailbotError(f"unknown template {kind!r} (one of {', '.join(known_kinds())})")
    case: Case | None = None
    context: dict[str, Any]
    if case_loader is not None:
        case, context = case_loader()
        lang = language or case.language
    else:
        lang = language or config.defaults.language
        context = sample_context(kind, lang)
    rendered = Renderer(config.templates.dir).render(kind, lang, context)
    for failure in rendered.failures:
        warn(f"warning: {failure.location()}: {failure.message} (a fallback was used)")
    domain = config.smtp.from_address.partition("@")[2]
    who = "manager" if kind in _TO_MANAGER and "manager" in context else "customer"
    row = Outbox(kind=kind, cause="preview", message_id=make_message_id(kind, case, domain),
                 to_addrs=[context[who]["email"]], cc_addrs=[], references=[],
                 in_reply_to=None, language=lang, context=context)
    number = case.number if case is not None else context["case"]["number"]
    message = compose(row, rendered, from_address=config.smtp.from_address,
                      from_name=config.smtp.from_name, token_prefix=config.cases.token_prefix,
                      case_number=number, now=now)
    headers = "\n".join(f"{key}: {value}" for key, value in message.items()
                        if key.lower() not in ("content-type", "content-transfer-encoding",
                                               "mime-version"))
    out = f"# rendered from {rendered.source}\n{headers}\n\n{rendered.text}"
    if rendered.html is not None:
        out += f"\n----- text/html -----\n{rendered.html}"
    return out
