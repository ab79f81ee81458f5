"""The supported-version gate and the pandas 3 DataFrame serializer of ``version_compat``.

The serializer is exercised here with the running Airflow's own parquet serializer and deserializer
standing in for an older Airflow's registry (which knows only the pandas 2 class name); the matrix
(``tests/matrix``) proves the same on the real Airflow 3.0, 3.1 and 3.2.
"""

from __future__ import annotations

import ast
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pandas as pd
import pytest

import airflow_provider_raidiam
from airflow_provider_raidiam import version_compat
from airflow_provider_raidiam.exceptions import ConfigurationError, UnsupportedAirflowError
from airflow_provider_raidiam.version_compat import (
    PANDAS_2_DATAFRAME,
    check_airflow_version,
    register_dataframe_serializer,
    xcom_serde,
)

PACKAGE_DIR = Path(airflow_provider_raidiam.__file__).parent


@pytest.mark.parametrize("version", [(2, 11, 2), (3, 0, 0), (3, 0, 5), (1, 10, 15)])
def test_an_unsupported_airflow_is_refused_with_what_to_install(version: tuple[int, int, int]) -> None:
    with pytest.raises(UnsupportedAirflowError) as raised:
        check_airflow_version(version)

    message = str(raised.value)
    assert ".".join(map(str, version)) in message
    assert "3.0.6 or later" in message
    assert "pip install" in message
    assert isinstance(raised.value, ImportError), "the providers manager reports ImportErrors as failed imports"
    assert isinstance(raised.value, ConfigurationError)


@pytest.mark.parametrize("version", [(3, 0, 6), (3, 1, 8), (3, 2, 2), (3, 3, 2), (3, 9, 0)])
def test_a_supported_airflow_passes(version: tuple[int, int, int]) -> None:
    check_airflow_version(version)


def test_the_running_airflow_is_the_one_version_compat_reports() -> None:
    from airflow import __version__

    assert ".".join(map(str, version_compat.AIRFLOW_VERSION)) == __version__.split("+")[0].split("rc")[0]


def test_no_module_but_version_compat_imports_airflow() -> None:
    """Airflow names come through one module, so a version difference is handled in one place."""
    offenders = []
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        if "node_modules" in path.parts or path.name == "version_compat.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            offenders += [f"{path.relative_to(PACKAGE_DIR)}: {n}" for n in names if _is_airflow_api(n)]
    assert not offenders, offenders


def _is_airflow_api(module: str) -> bool:
    # The OpenLineage provider is an optional package of its own, imported lazily where used.
    return module.split(".")[0] == "airflow" and not module.startswith("airflow.providers.openlineage")


def _older_airflow_registry() -> Any:
    """A serde registry like Airflow 3.0-3.2's: the parquet serializer under the pandas 2 name only."""
    serializer = xcom_serde()._serializers[PANDAS_2_DATAFRAME]
    return SimpleNamespace(_serializers={PANDAS_2_DATAFRAME: serializer})


def test_registered_serializer_writes_the_pandas_2_name_that_every_reader_knows() -> None:
    serde = _older_airflow_registry()
    name = f"{pd.DataFrame.__module__}.{pd.DataFrame.__qualname__}"
    if name == PANDAS_2_DATAFRAME:
        pytest.skip("pandas 2 names its DataFrame like Airflow expects: nothing to register")
    frame = pd.DataFrame({"kid": ["a", "b"], "rows": [1, 2]})

    assert register_dataframe_serializer(serde) is True
    data, classname, version, serialized = serde._serializers[name].serialize(frame)

    assert serialized is True
    assert classname == PANDAS_2_DATAFRAME
    serde_of_this_airflow = xcom_serde()
    read_back = serde_of_this_airflow.deserialize(serde_of_this_airflow.encode(classname, version, data))
    pd.testing.assert_frame_equal(read_back, frame, check_dtype=False)


def test_registration_leaves_a_registry_that_knows_the_name_alone() -> None:
    current = {name: object() for name in ("pandas.DataFrame", PANDAS_2_DATAFRAME)}
    serde: Any = SimpleNamespace(_serializers=dict(current))

    assert register_dataframe_serializer(serde) is False
    assert serde._serializers == current


def test_registration_leaves_a_registry_without_a_dataframe_serializer_alone() -> None:
    serde: Any = SimpleNamespace(_serializers={})

    assert register_dataframe_serializer(serde) is False
    assert serde._serializers == {}
