from __future__ import annotations

from rejection_fhir.fhir import outcome as oo


def test_issue_line_has_severity_code_location_and_diagnostics() -> None:
    issue = {
        "severity": "error",
        "code": "invalid",
        "diagnostics": "Duplicate linkId 'q1'",
        "expression": ["Questionnaire.item[2].linkId"],
    }
    assert oo.format_issue(issue) == (
        "error [invalid] at Questionnaire.item[2].linkId: Duplicate linkId 'q1'"
    )


def test_location_is_used_when_expression_is_absent() -> None:
    issue = {"severity": "warning", "code": "value", "location": ["/f:Questionnaire/f:item"]}
    assert oo.format_issue(issue) == "warning [value] at /f:Questionnaire/f:item"


def test_details_text_then_coding_display_stand_in_for_missing_diagnostics() -> None:
    with_text = {"severity": "error", "code": "processing", "details": {"text": "Bad thing"}}
    with_coding = {
        "severity": "error",
        "code": "processing",
        "details": {"coding": [{"code": "MSG_NO_MATCH", "display": "No match found"}]},
    }
    assert oo.format_issue(with_text).endswith(": Bad thing")
    assert oo.format_issue(with_coding).endswith(": No match found")


def test_withheld_diagnostics_keep_location_but_drop_the_text() -> None:
    issue = {
        "severity": "error",
        "code": "invalid",
        "diagnostics": "Value 'I felt worthless after the call' is too long",
        "expression": ["QuestionnaireResponse.item[0].answer[0]"],
    }
    line = oo.format_issue(issue, withhold_diagnostics=True)
    assert "worthless" not in line
    assert "QuestionnaireResponse.item[0].answer[0]" in line
    assert "withheld" in line


def test_long_multiline_diagnostics_are_flattened_and_cut() -> None:
    issue = {"severity": "error", "code": "exception", "diagnostics": "line\n\tat x\n" * 200}
    text = oo.issue_text(issue)
    assert text is not None
    assert "\n" not in text
    assert len(text) == oo.MAX_DIAGNOSTICS_CHARS
    assert text.endswith("...")


def test_outcome_lists_errors_before_warnings_and_counts_the_overflow() -> None:
    issues = [{"severity": "information", "code": "informational", "diagnostics": "fyi"}]
    issues += [{"severity": "warning", "code": "value", "diagnostics": f"w{i}"} for i in range(3)]
    issues.append({"severity": "fatal", "code": "structure", "diagnostics": "broken"})
    text = oo.format_outcome({"resourceType": "OperationOutcome", "issue": issues}, max_issues=3)
    lines = text.splitlines()
    assert lines[0] == "  - fatal [structure]: broken"
    assert lines[1].startswith("  - warning")
    assert lines[-1] == "  - ... and 2 more issues"


def test_empty_or_malformed_outcomes_give_empty_text() -> None:
    assert oo.format_outcome({"resourceType": "OperationOutcome"}) == ""
    assert oo.format_outcome({"resourceType": "OperationOutcome", "issue": ["junk", 3]}) == ""


def test_severity_helpers() -> None:
    warn = {"resourceType": "OperationOutcome", "issue": [{"severity": "warning"}]}
    err = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "warning"}, {"severity": "error"}],
    }
    assert oo.worst_severity(warn) == "warning"
    assert oo.worst_severity(err) == "error"
    assert oo.worst_severity({"issue": []}) is None
    assert oo.is_operation_outcome(err)
    assert not oo.is_operation_outcome({"resourceType": "Bundle"})
    assert not oo.is_operation_outcome("OperationOutcome")


def test_redacted_outcome_has_no_free_text_left() -> None:
    original = {
        "resourceType": "OperationOutcome",
        "text": {"status": "generated", "div": "<div>answer: I cried</div>"},
        "issue": [
            {
                "severity": "error",
                "code": "invalid",
                "diagnostics": "answer 'I cried' invalid",
                "details": {"text": "I cried", "coding": [{"code": "X"}]},
                "expression": ["QuestionnaireResponse.item[0]"],
            }
        ],
    }
    redacted = oo.redact_outcome(original)
    assert "cried" not in repr(redacted)
    assert redacted["issue"][0]["expression"] == ["QuestionnaireResponse.item[0]"]
    assert redacted["issue"][0]["details"] == {"coding": [{"code": "X"}]}
    assert "cried" in repr(original), "the input must not be changed"
