"""Example posts in the report: ``serving.pii.mask_personal_data`` (what the detector flags is what gets masked)
and the excerpt (masked before it is truncated)."""

from __future__ import annotations

import re

import pytest

from serving.batch.report.examples import excerpt
from serving.pii import mask_personal_data, personal_data_kinds

FLAGGED = [
    ("reach me at jane.doe+air@example.co.uk please", ["email"], "jane.doe"),
    ("call me back on 1-800-555-0199", ["phone"], "555-0199"),
    ("my number is +44 20 7946 0958", ["phone"], "7946"),
    ("(555) 123-4567 no one answers", ["phone"], "123-4567"),
    ("charged twice on card 4111 1111 1111 1111!!", ["card"], "4111"),
    ("card 5500-0000-0000-0004 declined", ["card"], "0004"),
    ("my order #4821934 never arrived", ["account_number"], "4821934"),
    ("order number is AB1234567", ["account_number"], "AB1234567"),
    ("booking ref X7Y2P9Q, still no seat", ["account_number"], "X7Y2P9Q"),
    ("email me bob@mail.com or call 555-867-5309 re order 99887766", ["email", "phone", "account_number"],
     "bob@mail.com"),
]


@pytest.mark.parametrize("text,kinds,secret", FLAGGED)
def test_mask_hides_what_the_detector_flags(text, kinds, secret):
    assert personal_data_kinds(text) == kinds  # the case is a real detection
    masked = mask_personal_data(text)
    assert secret not in masked and personal_data_kinds(masked) == []
    assert sorted(set(re.findall(r"\[(\w+)\]", masked))) == sorted(kinds)


@pytest.mark.parametrize("text", ["@AmericanAir on hold 2 hours, flight 1234 cancelled",
                                  "paid $1,234.56 on 2024-01-15 at 10:30 and still nothing",
                                  "card 4111 1111 1111 1112 is not Luhn-valid", "ref 12 means nothing", ""])
def test_mask_leaves_ordinary_text_alone(text):
    assert mask_personal_data(text) == text


def test_mask_keeps_the_rest_of_the_sentence():
    assert mask_personal_data("mail jo@x.org, call 555-867-5309 today") == "mail [email], call [phone] today"


def test_excerpt_masks_before_truncating():
    text = "a" * 190 + ":555-867-5309 now"  # the number straddles the 200-character cut
    out = excerpt(text, limit=200)
    assert out == "a" * 190 + ":[phone]…"
    assert excerpt("  short\n post  ") == "short post"
    assert excerpt("x" * 500, limit=50) == "x" * 50 + "…"
