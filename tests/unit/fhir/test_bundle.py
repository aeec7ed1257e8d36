"""Bundle entries: the one home of conditional-create, conditional-update and update shapes."""

from __future__ import annotations

from urllib.parse import parse_qs

from rejection_fhir.fhir import bundle
from rejection_fhir.fhir.client import is_retry_safe


def test_conditional_create_posts_the_type_with_encoded_criteria() -> None:
    resource = {"resourceType": "Flag", "status": "active"}
    entry = bundle.conditional_create("urn:uuid:1", resource, {"identifier": "https://s|a/b c"})
    assert entry["fullUrl"] == "urn:uuid:1" and entry["resource"] is resource
    assert entry["request"]["method"] == "POST" and entry["request"]["url"] == "Flag"
    assert parse_qs(entry["request"]["ifNoneExist"]) == {"identifier": ["https://s|a/b c"]}
    assert "|" not in entry["request"]["ifNoneExist"]  # encoded, as servers expect


def test_conditional_update_puts_on_the_search() -> None:
    entry = bundle.conditional_update(
        "urn:uuid:2", {"resourceType": "Observation"}, {"identifier": "s|k"}
    )
    assert entry["request"] == {"method": "PUT", "url": "Observation?identifier=s%7Ck"}


def test_update_is_version_checked_only_when_a_version_is_known() -> None:
    plain = bundle.update("DocumentReference", "7", {"resourceType": "DocumentReference"})
    assert plain["fullUrl"] == "DocumentReference/7"
    assert plain["request"] == {"method": "PUT", "url": "DocumentReference/7"}
    checked = bundle.update("DocumentReference", "7", {}, version_id="3")
    assert checked["request"]["ifMatch"] == 'W/"3"'


def test_bundles_of_conditional_entries_are_safe_to_retry() -> None:
    entries = [
        bundle.conditional_create("urn:uuid:1", {"resourceType": "Device"}, {"identifier": "s|d"}),
        bundle.conditional_update(
            "urn:uuid:2", {"resourceType": "Observation"}, {"identifier": "s|o"}
        ),
    ]
    tx = bundle.transaction(entries)
    assert (tx["resourceType"], tx["type"], tx["entry"]) == ("Bundle", "transaction", entries)
    assert is_retry_safe(tx)
    assert bundle.batch(entries)["type"] == "batch"
    # a plain create is not: a replay would write it twice
    plain = {"fullUrl": "urn:uuid:3", "resource": {}, "request": {"method": "POST", "url": "Flag"}}
    assert not is_retry_safe(bundle.transaction([plain]))
