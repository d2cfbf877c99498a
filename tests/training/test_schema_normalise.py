from training.normalise import NormaliserConfig, normalise
from training.schema import HEADS, SCHEMA, LabelSchema


def test_schema_round_trips_and_has_no_duplicates():
    assert LabelSchema.from_dict(SCHEMA.to_dict()) == SCHEMA
    for head in HEADS:
        labels = SCHEMA.labels(head)
        assert len(labels) == len(set(labels))
    assert SCHEMA.urgency == ("low", "medium", "high", "critical")  # ordinal order is load-bearing


def test_mentions_and_urls_are_folded_emoji_kept():
    text = "@Delta @AmericanAir my bag is lost 😡 see https://t.co/abc123 and www.example.com/x?y=1"
    assert normalise(text) == "@user @user my bag is lost 😡 see http and http"


def test_email_addresses_are_not_mentions():
    assert normalise("write to me at jane@example.com") == "write to me at jane@example.com"


def test_html_entities_and_whitespace():
    assert normalise("  A &amp; B\n\n  C  ") == "A & B C"
    assert normalise("A &amp; B", NormaliserConfig(unescape_html=False)) == "A &amp; B"


def test_normalise_is_idempotent():
    text = "@user1 hi http://x.y/z 😀"
    assert normalise(normalise(text)) == normalise(text)
