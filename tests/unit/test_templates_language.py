"""Language of a case: detection from the customer's text and the precedence of settings."""

from __future__ import annotations

import pytest

from mailbot.language import LanguageChoice, choose_language, detect_language

# Pairs written to be close: same meaning, the Russian and the Ukrainian way.
SAMPLES = [
    ("Hello, my printer stopped working after the update. Can you help?", "en"),
    ("Здравствуйте! После обновления перестал работать принтер. Помогите, пожалуйста.", "ru"),
    ("Добрий день! Після оновлення перестав працювати принтер. Допоможіть, будь ласка.", "uk"),
    ("Подскажите, когда будет готов счёт за ноябрь?", "ru"),
    ("Підкажіть, коли буде готовий рахунок за листопад?", "uk"),
    ("Не могу войти в личный кабинет", "ru"),
    ("Не можу увійти в особистий кабінет", "uk"),
    ("Спасибо, всё работает", "ru"),
    ("Дякую, все працює", "uk"),
    ("Привет", "ru"),
    ("Привіт", "uk"),
]


@pytest.mark.parametrize(("text", "expected"), SAMPLES)
def test_detects_english_russian_and_ukrainian(text: str, expected: str) -> None:
    # Each sample is recognised, Ukrainian and Russian told apart even in short near-twins.
    assert detect_language(text) == expected


@pytest.mark.parametrize("text", ["", "ok", "12345 678", "???", "-- \n> "])
def test_too_little_text_is_undetected(text: str) -> None:
    # Too few letters to judge: no guess, so the default applies.
    assert detect_language(text) is None


def test_settings_beat_detection_and_default_comes_last() -> None:
    # Order: customer setting, organization setting, detected from text, configured default.
    ukrainian = "Добрий день, у мене не працює принтер"
    assert choose_language(customer="ru", organization="en", text=ukrainian,
                           default="en") == LanguageChoice("ru", "customer")
    assert choose_language(customer=None, organization="en", text=ukrainian,
                           default="ru") == LanguageChoice("en", "organization")
    assert choose_language(customer=None, organization=None, text=ukrainian,
                           default="en") == LanguageChoice("uk", "detected")
    assert choose_language(customer=None, organization=None, text="ok",
                           default="ru") == LanguageChoice("ru", "default")
