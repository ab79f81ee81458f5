"""The Bearer token as a ``requests`` auth: added at send time, and only for the Directory API's origin."""

from __future__ import annotations

from collections.abc import Callable

import requests

from airflow_provider_raidiam.boundary import Origin
from airflow_provider_raidiam.exceptions import ForeignHostError


class BearerAuth(requests.auth.AuthBase):
    """Adds ``Authorization: Bearer <token>`` to a prepared request for the API origin, refuses any other.

    The mTLS session may also reach the token endpoint's host; this check keeps the access token to the
    API origin alone (the allow-list is per session, the token's audience is per credential).

    :param token: returns the access token to send (called on every request, so a renewal is picked up).
    :param api_base_url: the Directory API URL whose origin (scheme, host, port) receives the token.
    """

    def __init__(self, token: Callable[[], str], api_base_url: str) -> None:
        self._token = token
        self.origin = Origin.of(api_base_url)
        self.sent_token = ""
        """The token added to the last request (for deciding whether a 401 means it expired)."""

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        origin = Origin.of(request.url or "")
        if origin != self.origin:
            raise ForeignHostError(
                f"Refusing to send the access token to {origin}: it only goes to the Directory API at "
                f"{self.origin}. Call paths relative to api_base_url."
            )
        self.sent_token = self._token()
        request.headers["Authorization"] = f"Bearer {self.sent_token}"
        return request
