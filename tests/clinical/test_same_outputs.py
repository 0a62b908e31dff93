"""tests/clinical/same_outputs.py: two dumps of one tree are equal, and a diff finds a change.

The dumps run in their own processes (as `compare` runs them), under two different hash seeds,
so an output that depends on set or dict order shows up here. `compare` itself (git worktree)
is run by hand, not here: CI's clone may not hold the base revision.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.clinical import same_outputs as so

RULES = ("ctcae_anc", "ferritin_kinetics")
SOURCES = {f"{src}{site}" for site in ("", "+site") for src in (
    "sample:evaluate", "sample:replay", "sample:replay-days", "synthetic",
    "synthetic:lymphodepletion", "synthetic:episodes", "edge")}


def _dump(out: Path, hash_seed: str) -> None:
    env = {**os.environ, "PYTHONHASHSEED": hash_seed}
    subprocess.run([sys.executable, str(Path(so.__file__)), "dump", str(out), "--quick",
                    "--rules", ",".join(RULES)], check=True, env=env, capture_output=True,
                   timeout=120)


@pytest.fixture(scope="module")
def dumps(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("same_outputs")
    a, b = tmp / "a.jsonl.gz", tmp / "b.jsonl.gz"
    _dump(a, "1")
    _dump(b, "2")
    return a, b


def _lines(path: Path) -> list[dict[str, Any]]:
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        return [json.loads(t) for t in fh]


def _write(path: Path, lines: list[dict[str, Any]]) -> None:
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        fh.writelines(json.dumps(line, sort_keys=True) + "\n" for line in lines)


def test_two_dumps_of_one_tree_are_identical(dumps: tuple[Path, Path],
                                            capsys: pytest.CaptureFixture[str]) -> None:
    a, b = dumps
    assert a.read_bytes() == b.read_bytes()  # deterministic, whatever the hash seed
    assert so.main(["diff", str(a), str(b)]) == 0
    out = capsys.readouterr().out
    assert "identical" in out
    assert f"compared {len(_lines(a)) - 1} findings" in out


def test_dump_holds_every_source_and_only_the_rules_asked(dumps: tuple[Path, Path]) -> None:
    lines = _lines(dumps[0])
    assert lines[0]["meta"]["rules"] == list(RULES)
    body = lines[1:]
    assert {line["src"] for line in body} == SOURCES
    assert {line["rule"] for line in body} == set(RULES)
    met = {(line["src"], line["rule"]) for line in body if line["finding"]["status"] == "met"}
    for src in ("sample:evaluate", "sample:replay-days", "synthetic", "synthetic+site"):
        for rule in RULES:
            assert (src, rule) in met, f"{rule} never met in {src}: the dump checks little"
    # the overrides change some findings: the +site passes are not copies
    plain = {(ln["patient"], ln["as_of"], ln["day"], ln["rule"]): ln["finding"]
             for ln in body if ln["src"] == "synthetic"}
    changed = {ln["rule"] for ln in body if ln["src"] == "synthetic+site"
               and plain[(ln["patient"], ln["as_of"], ln["day"], ln["rule"])] != ln["finding"]}
    assert changed == set(RULES)


def _graded(lines: list[dict[str, Any]]) -> int:
    """Index of a met ctcae_anc finding with a grade and evidence."""
    return next(i for i, ln in enumerate(lines) if "meta" not in ln
                and ln["rule"] == "ctcae_anc" and ln["finding"]["status"] == "met"
                and ln["finding"]["grade"] and ln["finding"]["evidence"])


def _regrade(f: dict[str, Any]) -> str:
    old = f["grade"]
    f["grade"] = old - 1
    return f"grade: {old} -> {old - 1}"


def _float_grade(f: dict[str, Any]) -> str:
    f["grade"] = float(f["grade"])
    return f"grade: {int(f['grade'])} -> {f['grade']!r}"


def _evidence(f: dict[str, Any]) -> str:
    old = f["evidence"][0]["value"]
    f["evidence"][0]["value"] = old + 1e-12  # floats compared to the last bit
    return f"evidence[0].value: {json.dumps(old)} -> {json.dumps(old + 1e-12)}"


def _new_field(f: dict[str, Any]) -> str:
    f["note"] = "x"
    return 'note: "<absent>" -> "x"'


@pytest.mark.parametrize("change", [_regrade, _float_grade, _evidence, _new_field],
                         ids=["grade", "int-to-float", "evidence-float", "added-field"])
def test_diff_names_the_rule_and_field_of_a_changed_finding(
        dumps: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str],
        change: Callable[[dict[str, Any]], str]) -> None:
    lines = _lines(dumps[0])
    i = _graded(lines)
    expected = change(lines[i]["finding"])
    changed = tmp_path / "changed.jsonl.gz"
    _write(changed, lines)
    assert so.main(["diff", str(dumps[0]), str(changed)]) == 1
    out = capsys.readouterr().out
    assert f"\nctcae_anc: differs in {lines[i]['src']} 1\n  {lines[i]['src']} " \
           f"{lines[i]['patient']} as_of={lines[i]['as_of']}" in out
    assert expected in out
    row = next(r for r in out.splitlines() if r.startswith("ctcae_anc "))
    assert row.split()[1:] == ["1", "0", "0"]  # one differs, none missing
    assert "ferritin_kinetics" not in out


@pytest.mark.parametrize(("side", "column"), [("base", 2), ("new", 3)])
def test_diff_reports_a_finding_present_on_one_side_only(
        dumps: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str],
        side: str, column: int) -> None:
    lines = _lines(dumps[0])
    gone = lines.pop(_graded(lines))
    fewer = tmp_path / "fewer.jsonl.gz"
    _write(fewer, lines)
    a, b = (dumps[0], fewer) if side == "base" else (fewer, dumps[0])
    assert so.main(["diff", str(a), str(b)]) == 1
    out = capsys.readouterr().out
    row = next(r for r in out.splitlines() if r.startswith("ctcae_anc ")).split()
    assert row[column] == "1" and row[1] == "0"
    assert f"only in {side}: {gone['src']} {gone['patient']} {gone['as_of']}" in out


@pytest.mark.parametrize(("old", "new", "expected"), [
    ({"a": 1}, {"a": 1}, []),
    ({"a": 0.0}, {"a": -0.0}, ["a: 0.0 -> -0.0"]),
    ({"e": [1, 2]}, {"e": [1, 3]}, ["e[1]: 2 -> 3"]),
    ({"e": [1]}, {"e": [1, 2]}, ["e: 1 items -> 2 items: [1] -> [1, 2]"]),
    ({"a": None}, {}, ['a: null -> "<absent>"']),
])
def test_field_diff(old: dict[str, Any], new: dict[str, Any], expected: list[str]) -> None:
    assert so.field_diff(old, new) == expected
