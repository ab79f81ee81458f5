"""OpenLineage datasets of the operators: Directory tables read, files written, with their schemas.

Needs ``apache-airflow-providers-openlineage`` (the ``openlineage`` extra) only when OpenLineage calls the
operators' ``get_openlineage_facets_on_complete``: it is imported there, never at module import.

Naming: a Directory table is ``namespace="raidiam://<directory host>[:port]"`` (the API host, or the
participants list's host for ``participants_*`` tables), ``name="<table>"``. A file follows the OpenLineage
naming spec: ``file`` + absolute path for local files, ``<scheme>://<bucket>`` + key for object stores.
Schemas come from the catalogue's column declarations (name and pandas dtype).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from airflow_provider_raidiam.directory.changes import CHANGE, CHANGED_COLUMNS, CHANGES_SUFFIX
from airflow_provider_raidiam.directory.schema import TABLES


def directory_namespace(url: str) -> str:
    """``raidiam://<host>[:port]`` of a Directory URL (API base URL or participants list)."""
    parts = urlsplit(url)
    port = f":{parts.port}" if parts.port and parts.port != 443 else ""
    return f"raidiam://{parts.hostname}{port}"


def file_location(uri: str) -> tuple[str, str]:
    """(namespace, name) of a written file, per the OpenLineage naming spec (credentials in the URI dropped)."""
    parts = urlsplit(uri)
    if parts.scheme in ("", "file", "local"):
        return "file", parts.path
    return f"{parts.scheme}://{parts.hostname or ''}", parts.path.lstrip("/")


def columns_of(name: str) -> list[tuple[str, str]]:
    """(column, dtype) of a catalogue table or of its ``<table>_changes`` file; ``[]`` for other names."""
    table = name.removesuffix(CHANGES_SUFFIX)
    if table not in TABLES:
        return []
    columns = list(TABLES[table].dtypes.items())
    if name != table:
        columns = [(CHANGE, "string"), (CHANGED_COLUMNS, "string"), *columns]
    return columns


def operator_lineage(inputs: Mapping[str, str], outputs: Mapping[str, str]) -> Any:
    """An ``OperatorLineage`` for tables read (``{table: namespace}``) and files written (``{name: uri}``)."""
    from airflow.providers.openlineage.extractors import OperatorLineage
    from openlineage.client.event_v2 import Dataset
    from openlineage.client.facet_v2 import schema_dataset

    def dataset(namespace: str, name: str, table: str) -> Dataset:
        fields = [schema_dataset.SchemaDatasetFacetFields(name=c, type=t) for c, t in columns_of(table)]
        facets: dict[str, Any] = {"schema": schema_dataset.SchemaDatasetFacet(fields=fields)} if fields else {}
        return Dataset(namespace=namespace, name=name, facets=facets)

    return OperatorLineage(
        inputs=[dataset(namespace, table, table) for table, namespace in inputs.items()],
        outputs=[dataset(*file_location(uri), name) for name, uri in outputs.items()],
    )
