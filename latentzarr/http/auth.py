"""The optional bearer token of the preview endpoint: loading it, and checking a request's ``Authorization``.

When a token is configured, every route needs ``Authorization: Bearer <token>`` except the ones that hold no
store data: ``/healthz`` (load balancer probes), ``/openapi.json`` (so clients can find out that a token is
needed), the gallery page ``/`` and its assets under ``/static/`` (the
page asks the user for the token and sends it as a header from JavaScript; it is kept in the tab's
``sessionStorage`` and never put in a URL, so it does not end up in access logs, proxies or the history).

The token comes from a file (``latentzarr serve --token-file PATH``) or the environment variable
``LATENTZARR_HTTP_TOKEN``, never from the command line itself, where any local user could read it with ``ps``.
Tokens are compared in constant time (SHA-256 digests through :func:`hmac.compare_digest`, so not even the length
leaks). Make one with ``python -c "import secrets; print(secrets.token_urlsafe(32))"``.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

__all__ = ["MIN_TOKEN_LENGTH", "PUBLIC_PATHS", "PUBLIC_PREFIXES", "TOKEN_ENV", "BearerAuth", "load_token",
           "read_token_file", "validate_token"]

TOKEN_ENV = "LATENTZARR_HTTP_TOKEN"
"""Environment variable holding the token itself (used when no token file is given)."""
MIN_TOKEN_LENGTH = 16
"""Fewest characters of a token (``secrets.token_urlsafe(32)`` gives 43)."""
PUBLIC_PATHS = frozenset({"/", "/healthz", "/openapi.json"})
"""Paths served without a token: liveness, the API contract and the gallery page (none holds store data)."""
PUBLIC_PREFIXES = ("/static/",)
"""Path prefixes served without a token: the gallery's CSS and JavaScript."""
REALM = "latentzarr"
_B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")  # RFC 6750 section 2.1
_HINT = 'make one with: python -c "import secrets; print(secrets.token_urlsafe(32))"'


def validate_token(token: str) -> str:
    """``token`` when it is a usable bearer token (RFC 6750 ``b64token``, at least 16 characters), else ValueError."""
    if not isinstance(token, str) or not _B64TOKEN.fullmatch(token):
        got = "one holding other characters (spaces, quotes, non-ASCII)" if isinstance(token, str) else repr(
            type(token).__name__)
        raise ValueError(f"Expected a bearer token of letters, digits and -._~+/ (then optional '='). Got {got} "
                         f"instead; {_HINT}.")
    if len(token) < MIN_TOKEN_LENGTH:
        raise ValueError(f"Expected a bearer token of at least {MIN_TOKEN_LENGTH} characters. Got {len(token)} "
                         f"instead; {_HINT}.")
    return token


def read_token_file(path: str | os.PathLike) -> str:
    """The token in file ``path`` (surrounding whitespace and the final newline stripped), validated."""
    text = Path(path).read_text(encoding="ascii", errors="replace").strip()
    if not text:
        raise ValueError(f"Expected a bearer token in {str(path)!r}. Got an empty file instead; {_HINT}.")
    return validate_token(text)


def load_token(token_file: str | os.PathLike | None = None,
               environ: Mapping[str, str] | None = None) -> str | None:
    """The configured token: from ``token_file`` if given, else from ``$LATENTZARR_HTTP_TOKEN``, else None.

    An empty or unset variable means no token. Raises ValueError for a token that :func:`validate_token` refuses
    and FileNotFoundError for a missing file.
    """
    if token_file is not None:
        return read_token_file(token_file)
    value = (os.environ if environ is None else environ).get(TOKEN_ENV, "").strip()
    return validate_token(value) if value else None


class BearerAuth:
    """Checks ``Authorization: Bearer <token>`` against one token; knows which paths are public.

    Parameters
    ----------
    token
        The secret (validated with :func:`validate_token`). Only its SHA-256 digest is kept.
    public_paths, public_prefixes
        Paths served without a token (exact matches, and prefixes).
    """

    def __init__(self, token: str, *, public_paths: Iterable[str] = PUBLIC_PATHS,
                 public_prefixes: Iterable[str] = PUBLIC_PREFIXES) -> None:
        self._digest = hashlib.sha256(validate_token(token).encode("ascii")).digest()
        self.public_paths = frozenset(public_paths)
        self.public_prefixes = tuple(public_prefixes)

    def is_public(self, path: str) -> bool:
        """Whether ``path`` (the decoded ASGI ``path``) is served without a token."""
        return path in self.public_paths or path.startswith(self.public_prefixes)

    def check(self, headers: Iterable[tuple[bytes, bytes]]) -> bool | None:
        """True for the right bearer token, False for a wrong one, None when no bearer credentials were sent.

        ``headers`` are the raw ASGI header pairs (names lower case). The comparison takes the same time for
        every wrong token.
        """
        value = next((v for k, v in headers if k == b"authorization"), None)
        if value is None:
            return None
        scheme, _, credentials = value.strip().partition(b" ")
        if scheme.lower() != b"bearer" or not credentials.strip():
            return None
        given = hashlib.sha256(credentials.strip()).digest()
        return hmac.compare_digest(given, self._digest)

    @staticmethod
    def challenge(invalid: bool) -> str:
        """The ``WWW-Authenticate`` value of a 401 (RFC 6750: ``error="invalid_token"`` for a wrong token)."""
        return f'Bearer realm="{REALM}", error="invalid_token"' if invalid else f'Bearer realm="{REALM}"'
