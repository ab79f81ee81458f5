"""The emulator's data changes and the ground truth it reports for them (no server: the data set itself)."""

from __future__ import annotations

import copy

import pytest

from raidiam_sandbox.dataset import build_dataset
from raidiam_sandbox.mutations import DataChanges, apply_changes


def ids(truth: dict[str, dict[str, list[str]]], kind: str, key: str) -> set[str]:
    return set(truth[kind].get(key, []))


def test_the_answer_is_what_the_ground_truth_ids_say_changed() -> None:
    ds = build_dataset(3, 40)
    before = ds.ground_truth()
    statuses_before = {c["kid"]: c["Status"] for certs in ds.software_statement_certificates.values() for c in certs}
    truth = apply_changes(
        ds,
        DataChanges(
            seed=1,
            add_organisations=2,
            remove_organisations=3,
            change_endpoints=4,
            remove_endpoints=5,
            revoke_certificates=6,
        ),
    )
    after = ds.ground_truth()
    assert len(truth["added"]["organisations"]) == 2
    assert len(truth["removed"]["organisations"]) == 3
    assert set(after["organisations"]["ids"]) == set(before["organisations"]["ids"]) - ids(
        truth, "removed", "organisations"
    ) | ids(truth, "added", "organisations")
    revoked = ids(truth, "changed", "software_statement_certificates")
    assert len(revoked) == 6
    statuses = {c["kid"]: c["Status"] for certs in ds.software_statement_certificates.values() for c in certs}
    assert all(statuses_before[kid] == "Active" and statuses[kid] == "Revoked" for kid in revoked)
    moved = ids(truth, "changed", "api_discovery_endpoints")
    assert len(moved) == 4
    assert moved.isdisjoint(ids(truth, "removed", "api_discovery_endpoints"))
    assert ids(truth, "changed", "participant_api_discovery_endpoints") == moved & set(
        after["participant_api_discovery_endpoints"]["ids"]
    )
    assert after["meta"]["mutations"] == before["meta"]["mutations"] + 1 + 2


def test_the_same_seed_on_the_same_data_picks_the_same_records() -> None:
    first, second = build_dataset(5, 30), build_dataset(5, 30)
    changes = DataChanges(seed=9, remove_organisations=2, change_endpoints=3, revoke_certificates=2)
    assert apply_changes(first, changes) == apply_changes(second, copy.deepcopy(changes))


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([], "must be a JSON object"),
        ({"add_organisations": 1, "explode": 1}, r"unknown keys: \['explode'\]"),
        ({"add_organisations": -1}, r"add_organisations must be an integer in \[0, 10000\]"),
        ({"revoke_certificates": True}, "revoke_certificates must be an integer"),
        ({"seed": "x"}, "seed must be an integer"),
    ],
)
def test_bad_requests_are_refused_with_a_reason(body: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        DataChanges.parse(body)
