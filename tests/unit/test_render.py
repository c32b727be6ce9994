"""The renderer on real template files: sandbox, fallbacks, hot reload, languages, HTML."""

from __future__ import annotations

import filecmp
import os
from pathlib import Path

import pytest

from mailbot.outbox.render import (
    DEFAULT_DIR,
    KINDS,
    Renderer,
    TemplateUnavailable,
    one_line,
    render_strict,
)
from mailbot.outbox.samples import sample_context

REPO_TEMPLATES = Path(__file__).resolve().parents[2] / "templates"
LANGUAGES = ("en", "ru", "uk")


def write(path: Path, text: str, mtime: int | None = None) -> Path:
    """Write a template and give it a distinct mtime, as an editor saving later would."""
    path.write_text(text, encoding="utf-8")
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


@pytest.fixture
def admin(tmp_path: Path) -> Path:
    directory = tmp_path / "templates"
    directory.mkdir()
    return directory


ESCAPES = [
    "{{ ''.__class__.__mro__ }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ cycler.__init__.__globals__.os.system('id') }}",
    "{{ joiner.__init__.__globals__ }}",
    "{{ lipsum.__globals__['os'].popen('id').read() }}",
    "{{ namespace.__init__.__globals__ }}",
    "{{ self._TemplateReference__context }}",
    "{{ range.__self__ }}",
    "{{ case.__class__.__base__.__subclasses__() }}",
    "{{ ().__class__.__bases__[0].__subclasses__() }}",
    "{% set x = customer.update %}{{ x.__self__.__class__ }}",
    "{{ (9 ** 9) ** (9 ** 9) }}",
    "{{ 'x' * 100000000 }}",
]


@pytest.mark.parametrize("payload", ESCAPES)
def test_sandbox_escape_is_refused_and_default_used(admin: Path, payload: str) -> None:
    # A template reaching for Python internals (or exhausting memory) fails; the packaged ack is sent.
    write(admin / "ack.txt.j2", f"Subject: hi\n\n{payload}\n")
    rendered = Renderer(admin).render("ack", "en", sample_context("ack"))
    assert rendered.source == str(DEFAULT_DIR / "ack.txt.j2")
    assert "[SUP-42]" in rendered.text and "<class" not in rendered.text
    (failure,) = rendered.failures
    assert failure.path == str(admin / "ack.txt.j2") and failure.line == 3


def test_misspelt_variable_is_an_error_not_empty(admin: Path) -> None:
    # StrictUndefined: {{ custmer.name }} is reported with its file and line, never rendered as "".
    write(admin / "ack.txt.j2", "Subject: hi\n\nHello\n{{ custmer.name }}\n")
    output, error = render_strict(admin / "ack.txt.j2", sample_context("ack"))
    assert output == ""
    assert error == f"{admin / 'ack.txt.j2'}:4: 'custmer' is undefined"


def test_syntax_error_names_file_and_line(admin: Path) -> None:
    # A template that does not compile reports file:line, and the mail falls back to the default.
    write(admin / "ack.txt.j2", "Subject: hi\n\n{% if case.token %}\nno endif\n")
    rendered = Renderer(admin).render("ack", "en", sample_context("ack"))
    assert rendered.source.startswith(str(DEFAULT_DIR))
    (failure,) = rendered.failures
    assert failure.location() == f"{admin / 'ack.txt.j2'}:3"  # the unclosed {% if %}
    assert "endif" in failure.message


def test_missing_subject_line_falls_back(admin: Path) -> None:
    # The first line must be "Subject: …"; a template without it is an error with line 1.
    write(admin / "ack.txt.j2", "Hello {{ customer.name }}\n")
    rendered = Renderer(admin).render("ack", "en", sample_context("ack"))
    assert rendered.subject == "Re: Printer on fire"
    assert rendered.failures[0].line == 1 and "Subject" in rendered.failures[0].message


