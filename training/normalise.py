"""Tweet normalisation, applied identically in training and at inference.

Handles and links carry no signal about the complaint but vary endlessly, so they are folded to the
placeholders the pretrained encoder saw most (``@user``, ``http``); emoji carry tone and are kept.
The settings are saved with every model (``NormaliserConfig.to_dict``) so a served model normalises
exactly as it was trained, whatever the code on the server says.
"""

from __future__ import annotations

import html
import re
import unicodedata
from dataclasses import asdict, dataclass

_MENTION = re.compile(r"(?<![\w@])@\w{1,50}")
_URL = re.compile(r"(?:https?://|www\.)\S+", re.IGNORECASE)
_SPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class NormaliserConfig:
    mention_token: str = "@user"
    url_token: str = "http"
    unescape_html: bool = True  # exports often carry "&amp;" for "&"
    lowercase: bool = False  # the encoder's tokenizer lowercases already

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "NormaliserConfig":
        return cls(**d)


def normalise(text: str, config: NormaliserConfig = NormaliserConfig()) -> str:
    """Return the text the model sees: handles → ``@user``, links → ``http``, whitespace collapsed."""
    if config.unescape_html:
        text = html.unescape(text)
    text = unicodedata.normalize("NFC", text)
    text = _URL.sub(config.url_token, text)
    text = _MENTION.sub(config.mention_token, text)
    text = _SPACE.sub(" ", text).strip()
    return text.lower() if config.lowercase else text
