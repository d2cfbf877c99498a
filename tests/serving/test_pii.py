"""The personal-data flag: the shapes it must catch and the everyday numbers it must not."""

from __future__ import annotations

import pytest

from serving.pii import contains_personal_data, luhn_valid, personal_data_kinds


@pytest.mark.parametrize("text,kinds", [
    ("reach me at jane.doe+air@example.co.uk please", ["email"]),
    ("call me back on 1-800-555-0199", ["phone"]),
    ("my number is +44 20 7946 0958", ["phone"]),
    ("(555) 123-4567 no one answers", ["phone"]),
    ("charged twice on card 4111 1111 1111 1111!!", ["card"]),
    ("card 5500-0000-0000-0004 declined", ["card"]),
    ("my order #4821934 never arrived", ["account_number"]),
    ("order number is AB1234567", ["account_number"]),
    ("booking ref X7Y2P9Q, still no seat", ["account_number"]),
    ("acct: 00123456 locked", ["account_number"]),
    ("email me bob@mail.com or call 555-867-5309 re order 99887766",
     ["email", "phone", "account_number"]),
])
def test_detects(text, kinds):
    assert personal_data_kinds(text) == kinds
    assert contains_personal_data(text) is True


@pytest.mark.parametrize("text", [
    "@AmericanAir on hold 2 hours, flight 1234 cancelled",
    "paid $1,234.56 on 2024-01-15 at 10:30 and still nothing",
    "card 4111 1111 1111 1112 is not Luhn-valid",
    "1234567890123456 is sixteen digits but not a card",
    "my order is delayed again, 3rd time this month",
    "ref 12 means nothing",
    "contact @support_handle on twitter",
    "version 2.3.4.5 of the app crashes",
    "",
])
def test_ignores(text):
    assert personal_data_kinds(text) == []
    assert contains_personal_data(text) is False


def test_luhn():
    assert luhn_valid("4111111111111111") and luhn_valid("79927398713")
    assert not luhn_valid("4111111111111112") and not luhn_valid("79927398710")
