"""Product names, descriptions and emails assembled from `vocabulary`.

A product is first drawn as a language-neutral `Concept`, then spelled in each
locale, so that its translations describe the same article. Locales whose language
has no vocabulary get the English name tagged with the locale code.
"""
from __future__ import annotations

import random
from typing import NamedTuple

from backend.datagen import vocabulary as voc

CATEGORY_NAMES = tuple(voc.CATEGORIES)
COLOR_PROBABILITY = 0.4


class Concept(NamedTuple):
    category: str
    noun: dict
    material: dict
    adjective: dict
    color: dict | None


def language_of(locale: str) -> str | None:
    """The vocabulary language for `locale` ("de-AT" -> "de"), or None if we have none."""
    language = locale.replace("_", "-").split("-", 1)[0].lower()
    return language if language in voc.LANGUAGES else None


def draw_concept(rng: random.Random) -> Concept:
    category = rng.choice(CATEGORY_NAMES)
    spec = voc.CATEGORIES[category]
    color = rng.choice(voc.COLORS) if rng.random() < COLOR_PROBABILITY else None
    return Concept(category, rng.choice(spec["nouns"]), rng.choice(spec["materials"]),
                   rng.choice(voc.ADJECTIVES), color)


def product_name(concept: Concept, locale: str) -> str:
    language = language_of(locale)
    if language is None:
        return f"{_english(concept)} ({locale})"
    return _BUILDERS[language](concept)


def description(name: str, locale: str, rng: random.Random) -> str:
    template = rng.choice(voc.DESCRIPTIONS[language_of(locale) or "en"])
    return template.format(name=name, days=rng.randint(2, 5))


def email(rng: random.Random, locale: str, user_id: int) -> str:
    """An address unique by construction: the user's id is part of it."""
    language = language_of(locale) or "en"
    first = rng.choice(voc.FIRST_NAMES[language])
    last = rng.choice(voc.LAST_NAMES[language])
    local = rng.choice((f"{first}.{last}", f"{first}{last[0]}", f"{first}_{last}", f"{last}.{first}"))
    return f"{local}{user_id}@{rng.choice(voc.EMAIL_DOMAINS)}"


# --- one builder per language -------------------------------------------------

def _english(c: Concept) -> str:
    color = f" {c.color['en']}" if c.color else ""
    return f"{c.adjective['en']}{color} {c.material['en']} {c.noun['en']}"


def _german(c: Concept) -> str:
    # Strong declension without article: Klassischer Rucksack, Klassische Tasse, Klassisches Hemd.
    noun, gender = c.noun["de"]
    ending = {"m": "er", "f": "e", "n": "es", "pl": "e"}[gender]
    words = [c.adjective["de"] + ending]
    if c.color:
        words.append((c.color["de"] + ending).lower())
    return f"{' '.join(words)} {noun} aus {c.material['de']}"


def _romance(language: str, preposition: str):
    # Adjectives follow the noun and agree with it: Tasse élégante, Calcetines clásicos.
    def build(c: Concept) -> str:
        noun, gender = c.noun[language]
        words = [noun, _agree(c.adjective[language], gender, language)]
        if c.color:
            words.append(_agree(c.color[language], gender, language))
        return f"{' '.join(words)} {preposition} {c.material[language]}"

    return build


def _agree(forms: tuple[str, str], gender: str, language: str) -> str:
    word = forms[1] if gender.startswith("f") else forms[0]
    if not gender.endswith("pl"):
        return word
    if word in voc.PLURALS:
        return voc.PLURALS[word]
    if word.endswith(("s", "x")):
        return word
    if language == "es" and word[-1] not in "aeiou":
        return word + "es"
    return word + "s"


def _japanese(c: Concept) -> str:
    # 北欧風ウォールナット製テーブルランプ（ブラック）
    color = f"（{c.color['ja']}）" if c.color else ""
    return f"{c.adjective['ja']}{c.material['ja']}製{c.noun['ja']}{color}"


_BUILDERS = {
    "en": _english,
    "de": _german,
    "fr": _romance("fr", "en"),
    "es": _romance("es", "de"),
    "ja": _japanese,
}
