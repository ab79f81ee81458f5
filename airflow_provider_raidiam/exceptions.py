"""Typed errors raised by the provider.

Every error derives from :class:`RaidiamError`, carries a message that says what is wrong and how to fix
it, and never contains secret material (tokens, client assertions, keys, passphrases, PEM text).
"""

from __future__ import annotations

from collections.abc import Sequence

import requests


class RaidiamError(Exception):
    """Base class of every error raised by ``airflow_provider_raidiam``."""


class RaidiamDeprecationWarning(FutureWarning):
    """A deprecated connection field or argument is used; the message says what to use instead.

    A ``FutureWarning``, so Python shows it by default (Airflow writes it to the task log).
    """


class ConfigurationError(RaidiamError):
    """A connection field, operator argument or table name is missing or invalid."""


class ForeignHostError(ConfigurationError):
    """A request would send the token or the client certificate to a host the connection does not name."""


class UnsupportedAirflowError(ConfigurationError, ImportError):
    """The installed Apache Airflow is a version this provider does not support.

    An ``ImportError`` too, so that Airflow's providers manager reports it as a failed import.
    """


class CredentialError(ConfigurationError):
    """A certificate, private key, CA bundle or passphrase cannot be used."""


class DiscoveryError(RaidiamError):
    """The OpenID discovery document cannot be fetched or fails validation."""


class TokenError(RaidiamError):
    """The token endpoint refused to issue an access token.

    :param error: the OAuth ``error`` code the server returned (``invalid_client``, ...), if any.
    :param error_description: the server's ``error_description``, if any.
    :param status: the HTTP status of the token response, if one was received.
    """

    def __init__(
        self,
        message: str,
        *,
        error: str | None = None,
        error_description: str | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.error = error
        self.error_description = error_description
        self.status = status


class BindingError(RaidiamError):
    """An access token is bound (``cnf.x5t#S256``) to a different certificate than ours."""


class ApiError(RaidiamError):
    """A Directory API call failed.

    :param status: HTTP status code, or ``None`` when no response was received.
    :param errors: Raidiam's ``{"errors": [...]}`` list, when the body had one.
    :param interaction_id: the ``x-fapi-interaction-id`` of the failed call, for Raidiam support.
    :param url: the URL that was called (never contains a token).
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        errors: Sequence[str] = (),
        interaction_id: str | None = None,
        url: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.errors = list(errors)
        self.interaction_id = interaction_id
        self.url = url


class RedirectError(ApiError):
    """A server answered with a redirect; redirects are never followed (they could carry credentials away).

    :param location: the ``Location`` the server named (untrusted text; quoted and bounded in the message).
    """

    def __init__(self, message: str, *, location: str, status: int, url: str | None = None) -> None:
        super().__init__(message, status=status, url=url)
        self.location = location


class ResponseFormatError(ApiError):
    """A response body is not the JSON the endpoint documents (not JSON, truncated, bad envelope)."""


class ThrottledError(ApiError):
    """The server rate-limited every request of this client for longer than ``throttle_timeout``."""


class PaginationError(ApiError):
    """Paging did not add up: records differ from ``totalSize``, or ``totalSize`` moved during the read."""


class ResponseTooLargeError(ResponseFormatError):
    """A response body is larger, after decompression, than the connection's ``max_response_bytes``.

    :param limit: the limit in bytes that was exceeded.
    """

    def __init__(self, message: str, *, limit: int, status: int | None = None, url: str | None = None) -> None:
        super().__init__(message, status=status, url=url)
        self.limit = limit


class ResponseDeadlineError(ApiError, requests.exceptions.Timeout):
    """One HTTP attempt (connect, headers and body) did not finish within the connection's ``attempt_deadline``.

    It is also a :class:`requests.Timeout`, so retry policies treat it like any other timeout.

    :param deadline: the deadline in seconds that passed.
    """

    def __init__(self, message: str, *, deadline: float, url: str | None = None) -> None:
        super().__init__(message, url=url)
        self.deadline = deadline


class SnapshotError(RaidiamError):
    """Two snapshots cannot be compared, or a previous snapshot cannot be found or read."""


class DataIntegrityError(ApiError):
    """Records read in full do not make a table: a key on two records, or a record without its key.

    A record sent twice while the count matches ``totalSize`` means another record was lost (a page shift).

    :param table: the table that could not be built.
    :param key: its key columns.
    :param examples: up to three offending key values (text, shortened).
    """

    def __init__(
        self, message: str, *, table: str, key: Sequence[str], examples: Sequence[str] = (), url: str | None = None
    ) -> None:
        super().__init__(message, url=url)
        self.table = table
        self.key = tuple(key)
        self.examples = list(examples)
