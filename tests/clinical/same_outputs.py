"""Shows that the rules' outputs are identical, field for field, to a base git revision.

Issue #15 (the columnar rules engine) must leave `evaluate --json` at several as-of times and
`replay --json` unchanged, over the sample cohort and synthetic courses.

    .venv/bin/python tests/clinical/same_outputs.py compare main [--quick] [--rules a,b]
    .venv/bin/python tests/clinical/same_outputs.py dump OUT.jsonl.gz [--root DIR] [--quick]
    .venv/bin/python tests/clinical/same_outputs.py diff BASE.jsonl.gz NEW.jsonl.gz

- `dump` imports `core` and `bench` from DIR (default: this repository) and writes gzip JSON
  lines: a "meta" line, then one line per finding {"src", "patient", "as_of", "day", "rule",
  "finding"}, the finding as `finding_json` makes it for `--json`. Sources: DIR's sample cohort
  (run_evaluate at six as-of times derived from its infusion dates, run_replay; both again with
  a site TOML), and synthetic courses (bench.replay_rules.build_courses, lymphodepletion and
  episode/event variants, edge courses) through evaluate_course at six as-of days and
  replay_course, with and without threshold overrides. `--quick`: fewer synthetic courses.
- `compare REV` dumps a temporary `git worktree` of REV and the working tree, each in its own
  process, diffs them and removes the worktree; `diff A B` diffs two dumps. Findings match on
  (src, patient, as_of, day, rule) and compare as JSON text: floats to the last bit, 1 != 1.0.
  Exit status: 0 identical, 1 something differs or is missing, 2 a dump failed.

This script (the working tree's) dumps both trees: when the port moves a function, add its
new module to API, after the old one.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import importlib
import json
import logging
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time as clock
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

REPO = Path(__file__).resolve().parents[2]
GOLDEN_AS_OF = datetime(2026, 11, 21, 8, 0, tzinfo=UTC)  # tests/clinical/make_golden.py AS_OF
FORMAT = 1
# name -> modules that may define it, oldest layout first (see the module docstring)
API: dict[str, tuple[str, ...]] = {
    "seed_sample": ("core.capture.seeding",), "Settings": ("core.config",),
    "init_db": ("core.store.db",), "make_engine": ("core.store.db",),
    "run_evaluate": ("core.monitoring.evaluation",),
    "run_replay": ("core.monitoring.evaluation",),
    "finding_json": ("core.monitoring.evaluation",),
    "evaluate_course": ("core.rules.engine",), "replay_course": ("core.rules.engine",),
    "all_specs": ("core.rules.catalog",), "make_course": ("core.vocabulary.course",),
    "build_courses": ("bench.replay_rules",),
}
# Site threshold overrides for the "+site" passes (test values, not clinical advice): a CTCAE
# grade limit, which IEC-HS and the cytopenia rules also read, and a ferritin kinetics fold.
OVERRIDES = {"ctcae_anc": {"abs_g3": 1.2}, "ferritin_kinetics": {"rising_fold": 1.3}}
AS_OF_DAYS = (-2.5, 0.5, 3.3, 10.9, 25.2, math.inf)
FINDING = ', "finding": '  # where the key fields end in a dump line
Key = tuple[str, str, str, str, str]
Line = dict[str, Any]
log = logging.getLogger("same_outputs")


def _progress(what: str, n: int, since: float) -> None:
    print(f"  {what}: {n} findings ({clock.perf_counter() - since:.1f} s)", file=sys.stderr)


class _Tally(logging.Handler):
    """Prints the project's first few log records of WARNING and above, counts the rest."""

    def __init__(self, shown: int = 3) -> None:
        super().__init__(logging.WARNING)
        self.shown, self.counts = shown, Counter[str]()
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.counts[f"{record.levelname} {record.name}"] += 1
        if sum(self.counts.values()) <= self.shown:
            print(self.format(record), file=sys.stderr)

    def summary(self) -> str:
        return ", ".join(f"{n} x {what}" for what, n in self.counts.most_common()) or "none"