def test_customer_text_is_data_never_template_source(admin: Path) -> None:
    # A subject "{{ 7*7 }} {% raw %}" is printed as written: customer text is never evaluated.
    context = sample_context("ack")
    context["subject"] = "{{ 7*7 }} {% raw %} {#"
    context["customer"]["name"] = "{{ cycler.__init__.__globals__ }}"
    rendered = Renderer(admin).render("ack", "en", context)
    assert rendered.subject == "Re: {{ 7*7 }} {% raw %} {#"
    assert "Hello {{ cycler.__init__.__globals__ }}," in rendered.text
    assert rendered.failures == ()


def test_subject_is_one_line_whatever_the_variables(admin: Path) -> None:
    # CR/LF in a variable put on the Subject line cannot start a new header or reach the body.
    context = sample_context("ack")
    context["subject"] = "Hi\r\nBcc: victim@evil.test\n\nbody"
    rendered = Renderer(admin).render("ack", "en", context)
    assert rendered.subject == "Re: Hi"
    assert one_line("a\r\nBcc: x\x00\ty\x7f") == "a Bcc: x y"


def test_hot_reload_on_change_and_last_good_version_on_breakage(admin: Path) -> None:
    # An edit applies to the next render; a broken edit falls back to the last good admin version.
    renderer = Renderer(admin)
    path = write(admin / "ack.txt.j2", "Subject: v1 {{ subject }}\n\nfirst wording\n", 1_000_000)
    assert renderer.render("ack", "en", sample_context("ack")).text == "first wording\n"
    write(path, "Subject: v2 {{ subject }}\n\nsecond wording\n", 1_000_100)
    second = renderer.render("ack", "en", sample_context("ack"))
    assert (second.subject, second.text) == ("v2 Printer on fire", "second wording\n")
    write(path, "Subject: v3\n\n{{ broken }\n", 1_000_200)
    third = renderer.render("ack", "en", sample_context("ack"))
    assert third.text == "second wording\n"
    assert third.source == f"{path} (last good version)"
    assert third.failures and third.failures[0].path == str(path)
    write(path, "Subject: v4\n\nfixed\n", 1_000_300)
    fourth = renderer.render("ack", "en", sample_context("ack"))
    assert (fourth.text, fourth.failures) == ("fixed\n", ())


def test_render_error_also_falls_back_to_last_good(admin: Path) -> None:
    # A template that compiles but fails at render time (sandbox, undefined) uses the last good one.
    renderer = Renderer(admin)
    path = write(admin / "ack.txt.j2", "Subject: ok\n\ngood {{ case.token }}\n", 2_000_000)
    renderer.render("ack", "en", sample_context("ack"))
    write(path, "Subject: ok\n\n{{ ''.__class__.__mro__ }}\n", 2_000_100)
    rendered = renderer.render("ack", "en", sample_context("ack"))
    assert rendered.text == "good [SUP-42]\n"
    assert "unsafe" in rendered.failures[0].message


def test_no_usable_template_raises_with_every_failure(tmp_path: Path) -> None:
    # When even the packaged default cannot render the context, the error lists every failure.
    defaults = tmp_path / "defaults"
    defaults.mkdir()
    write(defaults / "ack.txt.j2", "Subject: x\n\n{{ missing }}\n")
    with pytest.raises(TemplateUnavailable) as caught:
        Renderer(None, default_dir=defaults).render("ack", "en", {})
    assert "'missing' is undefined" in str(caught.value)
    assert caught.value.failures[0].line == 3


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("language", LANGUAGES)
def test_each_kind_renders_in_each_language(kind: str, language: str) -> None:
    # Every shipped template renders with the shared sample data, in its own language.
    rendered = Renderer(None).render(kind, language, sample_context(kind))
    expected = f"{kind}.{language}.txt.j2" if language != "en" else f"{kind}.txt.j2"
    assert rendered.source == str(DEFAULT_DIR / expected)
    assert rendered.failures == () and rendered.subject and "[SUP-42]" in rendered.text
    cyrillic = any("а" <= ch <= "я" for ch in rendered.text.replace("Олена Коваленко", ""))
    assert cyrillic == (language != "en")


