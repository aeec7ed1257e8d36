"""What a Questionnaire check reports: :class:`Issue`, and where in the resource it is.

Shared by :mod:`~rejection_fhir.worksheet.rules` (que-* invariants, SDC and our own rules)
and :mod:`~rejection_fhir.worksheet.core_rules` (R4 core rules the models leave out), which
used to import each other; both now import this module, and rules imports core_rules.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rejection_fhir.findings import Severity


@dataclass(frozen=True)
class Issue:
    rule: str
    severity: Severity
    message: str
    link_id: str | None = None
    #: FHIR element path, e.g. ``item[2].item[0].enableWhen[0]``.
    path: str = ""


def link_id_at(resource: Mapping[str, Any], loc: Sequence[Any]) -> str | None:
    """The linkId of the deepest item on an element path, for mapping back to the source."""
    node: Any = resource
    link_id = None
    for part in loc:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            break
        if isinstance(node, Mapping) and isinstance(node.get("linkId"), str):
            link_id = node["linkId"]
    return link_id