# ---------------------------------------------------------------- dump
def load_api(root: Path) -> SimpleNamespace:
    """The project's functions, imported from `root` (and never from this repository)."""
    root = root.resolve()
    if "core" in sys.modules:
        raise RuntimeError("core is already imported; dump runs in a fresh process")
    venv = Path(sys.prefix).resolve()  # the interpreter's packages stay, even under REPO
    sys.path[:] = [p for p in sys.path if not (Path(p or ".").resolve().is_relative_to(REPO)
                                               and not Path(p).resolve().is_relative_to(venv))]
    sys.path.insert(0, str(root))
    api: dict[str, Any] = {}
    for name, modules in API.items():
        errors = []
        for module in modules:
            try:
                api[name] = getattr(importlib.import_module(module), name)
                break
            except (ImportError, AttributeError) as exc:
                errors.append(f"{module}: {type(exc).__name__}: {exc}")
        else:
            raise ImportError(f"{name} is in none of {modules} under {root}: {errors}")
    for package in ("core", "bench"):
        where = Path(sys.modules[package].__file__ or "").resolve()
        if not where.is_relative_to(root):
            raise ImportError(f"{package} came from {where}, not from {root}")
    return SimpleNamespace(**api)


def sample_as_of_times(sample_dir: Path) -> list[datetime]:
    """Six as-of times over the sample: patients on day -1, 0 (and the midnight it turns
    to day 1), 1 and mid-course, and the golden AS_OF (every row known)."""
    with (sample_dir / "patients.csv").open(encoding="utf-8", newline="") as fh:
        dates = sorted({date.fromisoformat(r["infusion_date"]) for r in csv.DictReader(fh)},
                       reverse=True)

    def at(d: date, days: int, hour: int) -> datetime:
        return datetime.combine(d + timedelta(days=days), time(hour), tzinfo=UTC)

    latest, second, fourth = dates[0], dates[min(1, len(dates) - 1)], dates[min(3, len(dates) - 1)]
    median = dates[len(dates) // 2]
    times = {at(latest, -1, 20), at(second, 0, 14), at(second, 1, 0), at(fourth, 1, 9),
             at(median, 10, 8), GOLDEN_AS_OF}
    return sorted(t for t in times if t <= GOLDEN_AS_OF)


def _doc_lines(kind: str, site: str, doc: dict[str, Any]) -> Iterator[Line]:
    for p in doc["patients"]:
        base = {"src": f"sample:{kind}{site}", "patient": p["patient_id"], "as_of": doc["as_of"]}
        for f in p["findings"]:
            yield {**base, "day": p["day"], "rule": f["rule"], "finding": f}
        for d in p.get("days", ()):
            for f in d["findings"]:
                yield {**base, "src": f"sample:{kind}-days{site}", "day": d["day"],
                       "rule": f["rule"], "finding": f}


def sample_lines(api: SimpleNamespace, root: Path, specs: list[Any]) -> Iterator[Line]:
    """run_evaluate at each as-of time and run_replay, over a fresh SQLite copy of the sample
    (as tests/clinical/make_golden.py seeds it), then both again with a site config file."""
    sample_dir = root / "data" / "sample"
    rules = {s.rule.id for s in specs}
    with tempfile.TemporaryDirectory(prefix="same-outputs-sample-") as tmp:
        url = f"sqlite:///{Path(tmp) / 'sample.db'}"
        site = Path(tmp) / "site.toml"
        site.write_text("".join(f"[thresholds.{rule}]\n" + "".join(
            f"{k} = {v!r}\n" for k, v in values.items()) for rule, values in OVERRIDES.items()
            if rule in rules), encoding="utf-8")
        engine = api.make_engine(url)
        try:
            api.init_db(engine)
            reports = api.seed_sample(engine, sample_dir)
            if not all(r.ok for r in reports):
                raise RuntimeError(f"the sample did not load: {[str(r) for r in reports]}")
            for settings, tag, times in (
                    (api.Settings(database_url=url), "", sample_as_of_times(sample_dir)),
                    (api.Settings(database_url=url, site_config=site), "+site",
                     [GOLDEN_AS_OF])):
                for t in times:
                    t0 = clock.perf_counter()
                    lines = list(_doc_lines("evaluate", tag, api.run_evaluate(
                        engine, settings, as_of=t, specs=specs)))
                    _progress(f"sample:evaluate{tag} as of {t:%Y-%m-%d %H:%M}", len(lines), t0)
                    yield from lines
                t0 = clock.perf_counter()
                lines = list(_doc_lines("replay", tag, api.run_replay(
                    engine, settings, as_of=GOLDEN_AS_OF, specs=specs)))
                _progress(f"sample:replay{tag}", len(lines), t0)
                yield from lines
        finally:
            engine.dispose()


def edge_courses(api: SimpleNamespace) -> list[Any]:
    """Hand-made corner cases: no data; labs only before day 0; labs without reference ranges
    (given as none, and an analyte the catalogue has none for); a '<' result; data that starts
    after the as-of day; bedside data only; episodes and events without labs."""
    mk = api.make_course
    before = [(a, d, v) for d in (-6.2, -3.1, -0.4)
              for a, v in (("ferritin", 900.0), ("anc", 0.4), ("platelets", 40.0))]
    no_ranges = [("ferritin", d, 400.0 * 2 ** d, None, None) for d in range(-2, 6)]
    no_ranges += [("scd25", d, 3000.0, None, None) for d in (1, 3)]
    no_ranges += [("anc", d, 0.3, None, None, "<") for d in (2, 4)]
    late = [("ferritin", d + 0.3, 500.0 + 100 * d) for d in range(2, 9)]
    return [
        mk(patient_id="E-empty"),
        mk(patient_id="E-before-day0", labs=before),
        mk(patient_id="E-no-ranges", labs=no_ranges),
        mk(patient_id="E-late-data", labs=late),
        mk(patient_id="E-late-data-asof1", labs=late, as_of_day=1.0),
        mk(patient_id="E-bedside-only",
           observations=[("temperature", d / 2, 39.1) for d in range(0, 10)]
           + [("ice_score", 2.5, 6), ("hypotension", 3.2, 1)]),
        mk(patient_id="E-episodes-only", episodes=[("CRS", 2, 1.0, 4.0), ("ICANS", 1, 3.0, None)],
           treatments=[("tocilizumab", 1.5)], events=[("progression", 20.0)]),
    ]


def synthetic_sets(api: SimpleNamespace, quick: bool) -> list[tuple[str, list[Any]]]:
    """(source, courses): the bench's courses, variants of them, and the edge courses."""
    n, days = (12, 30) if quick else (64, 45)
    courses = api.build_courses(n, days, 3)
    ld = [replace(c, patient=replace(c.patient, lymphodepletion_start=(
        c.patient.infusion_date - timedelta(days=(6, 5, 3)[i % 3]))))
        for i, c in enumerate(courses) if i % 2 == 0]
    eps = []
    for i, c in enumerate(courses):
        if i % 3 == 0:
            extra = api.make_course(
                episodes=[("CRS", 1 + i % 3, 2.0, 5.0 + i % 4), ("IEC-HS", None, 12.0, None)],
                events=[("progression", 0.6 * days)] if i % 2 else [("next_therapy", 20.5)])
            eps.append(replace(c, episodes=extra.episodes, events=extra.events))
    return [("synthetic", courses), ("synthetic:lymphodepletion", ld),
            ("synthetic:episodes", eps), ("edge", edge_courses(api))]


def course_lines(api: SimpleNamespace, src: str, courses: Iterable[Any], specs: list[Any],
                 overrides: dict[str, dict[str, float]] | None) -> Iterator[Line]:
    """evaluate_course at each of AS_OF_DAYS and replay_course, for each course."""
    js: Callable[[Any], dict[str, Any]] = api.finding_json
    for course in courses:
        base = {"src": src, "patient": course.patient.patient_id}
        for x in AS_OF_DAYS:  # the rules read only what is known at as_of_day
            for f in api.evaluate_course(replace(course, as_of_day=x), specs=specs,
                                         overrides=overrides):
                yield {**base, "as_of": f"day {x}", "day": None, "rule": f.rule,
                       "finding": js(f)}
        for day, found in api.replay_course(course, specs=specs, overrides=overrides):
            for f in found:
                yield {**base, "as_of": "replay", "day": int(day), "rule": f.rule,
                       "finding": js(f)}


def line_text(line: Line) -> str:
    """A dump line: the key fields, then the finding with sorted keys (canonical text, so
    equal findings are equal lines, and the key is read without parsing the finding)."""
    head = json.dumps({k: line[k] for k in ("src", "patient", "as_of", "day", "rule")})
    return f'{head[:-1]}{FINDING}{json.dumps(line["finding"], sort_keys=True)}}}'


def dump(out: Path, root: Path, rules: list[str] | None, quick: bool) -> int:
    """Write the dump of `root`; returns the number of findings written."""
    started = clock.perf_counter()
    tally = _Tally()
    logging.getLogger().handlers[:] = [tally]
    api = load_api(root)
    specs = list(api.all_specs())
    if rules:
        unknown = sorted(set(rules) - {s.rule.id for s in specs})
        if unknown:
            raise SystemExit(f"unknown rule(s) {unknown} in {root}")
        specs = [s for s in specs if s.rule.id in rules]
    print(f"dump of {root}: {len(specs)} rules, into {out}", file=sys.stderr)
    meta = {"meta": {"format": FORMAT, "quick": quick, "rules": rules or "all",
                     "as_of": [t.isoformat() for t in sample_as_of_times(
                         root / "data" / "sample")]}}
    n = 0
    # no name and no time in the gzip header: equal dumps are equal files
    with out.open("wb") as fh, gzip.GzipFile("", "wb", fileobj=fh, mtime=0) as raw:
        def write(lines: Iterable[Line]) -> int:
            count = 0
            for line in lines:
                raw.write(line_text(line).encode() + b"\n")
                count += 1
            return count

        raw.write(json.dumps(meta).encode() + b"\n")
        n += write(sample_lines(api, root, specs))
        for src, courses in synthetic_sets(api, quick):
            for suffix, overrides in (("", None), ("+site", OVERRIDES)):
                t0 = clock.perf_counter()
                count = write(course_lines(api, src + suffix, courses, specs, overrides))
                _progress(f"{src + suffix} ({len(courses)} courses)", count, t0)
                n += count
    print(f"{n} findings in {clock.perf_counter() - started:.1f} s, "
          f"{out.stat().st_size / 2**20:.1f} MiB; log records: {tally.summary()}",
          file=sys.stderr)
    return n


# ---------------------------------------------------------------- diff
def _key_fields(text: str) -> dict[str, Any]:
    """The line's key fields, read from the text before its finding when line_text wrote
    it (the finding is not parsed), else from the whole line."""
    head, sep, _ = text.partition(FINDING)
    try:
        line = json.loads(head + "}") if sep else {}
    except json.JSONDecodeError:
        line = {}
    return line if {"src", "rule"} <= line.keys() else json.loads(text)


def read_dump(path: Path) -> tuple[dict[str, Any], dict[Key, str], list[Key]]:
    """(meta, key -> its line's text, keys seen more than once)."""
    meta: dict[str, Any] = {}
    found: dict[Key, str] = {}
    dupes: list[Key] = []
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        for text in fh:
            line = _key_fields(text)
            if "meta" in line:
                meta = line["meta"]
                continue
            key = (line["src"], line["patient"], line["as_of"], json.dumps(line["day"]),
                   line["rule"])
            if key in found:
                dupes.append(key)
            found[key] = text
    return meta, found, dupes


def _finding(text: str) -> Any:
    return json.loads(text)["finding"]


def same(a: str, b: str) -> bool:
    """Whether two lines of one key hold the same finding: equal text (dump writes lines
    canonical), else equal canonical JSON of their findings (a line written otherwise)."""
    return a == b or (json.dumps(_finding(a), sort_keys=True)
                      == json.dumps(_finding(b), sort_keys=True))


def field_diff(old: Any, new: Any, path: str = "") -> list[str]:
    """'field: old -> new' for each leaf that differs (JSON text compared, so 1 != 1.0)."""
    if json.dumps(old, sort_keys=True) == json.dumps(new, sort_keys=True):
        return []
    if isinstance(old, dict) and isinstance(new, dict):
        return [d for k in sorted(set(old) | set(new), key=str)
                for d in field_diff(old.get(k, "<absent>"), new.get(k, "<absent>"),
                                    f"{path}.{k}" if path else str(k))]
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        return [d for i, (a, b) in enumerate(zip(old, new, strict=True))
                for d in field_diff(a, b, f"{path}[{i}]")]

    def short(x: Any) -> str:
        text = json.dumps(x, sort_keys=True, ensure_ascii=False)
        return text if len(text) <= 120 else text[:117] + "..."

    if isinstance(old, list) and isinstance(new, list):
        return [f"{path}: {len(old)} items -> {len(new)} items: {short(old)} -> {short(new)}"]
    return [f"{path or '(finding)'}: {short(old)} -> {short(new)}"]


def _examples(keys: list[Key], show: int) -> list[Key]:
    """The first `show` keys, one per source and patient before any second one."""
    seen: set[tuple[str, str]] = set()
    first: list[Key] = []
    for key in keys:
        if key[:2] not in seen and len(first) < show:
            seen.add(key[:2])
            first.append(key)
    chosen = set(first)
    return (first + [k for k in keys[:2 * show] if k not in chosen])[:show]


def diff_dumps(a: Path, b: Path, show: int = 5) -> int:
    """Print how dump `b` differs from dump `a`; 0 when identical, else 1."""
    meta_a, old, dupes_a = read_dump(a)
    meta_b, new, dupes_b = read_dump(b)
    if meta_a != meta_b:
        print(f"WARNING: the dumps were made differently: {meta_a} vs {meta_b}")
    for name, dupes in ((a, dupes_a), (b, dupes_b)):
        if dupes:
            print(f"DIFFERENT: {name} has {len(dupes)} keys twice, e.g. {dupes[0]}")
    common = old.keys() & new.keys()
    only: dict[str, Counter[str]] = {"base": Counter(k[4] for k in old.keys() - common),
                                     "new": Counter(k[4] for k in new.keys() - common)}
    differing: dict[str, list[Key]] = defaultdict(list)
    for key in sorted(common):
        if not same(old[key], new[key]):
            differing[key[4]].append(key)
    print(f"compared {len(common)} findings (base {a}: {len(old)}, new {b}: {len(new)})")
    rules = sorted(set(differing) | set(only["base"]) | set(only["new"]))
    if not rules and not dupes_a and not dupes_b:
        print("identical: every finding of every source, field for field")
        return 0
    print(f"DIFFERENT: {sum(map(len, differing.values()))} findings differ, "
          f"{sum(only['base'].values())} only in base, {sum(only['new'].values())} only in new")
    print(f"{'rule':28s} {'differ':>7s} {'only base':>10s} {'only new':>9s}")
    for rule in rules:
        print(f"{rule:28s} {len(differing[rule]):7d} {only['base'][rule]:10d} "
              f"{only['new'][rule]:9d}")
    for rule in rules:
        by_src = Counter(k[0] for k in differing[rule])
        print(f"\n{rule}:" + (" differs in " if by_src else "")
              + ", ".join(f"{src} {n}" for src, n in sorted(by_src.items())))
        for key in _examples(differing[rule], show):
            src, patient, as_of, day, _ = key
            print(f"  {src} {patient} as_of={as_of} day={day}:")
            for d in field_diff(_finding(old[key]), _finding(new[key])):
                print(f"    {d}")
        for side, keys in (("base", old.keys() - common), ("new", new.keys() - common)):
            missing = sorted(k for k in keys if k[4] == rule)
            for key in missing[:show]:
                print(f"  only in {side}: {' '.join(key[:4])}")
    return 1


# ---------------------------------------------------------------- compare
def _dump_in_subprocess(out: Path, root: Path, rules: str | None, quick: bool,
                        tmp: Path) -> bool:
    cmd = [sys.executable, str(Path(__file__).resolve()), "dump", str(out), "--root", str(root)]
    cmd += (["--rules", rules] if rules else []) + (["--quick"] if quick else [])
    # its temporary files under `tmp`, which compare removes even if the dump is killed
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"TMPDIR": str(tmp)}
    return subprocess.run(cmd, env=env, cwd=root).returncode == 0


