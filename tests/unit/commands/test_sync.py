"""``commands.sync``: what the command adds around the run, called as a library."""

from __future__ import annotations

from collections import Counter

import pytest

from rejection_fhir.commands.sync import exit_code, require_server, tally_line
from rejection_fhir.errors import ConfigError, ExitCode
from rejection_fhir.settings import Settings
from rejection_fhir.sync.run import Problem, SyncReport, Tally


def _report(dry_run: bool = False, **problems: list[Problem]) -> SyncReport:
    tally = Tally(fetched=4, written=2, unchanged=1, rejected=1, resources=9)
    return SyncReport("http://a/fhir", "http://b/fhir", dry_run, None, tally=tally, **problems)


def test_no_server_is_a_configuration_problem_naming_the_new_flag():
    with pytest.raises(ConfigError) as caught:
        require_server(Settings())
    assert caught.value.exit_code == ExitCode.CONFIG
    assert "--source-server" in str(caught.value.hint)
    assert require_server(Settings(server="http://a/fhir")) == "http://a/fhir"


def test_the_tally_in_one_line():
    assert tally_line(_report()) == (
        "fetched 4, written 2 (9 resources), unchanged 1, rejected 1, failed 0, not ours 0"
    )
    dry = _report(dry_run=True)
    dry.tally.uncertain = 1
    dry.tally.left_out = Counter({"Flag": 2})
    assert tally_line(dry) == (
        "dry run: fetched 4, would write 2 (9 resources), unchanged 1, rejected 1, failed 0, "
        "not ours 0, uncertain 1 (settle with sync --reconcile), left out (the server does "
        "not take them): 2 Flag"
    )


def test_a_refused_write_outranks_a_rejection_which_outranks_an_uncertain_write():
    problem = [Problem("QuestionnaireResponse/1", "no")]
    assert exit_code(_report()) is None
    assert exit_code(_report(uncertain=problem)) == ExitCode.UNCERTAIN
    assert exit_code(_report(rejected=problem, uncertain=problem)) == ExitCode.FINDINGS
    assert exit_code(_report(failed=problem, rejected=problem)) == ExitCode.SERVER_REFUSED
