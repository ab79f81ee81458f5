"""``RaidiamHook``: the Airflow face of :class:`~airflow_provider_raidiam.client.RaidiamClient`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow_provider_raidiam.client import PublicClient, RaidiamClient
from airflow_provider_raidiam.concurrency import Logger
from airflow_provider_raidiam.connection import RaidiamSettings
from airflow_provider_raidiam.connection_fields import EXTRA_FIELDS
from airflow_provider_raidiam.credentials import is_pem_text
from airflow_provider_raidiam.exceptions import ConfigurationError, RaidiamError
from airflow_provider_raidiam.form_fallback import connection_form_widgets, ui_field_behaviour
from airflow_provider_raidiam.get_provider_info import get_provider_info
from airflow_provider_raidiam.version_compat import BaseHook, mask_secret

if TYPE_CHECKING:
    import pandas as pd
    import requests


def _connection_type() -> dict[str, Any]:
    entry: dict[str, Any] = get_provider_info()["connection-types"][0]
    return entry


class RaidiamHook(BaseHook):
    """Calls Raidiam's protected APIs exactly as Raidiam requires.

    Discovers the authorisation server, obtains a certificate-bound ``client_credentials`` token with
    ``tls_client_auth`` or ``private_key_jwt``, and calls the Directory API over the same mTLS certificate.

    :param raidiam_conn_id: the ``raidiam`` connection to use.
    """

    conn_name_attr = "raidiam_conn_id"
    default_conn_name = "raidiam_default"
    conn_type = "raidiam"
    hook_name = "Raidiam"

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """The form's extra fields where Airflow does not read ``conn-fields`` (Airflow 3.0 and 3.1)."""
        return connection_form_widgets(_connection_type()["conn-fields"])

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """The form's standard fields where Airflow does not read ``ui-field-behaviour`` (3.0 and 3.1)."""
        return ui_field_behaviour(_connection_type()["ui-field-behaviour"])

    def __init__(self, raidiam_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.raidiam_conn_id = raidiam_conn_id

    @cached_property
    def settings(self) -> RaidiamSettings:
        """The connection's validated settings; key material in it is registered with the secret masker."""
        settings = RaidiamSettings.from_connection(self.get_connection(self.raidiam_conn_id))
        if settings.key_passphrase:
            mask_secret(settings.key_passphrase)
        for field in EXTRA_FIELDS:
            key = getattr(settings, field.name) if field.secret else None
            if key and is_pem_text(key):
                mask_secret(key)
                # The masker matches whole strings: also hide each base64 line, should one be logged alone.
                for line in key.replace("\\n", "\n").splitlines():
                    if line.strip() and not line.startswith("-----"):
                        mask_secret(line.strip())
        return settings

    @cached_property
    def client(self) -> RaidiamClient:
        """The connection's client; tokens and client assertions it creates are masked in logs."""
        return RaidiamClient(self.settings, on_secret=mask_secret, logger=self.log)

    def get_conn(self) -> RaidiamClient:
        """Return the :class:`RaidiamClient` of this connection."""
        return self.client

    def get_discovery(self) -> dict[str, Any]:
        """Return the validated OpenID discovery document (fetched once per process per URL)."""
        return dict(self.client.discovery().document)

    def get_access_token(self) -> str:
        """Return a certificate-bound access token (cached, renewed before expiry)."""
        return self.client.access_token()

    def request(self, method: str, endpoint: str, **kwargs: Any) -> requests.Response:
        """Call the Directory API; see :meth:`RaidiamClient.request`."""
        return self.client.request(method, endpoint, **kwargs)

    def get_json(self, endpoint: str, params: Mapping[str, Any] | None = None) -> Any:
        """GET one Directory endpoint (no paging) and return its parsed JSON; see :meth:`RaidiamClient.get_json`."""
        return self.client.get_json(endpoint, params=params)

    def paginate(
        self, endpoint: str, params: Mapping[str, Any] | None = None, page_size: int | None = None
    ) -> list[dict[str, Any]]:
        """Every record of a paged Directory endpoint; see :meth:`RaidiamClient.paginate`."""
        return self.client.paginate(endpoint, params=params, page_size=page_size)

    def list_tables(self) -> list[str]:
        """Names of the Directory tables :meth:`get_pandas_df` can build."""
        from airflow_provider_raidiam.directory.catalogue import list_tables

        tables: list[str] = list_tables()
        return tables

    def get_pandas_df(self, table: str, **filters: Any) -> pd.DataFrame:
        """Read one Directory table into a DataFrame with its documented schema.

        :param table: a name from :meth:`list_tables`.
        :param filters: the fields of :class:`~airflow_provider_raidiam.directory.filters.TableFilters`,
            e.g. ``organisation_ids=[...]`` or ``status="Active"``.
        """
        return self.get_pandas_dfs([table], **filters)[table]

    def get_pandas_dfs(self, tables: Sequence[str], **filters: Any) -> dict[str, pd.DataFrame]:
        """Read several tables at once, sharing the API calls they have in common (filters as above)."""
        from airflow_provider_raidiam.directory.catalogue import read_tables
        from airflow_provider_raidiam.directory.filters import TableFilters

        checked = TableFilters.from_mapping(filters)
        if checked.participants_url:
            self.client.allow_public(checked.participants_url)
        else:
            checked = checked.merged(participants_url=self.settings.participants_url)
        frames: dict[str, pd.DataFrame] = read_tables(self.client, tables, checked)
        return frames

    def get_participant_dfs(
        self, tables: Sequence[str], participants_url: str | None = None
    ) -> dict[str, pd.DataFrame]:
        """Read ``participants_*`` tables from the public participants list (no token, no client certificate).

        :param tables: names from ``PARTICIPANT_TABLES`` of the catalogue.
        :param participants_url: instead of the connection's ``participants_url`` (its host is then allowed).
        :raises ConfigurationError: no participants URL here nor on the connection, or an unknown table.
        """
        from airflow_provider_raidiam.directory.catalogue import read_participant_tables

        url = participants_url or self.settings.participants_url
        if url is None:
            raise ConfigurationError(
                f"No participants URL: set participants_url on the operator or on connection {self.raidiam_conn_id!r}."
            )
        if participants_url is not None:
            self.client.allow_public(participants_url)
        frames: dict[str, pd.DataFrame] = read_participant_tables(self.client, url, tables)
        return frames

    @staticmethod
    def get_public_participant_dfs(
        participants_url: str, tables: Sequence[str], *, ca_bundle: str | None = None, logger: Logger | None = None
    ) -> dict[str, pd.DataFrame]:
        """Like :meth:`get_participant_dfs`, without a connection: only ``participants_url``'s host is reachable.

        :param ca_bundle: CA file path or PEM text to trust instead of the system store.
        """
        from airflow_provider_raidiam.directory.catalogue import read_participant_tables

        public = PublicClient.for_ca_bundle(ca_bundle, allowed_urls=[participants_url], logger=logger)
        try:
            frames: dict[str, pd.DataFrame] = read_participant_tables(public, participants_url, tables)
        finally:
            public.close()
        return frames

    def call_stats(self) -> tuple[int, int, int]:
        """(API calls, HTTP attempts including retries, attempts refused with HTTP 429) of this hook so far."""
        calls, attempts = self.client.call_stats()
        return calls, attempts, self.client.throttle.refusals[429]

    def test_connection(self) -> tuple[bool, str]:
        """Check discovery, a token, and (with ``api_base_url``) one cheap Directory call."""
        try:
            settings = self.settings
            metadata = self.client.discovery()
            self.client.access_token()
            token_endpoint = self.client.token_client.token_endpoint
            message = (
                f"Discovery of {metadata.issuer} OK; token issued to {settings.client_id} "
                f"({settings.auth_method}) by {token_endpoint}"
            )
            certificate = self.client.tls.certificate
            if certificate is not None:
                message += f", bound to certificate x5t#S256={certificate.thumbprint}"
            if settings.api_base_url:
                page = self.client.get_json("/organisations", {"page": 0, "size": 1})
                total = page.get("totalSize") if isinstance(page, dict) else len(page)
                message += f"; Directory API OK ({total} organisations)"
            return True, message + "."
        except RaidiamError as error:
            return False, f"{type(error).__name__}: {error}"
        except Exception as error:  # the UI/CLI test must answer, whatever failed
            return False, f"Unexpected {type(error).__name__}: {error}"

    def close(self) -> None:
        """Release the pooled connections and worker threads."""
        if "client" in self.__dict__:
            self.client.close()

    def __enter__(self) -> RaidiamHook:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
