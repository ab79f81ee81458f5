"""The one place the provider imports Apache Airflow from, and its supported-version gate.

Airflow 3 moved its public API into ``airflow.sdk`` over several minor releases (``BaseHook`` arrived
there in 3.1), so names are imported here by version rather than with scattered ``try/except
ImportError``. Importing this module on an Airflow older than :data:`MIN_AIRFLOW_VERSION` raises
:class:`~airflow_provider_raidiam.exceptions.UnsupportedAirflowError` saying what to install instead.
"""

from __future__ import annotations

from types import ModuleType
from typing import TYPE_CHECKING, Any

from airflow import __version__ as _airflow_version_string
from packaging.version import Version

from airflow_provider_raidiam.exceptions import UnsupportedAirflowError

MIN_AIRFLOW_VERSION = (3, 0, 6)
"""The oldest Airflow this provider supports: the latest patch of the 3.0 line (see the README's matrix)."""

AIRFLOW_VERSION: tuple[int, int, int] = Version(_airflow_version_string).release[:3]  # type: ignore[assignment]
"""The running Airflow's ``(major, minor, micro)``; pre-release and local tags dropped."""

AIRFLOW_V_3_1_PLUS = AIRFLOW_VERSION >= (3, 1, 0)
AIRFLOW_V_3_2_PLUS = AIRFLOW_VERSION >= (3, 2, 0)
AIRFLOW_V_3_3_PLUS = AIRFLOW_VERSION >= (3, 3, 0)


def check_airflow_version(version: tuple[int, ...] = AIRFLOW_VERSION) -> None:
    """Raise :class:`UnsupportedAirflowError` unless ``version`` is a supported Airflow (3.0.6 or later)."""
    if tuple(version) < MIN_AIRFLOW_VERSION:
        found = ".".join(str(part) for part in version)
        raise UnsupportedAirflowError(
            f"airflow-provider-raidiam needs Apache Airflow 3.0.6 or later, but Airflow {found} is installed. "
            'Upgrade Airflow (pip install "apache-airflow>=3.0.6" with the constraints file of that release), '
            "or use an Airflow 3 deployment; Airflow 2 is not supported."
        )


check_airflow_version()  # before the imports below: on an older Airflow they fail with a less helpful error

if TYPE_CHECKING or AIRFLOW_V_3_1_PLUS:
    from airflow.sdk import BaseHook
else:  # Airflow 3.0 kept BaseHook in core
    from airflow.hooks.base import BaseHook

if TYPE_CHECKING or AIRFLOW_V_3_2_PLUS:
    from airflow.sdk.exceptions import AirflowSkipException
else:  # before 3.2 the task exceptions lived in core
    from airflow.exceptions import AirflowSkipException

from airflow.sdk import (  # noqa: E402 (after the gate)
    Asset,
    AssetAlias,
    BaseOperator,
    BaseSensorOperator,
    Context,
    ObjectStoragePath,
)
from airflow.sdk.log import mask_secret  # noqa: E402
from airflow.triggers.base import BaseEventTrigger, TriggerEvent  # noqa: E402


def xcom_serde() -> ModuleType:
    """The ``serde`` module that (de)serializes XCom values on this Airflow."""
    if TYPE_CHECKING or AIRFLOW_V_3_2_PLUS:
        from airflow.sdk import serde
    else:  # before 3.2 it lived in core
        from airflow.serialization import serde
    return serde


PANDAS_2_DATAFRAME = "pandas.core.frame.DataFrame"
"""The class name of a DataFrame under pandas 2, the only one Airflow before 3.3 registers for XCom."""


class _Pandas2NameSerializer:
    """Airflow's own DataFrame serializer, recording the pandas 2 class name every Airflow 3 reader knows."""

    def __init__(self, serializer: ModuleType) -> None:
        self._serializer = serializer

    def serialize(self, value: object) -> tuple[Any, str, int, bool]:
        data, _, version, serialized = self._serializer.serialize(value)
        return data, PANDAS_2_DATAFRAME, version, serialized


def register_dataframe_serializer(serde: ModuleType) -> bool:
    """Let ``serde`` serialize pandas 3 DataFrames for XCom, where it knows only the pandas 2 class name.

    pandas 3 names its DataFrame ``pandas.DataFrame``; Airflow 3.0 to 3.2 look serializers up by that
    name and fail with ``cannot serialize object of type <class 'pandas.DataFrame'>``. This registers
    Airflow's own parquet serializer under the new name, writing the old one, so any Airflow 3 process
    (with this provider imported or not, pandas 2 or 3) reads the XCom back. Returns whether it did.
    """
    import pandas as pd

    registry: dict[str, Any] = serde._serializers
    name = f"{pd.DataFrame.__module__}.{pd.DataFrame.__qualname__}"
    if name in registry or PANDAS_2_DATAFRAME not in registry:
        return False
    registry[name] = _Pandas2NameSerializer(registry[PANDAS_2_DATAFRAME])
    return True


if not AIRFLOW_V_3_3_PLUS:  # 3.3 registers both names itself
    register_dataframe_serializer(xcom_serde())

__all__ = [
    "AIRFLOW_VERSION",
    "AIRFLOW_V_3_1_PLUS",
    "AIRFLOW_V_3_2_PLUS",
    "AIRFLOW_V_3_3_PLUS",
    "MIN_AIRFLOW_VERSION",
    "AirflowSkipException",
    "Asset",
    "AssetAlias",
    "BaseEventTrigger",
    "BaseHook",
    "BaseOperator",
    "BaseSensorOperator",
    "Context",
    "ObjectStoragePath",
    "TriggerEvent",
    "check_airflow_version",
    "mask_secret",
    "register_dataframe_serializer",
    "xcom_serde",
]
