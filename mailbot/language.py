"""Which language a case is answered in, and why.

The order (DESIGN.md, "Templates"): the customer's own setting, else their
organization's, else the language detected in the customer's message text, else
``[defaults] language``. The source is recorded on the case's ``case_opened``
event so an admin can see why a customer got Russian rather than Ukrainian.

Detection uses lingua (``lingua-language-detector``): its models ship inside the
wheel, it works offline, and it is built for short texts — and it tells
Ukrainian from Russian reliably, which character heuristics alone do not for
texts without і/ї/є/ґ. The detector is restricted to the languages we have
templates for (a mail in another Latin-script language comes out as English,
which is also where a missing variant falls back to); below ``MIN_CONFIDENCE``,
or with fewer than ``MIN_LETTERS`` letters, the text counts as undetected.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover - typing only
    from lingua import LanguageDetector

# The languages mailbot ships templates for; detection answers only with these.
SUPPORTED: tuple[str, ...] = ("en", "ru", "uk")
MIN_CONFIDENCE = 0.6
MIN_LETTERS = 3  # "ok", "?" or a bare number say nothing about the writer's language
MAX_CHARS = 4000  # the opening of a mail is enough; quoted history below adds only noise


@dataclass(frozen=True)
class LanguageChoice:
    """The language to answer in and where it came from (customer|organization|detected|default)."""

    language: str
    source: str


@functools.cache
def _detector() -> LanguageDetector:
    """Built once per process: loading the three models takes a fraction of a second.

    Low-accuracy mode (trigram models only) costs ~10 MB instead of ~100 MB of memory
    and still tells Ukrainian from Russian on the short pairs the tests check: their
    alphabets differ (і ї є ґ against ы э ё ъ), which is where the signal is.
    """
    from lingua import Language, LanguageDetectorBuilder

    return LanguageDetectorBuilder.from_languages(
        Language.ENGLISH, Language.RUSSIAN, Language.UKRAINIAN
    ).with_low_accuracy_mode().build()


def detect_language(text: str) -> str | None:
    """The ISO 639-1 code of ``text``'s language among ``SUPPORTED``, or None if unsure."""
    sample = text[:MAX_CHARS]
    if sum(ch.isalpha() for ch in sample) < MIN_LETTERS:
        return None
    values = _detector().compute_language_confidence_values(sample)
    if not values or values[0].value < MIN_CONFIDENCE:
        return None
    code = values[0].language.iso_code_639_1.name.lower()
    return code if code in SUPPORTED else None


def choose_language(
    *,
    customer: str | None,
    organization: str | None,
    text: str,
    default: str,
) -> LanguageChoice:
    """Apply the precedence: an explicit setting always beats a guess from the text.

    ``customer`` and ``organization`` are the settings of the customer and of their
    organization when those exist (customer records and organizations arrive in
    later issues; the pipeline passes None until then).
    """
    if customer:
        return LanguageChoice(customer, "customer")
    if organization:
        return LanguageChoice(organization, "organization")
    detected = detect_language(text)
    if detected:
        return LanguageChoice(detected, "detected")
    return LanguageChoice(default, "default")