def test_ukrainian_and_russian_variants_differ(admin: Path) -> None:
    # The uk ack is Ukrainian (Дякуємо) and the ru ack Russian (Спасибо): not the same text.
    renderer = Renderer(admin)
    assert "Дякуємо" in renderer.render("ack", "uk", sample_context("ack")).text
    assert "Спасибо" in renderer.render("ack", "ru", sample_context("ack")).text


def test_missing_language_variant_falls_back_to_english(admin: Path) -> None:
    # A German customer gets the English ack; an admin's own de variant is used once it exists.
    renderer = Renderer(admin)
    assert renderer.render("ack", "de", sample_context("ack")).source.endswith("/ack.txt.j2")
    write(admin / "ack.de.txt.j2", "Subject: Re: {{ subject }}\n\nGuten Tag\n")
    assert renderer.render("ack", "de", sample_context("ack")).text == "Guten Tag\n"


def test_html_variant_is_autoescaped_and_matches_text_language(admin: Path) -> None:
    # ack.html.j2 escapes customer text; a Russian mail does not get the English HTML part.
    write(admin / "ack.html.j2", "<p>Hello {{ customer.name }}: {{ subject }}</p>\n")
    context = sample_context("ack")
    context["customer"]["name"] = "<script>alert(1)</script>"
    renderer = Renderer(admin)
    english = renderer.render("ack", "en", context)
    assert english.html == "<p>Hello &lt;script&gt;alert(1)&lt;/script&gt;: Printer on fire</p>\n"
    assert "<script>" in english.text  # the plain-text part is not HTML: no escaping there
    assert renderer.render("ack", "ru", context).html is None


def test_broken_html_part_is_dropped_not_blocking(admin: Path) -> None:
    # An HTML template that fails leaves the mail as plain text and reports the failure.
    write(admin / "ack.html.j2", "<p>{{ nope }}</p>")
    rendered = Renderer(admin).render("ack", "en", sample_context("ack"))
    assert rendered.html is None and rendered.text.startswith("Hello")
    assert rendered.failures[0].path == str(admin / "ack.html.j2")


def test_shipped_defaults_and_admin_copies_are_identical() -> None:
    # templates/ (what admins edit) starts as an exact copy of mailbot/default_templates/.
    shipped = sorted(p.name for p in DEFAULT_DIR.glob("*.j2"))
    copies = sorted(p.name for p in REPO_TEMPLATES.glob("*.j2"))
    assert shipped == copies
    assert len(shipped) >= len(KINDS) * len(LANGUAGES)
    _match, mismatch, errors = filecmp.cmpfiles(DEFAULT_DIR, REPO_TEMPLATES, shipped, shallow=False)
    assert (mismatch, errors) == ([], [])


def test_times_are_written_in_the_customer_language() -> None:
    # Day and month names follow the language; an unknown locale falls back to English names.
    from datetime import datetime, timezone

    from mailbot.outbox.render import format_local

    at = datetime(2026, 11, 24, 8, 0, tzinfo=timezone.utc)
    assert format_local(at, "Europe/Kyiv") == "Tue 24 Nov 2026, 10:00 (Europe/Kyiv)"
    assert format_local(at, "Europe/Kyiv", language="ru") == "вт 24 нояб. 2026, 10:00 (Europe/Kyiv)"
    assert format_local(at, "Europe/Kyiv", language="uk") == "вт 24 лист. 2026, 10:00 (Europe/Kyiv)"
    assert format_local(at, "Europe/Kyiv", language="qq") == "Tue 24 Nov 2026, 10:00 (Europe/Kyiv)"
    assert sample_context("ack", "uk")["preliminary_due"].startswith("вт 24 лист. 2026")