def compare(base_rev: str, rules: str | None, quick: bool, keep: Path | None) -> int:
    """Dump `base_rev` (a temporary git worktree) and the working tree, and diff them."""
    tmp = Path(tempfile.mkdtemp(prefix="same-outputs-"))
    tree = tmp / "base"
    out = keep or tmp
    out.mkdir(parents=True, exist_ok=True)
    started = clock.perf_counter()
    status = 2
    # a TERM (e.g. from `timeout`) unwinds like Ctrl-C: the worktree is removed, the dump killed
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        if subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(tree),
                           base_rev]).returncode:
            print(f"could not check out {base_rev!r} into a worktree: see git's error above")
            return status
        # the dumps run with this interpreter (the repository's .venv): no .venv link needed
        for name, root in (("base", tree), ("new", REPO)):
            if not _dump_in_subprocess(out / f"{name}.jsonl.gz", root, rules, quick, tmp):
                print(f"the dump of {root} ({name}) failed: see its error above")
                return status
        status = diff_dumps(out / "base.jsonl.gz", out / "new.jsonl.gz")
    finally:
        if tree.exists():
            done = subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force",
                                   str(tree)])
            if done.returncode:
                log.error("could not remove the worktree %s; remove it with "
                          "`git worktree remove --force %s`", tree, tree)
        shutil.rmtree(tmp, ignore_errors=True)
        print(f"compare {base_rev} took {clock.perf_counter() - started:.1f} s"
              + (f"; dumps kept in {keep}" if keep else ""))
    return status


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    d = sub.add_parser("dump", help="write the findings of a tree to a gzip JSON-lines file")
    d.add_argument("out", type=Path)
    d.add_argument("--root", type=Path, default=REPO, help="the tree to import (default: here)")
    c = sub.add_parser("compare", help="dump a base revision and the working tree; diff them")
    c.add_argument("base_rev")
    c.add_argument("--keep", type=Path, help="keep the two dumps in this directory")
    for q in (d, c):
        q.add_argument("--rules", help="comma-separated rule ids (default: every rule)")
        q.add_argument("--quick", action="store_true", help="fewer synthetic courses")
    f = sub.add_parser("diff", help="diff two dumps")
    f.add_argument("base", type=Path)
    f.add_argument("new", type=Path)
    args = p.parse_args(argv)
    if args.command == "dump":
        rules = args.rules.split(",") if args.rules else None
        dump(args.out, args.root, rules, args.quick)
        return 0
    if args.command == "compare":
        return compare(args.base_rev, args.rules, args.quick, args.keep)
    return diff_dumps(args.base, args.new)


if __name__ == "__main__":
    sys.exit(main())
