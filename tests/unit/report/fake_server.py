"""A FHIR server that holds what the sync wrote for one client, recorded with ``responses``."""

from __future__ import annotations

import json
import re
from urllib.parse import parse_qs, urlsplit

import responses

from tests.unit.report.records import of_type

BASE = "http://127.0.0.1:9999/fhir"
TYPES = ("Observation", "DocumentReference", "Flag")


class FakeServer:
    """metadata, and each search answered in two pages, the second through a HAPI-style
    ``[base]?_getpages=`` next link."""

    def __init__(
        self, rsps: responses.RequestsMock, resources: list[dict], patient: dict | None = None
    ) -> None:
        self.held = {t: of_type(resources, t) for t in TYPES}
        self.searches: dict[str, dict[str, list[str]]] = {}
        self.pages: list[tuple[str, int]] = []
        rsps.get(
            f"{BASE}/metadata", json={"resourceType": "CapabilityStatement", "fhirVersion": "4.0.1"}
        )
        for resource_type in TYPES:
            rsps.add_callback(
                responses.GET, f"{BASE}/{resource_type}", callback=self.search(resource_type)
            )
        rsps.add_callback(responses.GET, BASE, callback=self.next_page)
        # The Patient read: the one given, else 404 as for a Patient the server hides.
        if patient is not None:
            rsps.get(f"{BASE}/Patient/{patient['id']}", json=patient)
        else:
            rsps.get(
                re.compile(rf"{re.escape(BASE)}/Patient/.*"),
                status=404,
                json={"resourceType": "OperationOutcome", "issue": []},
            )

    def search(self, resource_type):
        def answer(request):
            self.searches[resource_type] = parse_qs(urlsplit(request.url).query)
            return self.page(resource_type, 1)

        return answer

    def next_page(self, request):
        query = parse_qs(urlsplit(request.url).query)
        return self.page(query["_getpages"][0], int(query["_page"][0]))

    def page(self, resource_type, number):
        self.pages.append((resource_type, number))
        held = self.held[resource_type]
        half = (len(held) + 1) // 2
        chunk = held[:half] if number == 1 else held[half:]
        bundle = {
            "resourceType": "Bundle",
            "type": "searchset",
            "total": len(held),
            "link": [{"relation": "self", "url": f"{BASE}/{resource_type}"}],
            "entry": [
                {
                    "fullUrl": f"{BASE}/{r['resourceType']}/{r['id']}",
                    "resource": r,
                    "search": {"mode": "match"},
                }
                for r in chunk
            ],
        }
        if number == 1:
            bundle["link"].append(
                {"relation": "next", "url": f"{BASE}?_getpages={resource_type}&_page=2"}
            )
        return 200, {"Content-Type": "application/fhir+json"}, json.dumps(bundle)
