"""Mutated worksheet sources: parse_yaml answers with a Source or one SourceError, validate
exits 0/1/2/3/4 with one message, build exits 3 (or 0) and leaves the output folder as it was."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from rejection_fhir.errors import SourceError
from rejection_fhir.worksheet.source import check_schema, parse_yaml
from tests.conftest import QUESTIONNAIRES
from tests.fuzz.conftest import SEED, assert_clean_exit, count, rng_for, run_cli, tag
from tests.fuzz.mutator import Mutator

SOURCES = {p.name: p.read_text(encoding="utf-8") for p in sorted(QUESTIONNAIRES.glob("*.yaml"))}
WORKSHEETS = [name for name in SOURCES if not name.startswith("_")]
PARSE_CASES = 1200
CLI_CASES = 80


def _parse(text: str, where: str) -> None:
    # No wall-clock bound here: tests assert behaviour, and the parser's own limits (size,
    # aliases, depth) are what keeps a hostile source from running long.
    try:
        source = parse_yaml(text, Path("fuzz.yaml"))
    except SourceError as exc:
        assert exc.findings or exc.message, where
        assert len(str(exc)) < 5000, f"{where} message of {len(str(exc))} chars"
        return
    check_schema(source, "worksheet.schema.json")


def test_parse_yaml_on_mutated_sources() -> None:
    name = "parse_yaml/mutated"
    for case in range(PARSE_CASES):
        rng = rng_for(name, case)
        text = Mutator(rng).mutate_yaml(SOURCES[rng.choice(list(SOURCES))])
        _parse(text, tag(name, case))
        count(name)


@seed(SEED)
@settings(max_examples=2500, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=300))
def test_parse_yaml_on_arbitrary_text(text: str) -> None:
    count("parse_yaml/hypothesis")
    _parse(text, tag("parse_yaml/hypothesis"))


def _folder(tmp: Path, mutated_name: str, text: str) -> Path:
    folder = tmp / "src"
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir()
    for name, original in SOURCES.items():
        if name in ("_project.yaml", mutated_name):
            continue
        (folder / name).write_text(original, encoding="utf-8")
    data = text.encode("utf-8", "surrogatepass")
    (folder / mutated_name).write_bytes(data)
    return folder


def test_validate_cli_on_a_mutated_worksheet(tmp_path: Path) -> None:
    name = "cli/validate"
    for case in range(CLI_CASES):
        rng = rng_for(name, case)
        target = rng.choice(["_project.yaml", *WORKSHEETS])
        mutator = Mutator(rng)
        if rng.random() < 0.15:
            text = mutator.mutate_bytes(SOURCES[target].encode()).decode("utf-8", "surrogateescape")
        else:
            text = mutator.mutate_yaml(SOURCES[target])
        folder = _folder(tmp_path, target, text)
        if target != "_project.yaml":
            (folder / "_project.yaml").write_text(SOURCES["_project.yaml"], encoding="utf-8")
        args = ["validate", str(folder)]
        if rng.random() < 0.3:
            args = ["validate", str(folder / target)]
        if rng.random() < 0.3:
            args.insert(1, "--format=" + rng.choice(["json", "github", "text"]))
        result = run_cli(args)
        assert_clean_exit(result, tag(name, case), allowed={0, 1, 2, 3, 4})
        count(name)


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.mark.parametrize("existing", [True, False], ids=["out-exists", "no-out"])
def test_build_cli_writes_nothing_when_a_source_is_bad(tmp_path: Path, existing: bool) -> None:
    name = f"cli/build/{'existing' if existing else 'fresh'}"
    out = tmp_path / "out"
    if existing:
        out.mkdir()
        (out / "Questionnaire-old.json").write_text('{"keep": "me"}')
        (out / "bundle.json").write_text('{"old": true}')
    before = _snapshot(out) if existing else None
    for case in range(CLI_CASES // 2):
        rng = rng_for(name, case)
        target = rng.choice(["_project.yaml", *WORKSHEETS])
        text = Mutator(rng).mutate_yaml(SOURCES[target])
        folder = _folder(tmp_path, target, text)
        if target != "_project.yaml":
            (folder / "_project.yaml").write_text(SOURCES["_project.yaml"], encoding="utf-8")
        result = run_cli(["build", "--worksheets", str(folder), "--out", str(out)])
        where = tag(name, case)
        assert_clean_exit(result, where, allowed={0, 3, 4})
        leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".out.")]
        assert not leftovers, f"{where} staging folders left behind: {leftovers}"
        if result.code == 0:
            # A mutation that kept the source valid: the build is complete, then reset.
            assert (out / "bundle.json").is_file(), where
            shutil.rmtree(out)
            if existing:
                out.mkdir()
                for file_name, data in (before or {}).items():
                    (out / file_name).write_bytes(data)
        elif existing:
            assert _snapshot(out) == before, f"{where} exit {result.code} but out/ changed"
        else:
            assert not out.exists(), f"{where} exit {result.code} but out/ was created"
        count(name)


def test_validate_and_build_refuse_a_50_mb_source(tmp_path: Path) -> None:
    name = "cli/huge-source"
    folder = _folder(tmp_path, "huge.yaml", "name: huge\ntitle: " + "x" * 50_000_000 + "\n")
    (folder / "_project.yaml").write_text(SOURCES["_project.yaml"], encoding="utf-8")
    result = run_cli(["validate", str(folder)])
    assert_clean_exit(result, tag(name, "validate"), allowed={1})
    assert "MB" in result.out
    out = tmp_path / "out"
    result = run_cli(["build", "--worksheets", str(folder), "--out", str(out)])
    assert_clean_exit(result, tag(name, "build"), allowed={3})
    assert not out.exists()
    count(name, 2)
