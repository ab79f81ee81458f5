"""One asyncio poll of the public participants list: a conditional GET and a digest of the body.

Used by the triggerer (:mod:`airflow_provider_raidiam.triggers.participants`), so nothing here blocks the
event loop: the body is streamed and hashed chunk by chunk, never parsed. Same rules as the rest of the
provider: ``https`` only, TLS verified with the connection's CA (or the system store), no redirect
followed, no proxy from the environment, and the body bounded (after decompression).
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from dataclasses import dataclass

import httpx

from airflow_provider_raidiam.boundary import require_https_url
from airflow_provider_raidiam.exceptions import (
    ApiError,
    ResponseDeadlineError,
    ResponseFormatError,
    ResponseTooLargeError,
)
from airflow_provider_raidiam.http import INTERACTION_HEADER
from airflow_provider_raidiam.limits import DEFAULT_ATTEMPT_DEADLINE, DEFAULT_MAX_RESPONSE_BYTES

_MAX_ETAG = 256


@dataclass(frozen=True)
class ParticipantsVersion:
    """What one successful read of the participants list saw.

    :param digest: SHA-256 (hex) of the body as received (decompressed).
    :param etag: the server's ``ETag``, to send back as ``If-None-Match`` (``None`` if it sent none).
    :param size: body length in bytes.
    """

    digest: str
    etag: str | None
    size: int


def check_participants_url(url: str) -> str:
    """``url`` if it is a plain ``https://`` URL (the provider's one URL rule), else a :class:`ConfigurationError`."""
    return require_https_url(url, "participants_url")


def new_async_client(ssl_context: object, timeout: float) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` that verifies with ``ssl_context``, follows no redirect and ignores proxies."""
    return httpx.AsyncClient(
        verify=ssl_context,  # type: ignore[arg-type]
        trust_env=False,
        follow_redirects=False,
        timeout=httpx.Timeout(timeout),
        headers={"Accept": "application/json"},
    )


async def fetch_version(
    client: httpx.AsyncClient,
    url: str,
    *,
    etag: str | None = None,
    max_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    deadline: float = DEFAULT_ATTEMPT_DEADLINE,
) -> ParticipantsVersion | None:
    """GET ``url`` once (``If-None-Match: etag`` when given); ``None`` when the server answers 304.

    :param max_bytes: the largest body accepted, after decompression.
    :param deadline: seconds the whole request (connect, headers and body) may take.
    :raises ApiError: any status but 200 and 304 (a redirect is not followed).
    :raises ResponseTooLargeError: a body larger than ``max_bytes``.
    :raises ResponseDeadlineError: no complete answer within ``deadline`` (e.g. a body dripped slowly).
    :raises ResponseFormatError: a body that is not a JSON array.
    """
    try:
        async with asyncio.timeout(deadline):
            return await _fetch(client, check_participants_url(url), etag, max_bytes)
    except TimeoutError:
        raise ResponseDeadlineError(
            f"GET {url}: no complete answer within {deadline:g}s.", deadline=deadline, url=url
        ) from None


async def _fetch(client: httpx.AsyncClient, url: str, etag: str | None, max_bytes: int) -> ParticipantsVersion | None:
    headers = {INTERACTION_HEADER: str(uuid.uuid4())}
    if etag:
        headers["If-None-Match"] = etag
    async with client.stream("GET", url, headers=headers) as response:
        if response.status_code == 304 and etag:
            return None
        if response.status_code != 200:
            moved = " (a redirect: not followed)" if 300 <= response.status_code < 400 else ""
            raise ApiError(f"GET {url} answered {response.status_code}{moved}.", status=response.status_code, url=url)
        digest, size, first = hashlib.sha256(), 0, b""
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > max_bytes:
                raise ResponseTooLargeError(
                    f"GET {url}: the body is larger than {max_bytes} bytes.", limit=max_bytes, url=url
                )
            first = first or chunk.lstrip()
            digest.update(chunk)
        if not first.startswith(b"["):
            raise ResponseFormatError(f"GET {url}: the body is not a JSON array of participants.", url=url)
        new_etag = response.headers.get("ETag")
    usable = new_etag if new_etag and len(new_etag) <= _MAX_ETAG and new_etag.isprintable() else None
    return ParticipantsVersion(digest.hexdigest(), usable, size)
