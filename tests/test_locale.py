"""Locale negotiation: the pure matching rules, then the API's behaviour
(`?lang=`, Accept-Language with q-values, fallback flag, Content-Language)."""
from __future__ import annotations

import pytest
from werkzeug.datastructures import LanguageAccept
from werkzeug.http import parse_accept_header

from backend.web.shop.locale import best_accepted, lookup
from tests.test_api_products import create_product, create_user, error_of, make_app, product_payload

SUPPORTED = ("en", "de", "fr", "es", "ja")


# --- pure rules -----------------------------------------------------------------

@pytest.mark.parametrize(("tag", "expected"), [
    ("de", "de"),
    ("DE", "de"),
    ("de-CH", "de"),
    ("de_CH", "de"),
    ("de-Latn-CH", "de"),
    ("ja-JP", "ja"),
    ("pt", None),
    ("pt-BR", None),
    ("", None),
    ("*", None),
    ("d e", None),
    ("en;q=1", None),
])
def test_lookup_falls_back_by_dropping_subtags(tag, expected):
    assert lookup(tag, SUPPORTED) == expected


def test_lookup_keeps_a_regional_supported_locale():
    assert lookup("pt-br", ("en", "pt-BR")) == "pt-BR"
    assert lookup("pt-BR-x-custom", ("en", "pt-BR")) == "pt-BR"


def best(header: str, default: str = "en") -> str | None:
    return best_accepted(parse_accept_header(header, LanguageAccept), SUPPORTED, default)


@pytest.mark.parametrize(("header", "expected"), [
    ("de", "de"),
    ("fr;q=0.1, ja;q=0.9", "ja"),
    ("ja;q=0.9, fr", "fr"),  # q defaults to 1
    ("de-CH, en;q=0.9", "de"),  # werkzeug's best_match would answer en
    ("pt-BR, pt;q=0.9, es;q=0.5", "es"),
    ("de;q=0, en;q=0.5", "en"),
    ("de;q=0", None),
    ("xx, zz", None),
    ("", None),
    ("fr, de", "fr"),  # equal q: header order
    ("de, fr", "de"),
    ("*", "en"),  # anything: the default
    ("*;q=0.5, en;q=0.1", "de"),  # en is worth 0.1, anything else 0.5
    ("*, en;q=0", "de"),  # anything but en
    ("en;q=abc, ja", "ja"),  # a malformed range is ignored
    ("de;q=0, de-CH, fr;q=0.5", "fr"),  # de refused: not served as de-CH's fallback either
    ("de-AT;q=0, de-CH", "de"),  # refusing one region refuses no other
])
def test_best_accepted_follows_q_values(header, expected):
    assert best(header) == expected


def test_the_wildcard_prefers_the_configured_default():
    assert best("*", default="ja") == "ja"


# --- through the API ------------------------------------------------------------

@pytest.fixture
def client(migrated_db_url):
    app = make_app(migrated_db_url)
    yield app.test_client()
    app.extensions["db_engine"].dispose()


@pytest.fixture
def tea(client) -> dict:
    """A product translated into en and de only."""
    return create_product(client, create_user(client)["id"])


def get(client, tea, query: str = "", **headers):
    return client.get(f"/api/products/{tea['id']}{query}", headers=headers)


def test_no_preference_gives_the_default_locale(client, tea):
    response = get(client, tea)

    assert (response.json["locale"], response.json["fallback"]) == ("en", False)
    assert response.json["name"] == "Green tea"
    assert response.headers["Content-Language"] == "en"
    assert "Accept-Language" in response.headers["Vary"]


def test_lang_parameter_selects_the_translation(client, tea):
    response = get(client, tea, "?lang=de")

    assert response.json["name"] == "Grüner Tee"
    assert (response.json["locale"], response.json["requested_locale"], response.json["fallback"]) == ("de", "de", False)
    assert response.headers["Content-Language"] == "de"


def test_lang_parameter_beats_accept_language(client, tea):
    response = get(client, tea, "?lang=en", **{"Accept-Language": "de"})

    assert response.json["locale"] == "en"


def test_lang_parameter_with_a_region_falls_back_to_the_language(client, tea):
    assert get(client, tea, "?lang=de-AT").json["locale"] == "de"


