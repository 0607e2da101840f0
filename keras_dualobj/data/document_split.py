"""How one long text becomes documents (the unit that gets its own `<s>`)."""

import re

DOCUMENT_SPLIT_MODES = ("paragraphs", "lines", "none", "chunks")

# A paragraph ends at one or more blank lines; a "blank" line may hold spaces
# or tabs, which carry no text.
_BLANK_LINES = re.compile(r"\n(?:[ \t]*\n)+")


def split_documents(text, mode="paragraphs", *, chunk_characters=None):
    """Splits `text` into documents.

    Modes:

    - `"paragraphs"` (default): pieces separated by one or more blank lines.
      The separating blank lines are dropped, everything else is kept
      verbatim (indentation included). Tiny Shakespeare becomes one document
      per speech.
    - `"lines"`: one document per line; the newlines are dropped.
    - `"none"`: the whole text is one document.
    - `"chunks"`: consecutive pieces of `chunk_characters` characters (the last
      one shorter); nothing is dropped, so `"".join(chunks) == text`.

    In `"paragraphs"` and `"lines"` modes pieces holding only whitespace are
    dropped (they carry no text); in every mode an empty text gives no
    documents.

    Args:
        text: a `str`.
        mode: one of `"paragraphs"`, `"lines"`, `"none"`, `"chunks"`.
        chunk_characters: positive int, required for `"chunks"` only.

    Returns:
        A list of `str`.

    Example:

    >>> split_documents("A:\\nHi.\\n\\n\\nB:\\nBye.\\n")
    ['A:\\nHi.', 'B:\\nBye.\\n']
    >>> split_documents("abcdefg", "chunks", chunk_characters=3)
    ['abc', 'def', 'g']
    """
    if not isinstance(text, str):
        raise TypeError(f"`text` must be a str. Received: {type(text).__name__}")
    validate_document_split(mode, chunk_characters)
    if mode == "paragraphs":
        pieces = _BLANK_LINES.split(text)
    elif mode == "lines":
        pieces = text.split("\n")
    elif mode == "none":
        return [text] if text else []
    else:
        return [
            text[i : i + chunk_characters] for i in range(0, len(text), chunk_characters)
        ]
    return [piece for piece in pieces if piece.strip()]


def validate_document_split(mode, chunk_characters=None):
    """Raises if `mode`/`chunk_characters` is not an accepted combination.

    Example:

    >>> validate_document_split("chunks", chunk_characters=100)
    """
    if mode not in DOCUMENT_SPLIT_MODES:
        raise ValueError(
            f"`document_split` must be one of {DOCUMENT_SPLIT_MODES}. "
            f"Received: {mode!r}"
        )
    if mode == "chunks":
        if (
            isinstance(chunk_characters, bool)
            or not isinstance(chunk_characters, int)
            or chunk_characters < 1
        ):
            raise ValueError(
                "`document_split='chunks'` needs `chunk_characters`, a positive "
                f"int. Received: chunk_characters={chunk_characters!r}"
            )
    elif chunk_characters is not None:
        raise ValueError(
            "`chunk_characters` only applies to document_split='chunks'. "
            f"Received: chunk_characters={chunk_characters!r} with "
            f"document_split={mode!r}"
        )
