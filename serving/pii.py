"""Does a post carry personal data? Regexes for e-mail addresses, phone numbers, payment cards and
account / order / booking numbers.

Why: customers paste their order number, card or phone into public complaints; a helpdesk wants to
know so it can move the conversation to a private channel and mask the post. This is a cheap flag,
not a redaction engine: it favours recall on the obvious shapes and checks card numbers with Luhn so
that ordinary long numbers are not called cards. It never logs or returns the matched text.

Cost: it runs on every post the service answers, so every pattern is compiled once, here, and the number
and account patterns (the slow ones: a long alternation tried at every word) run only on texts that hold
a digit, which both need. About half the posts in ``data/train.jsonl`` have none.
"""

from __future__ import annotations

import re

KINDS: tuple[str, ...] = ("email", "phone", "card", "account_number")

_EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b")
# A run of digits with the separators people write in phone and card numbers.
_NUMBERISH = re.compile(r"(?<![\w@])\+?\(?\d[\d \t().\-]{6,24}\d(?![\w@])")
_ACCOUNT = re.compile(
    r"\b(?:account|acct|a/c|order|booking|reservation|confirmation|conf|reference|ref|ticket|case|claim|policy|"
    r"member(?:ship)?|customer|tracking|invoice|pnr|iban)\s*(?:number|num|no\.?|id|code)?\s*(?:is|was|:|#|=)?\s*#?\s*"
    r"([A-Z0-9][A-Z0-9\-]{4,})",
    re.IGNORECASE,
)
_DIGIT = re.compile(r"\d")
_NOT_DIGIT = re.compile(r"\D")


def luhn_valid(digits: str) -> bool:
    """The Luhn checksum every payment card number satisfies (and most random numbers do not)."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def _numbers(text: str) -> set[str]:
    kinds: set[str] = set()
    for m in _NUMBERISH.finditer(text):
        raw = m.group(0)
        digits = _NOT_DIGIT.sub("", raw)
        plain = not any(c in raw for c in "+()")
        if plain and 13 <= len(digits) <= 19 and luhn_valid(digits):
            kinds.add("card")
        elif 10 <= len(digits) <= 15:
            kinds.add("phone")
    return kinds


def personal_data_kinds(text: str) -> list[str]:
    """The kinds of personal data found in ``text``, in ``KINDS`` order (empty when none)."""
    found: set[str] = set()
    if "@" in text and _EMAIL.search(text):
        found.add("email")
    if not _DIGIT.search(text):  # phones, cards and account numbers all have digits
        return [k for k in KINDS if k in found]
    found |= _numbers(text)
    for m in _ACCOUNT.finditer(text):
        token = m.group(1)
        if sum(c.isdigit() for c in token) >= 3:
            found.add("account_number")
            break
    return [k for k in KINDS if k in found]


def contains_personal_data(text: str) -> bool:
    """True when ``text`` holds an e-mail, phone, Luhn-valid card or account/order number."""
    return bool(personal_data_kinds(text))


def mask_personal_data(text: str) -> str:
    """``text`` with each piece of personal data the detector finds replaced by ``[kind]`` (``[email]``,
    ``[phone]``, ``[card]``, ``[account_number]``).

    Why: the analyst's report quotes example posts; it shows what customers wrote without copying their
    contact details or card numbers into a page that gets mailed around. The same rules as
    :func:`personal_data_kinds` decide what counts, so what is flagged is exactly what is masked; overlapping
    matches are merged into one placeholder (the one that starts first names it).
    """
    spans: list[tuple[int, int, str]] = [(m.start(), m.end(), "email") for m in _EMAIL.finditer(text)]
    for m in _NUMBERISH.finditer(text):
        raw = m.group(0)
        digits = re.sub(r"\D", "", raw)
        plain = not any(c in raw for c in "+()")
        if plain and 13 <= len(digits) <= 19 and luhn_valid(digits):
            spans.append((m.start(), m.end(), "card"))
        elif 10 <= len(digits) <= 15:
            spans.append((m.start(), m.end(), "phone"))
    for m in _ACCOUNT.finditer(text):
        if sum(c.isdigit() for c in m.group(1)) >= 3:
            spans.append((m.start(1), m.end(1), "account_number"))
    if not spans:
        return text
    out, pos = [], 0
    for start, end, kind in sorted(spans):
        if start < pos:  # overlaps the previous placeholder: extend it
            pos = max(pos, end)
            continue
        out += [text[pos:start], f"[{kind}]"]
        pos = end
    out.append(text[pos:])
    return "".join(out)