@pytest.mark.parametrize("lang", ["xx", "", "de;q=1", "*", "klingon-tlh-extra-long-tag"])
def test_unsupported_lang_parameter_is_a_400(client, tea, lang):
    response = get(client, tea, f"?lang={lang}")

    assert response.status_code == 400
    error = error_of(response)
    assert error["code"] == "unsupported_locale"
    assert error["details"]["supported_locales"] == list(SUPPORTED)


def test_unsupported_lang_on_create_writes_nothing(client):
    owner = create_user(client)
    response = client.post("/api/products?lang=xx", json=product_payload(owner["id"]))

    assert response.status_code == 400
    assert error_of(response)["code"] == "unsupported_locale"
    assert client.get("/api/products").json["items"] == []


@pytest.mark.parametrize(("header", "locale"), [
    ("de", "de"),
    ("de-CH", "de"),
    ("de-CH, en;q=0.9", "de"),
    ("fr;q=0.2, de;q=0.8, en;q=0.5", "de"),
    ("en;q=0.5, de;q=0.9", "de"),
    ("de;q=0, en;q=0.1", "en"),
    ("xx", "en"),  # nothing acceptable: the default
])
def test_accept_language_is_negotiated(client, tea, header, locale):
    response = get(client, tea, **{"Accept-Language": header})

    assert response.status_code == 200
    assert response.json["locale"] == locale
    assert response.headers["Content-Language"] == locale


def test_missing_translation_falls_back_to_the_default_and_says_so(client, tea):
    response = get(client, tea, "?lang=ja")

    assert response.json["name"] == "Green tea"
    assert (response.json["locale"], response.json["requested_locale"], response.json["fallback"]) == ("en", "ja", True)
    assert response.headers["Content-Language"] == "en"


def test_fallback_from_accept_language(client, tea):
    response = get(client, tea, **{"Accept-Language": "fr-CA, fr;q=0.9"})

    assert (response.json["locale"], response.json["requested_locale"], response.json["fallback"]) == ("en", "fr", True)


def test_list_reports_the_fallback_per_item(client):
    owner = create_user(client)
    create_product(client, owner["id"], "TEA", translations={"en": {"name": "Tea"}, "ja": {"name": "お茶"}})
    create_product(client, owner["id"], "CUP", translations={"en": {"name": "Cup"}})

    response = client.get("/api/products", headers={"Accept-Language": "ja-JP"})

    items = response.json["items"]
    assert [(item["name"], item["locale"], item["fallback"]) for item in items] == [
        ("お茶", "ja", False), ("Cup", "en", True),
    ]
    assert response.json["requested_locale"] == "ja"
    assert response.headers["Content-Language"] == "ja, en"


def test_empty_list_still_names_the_requested_language(client):
    response = client.get("/api/products?lang=fr")

    assert response.headers["Content-Language"] == "fr"


def test_response_is_written_as_utf8_not_escaped(client):
    owner = create_user(client)
    create_product(client, owner["id"], "TEA", translations={"en": {"name": "Tea"}, "ja": {"name": "緑茶"}})

    response = client.get("/api/products?lang=ja")

    assert "緑茶".encode() in response.data
    assert response.json["items"][0]["slug"] == "緑茶"


def test_the_configured_default_locale_is_the_fallback(migrated_db_url):
    app = make_app(migrated_db_url, DEFAULT_LOCALE="de")
    try:
        client = app.test_client()
        owner = create_user(client)
        created = client.post("/api/products", json={
            "owner_id": owner["id"], "sku": "TEE", "price_cents": 100, "currency": "EUR",
            "translations": {"de": {"name": "Tee"}, "fr": {"name": "Thé"}},
        })
        assert created.status_code == 201, created.json  # no en translation needed now

        response = client.get(f"/api/products/{created.json['id']}?lang=ja")
        assert (response.json["name"], response.json["locale"], response.json["fallback"]) == ("Tee", "de", True)
        missing_default = client.post("/api/products", json={
            "owner_id": owner["id"], "sku": "THE", "price_cents": 100, "currency": "EUR",
            "translations": {"en": {"name": "Tea"}},
        })
        assert "translations.de" in error_of(missing_default)["details"]["fields"]
    finally:
        app.extensions["db_engine"].dispose()
