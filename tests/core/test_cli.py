"""`python -m core` as a user runs it, on a real SQLite file: in this process
(tests/cli_runner.py), and once as a real process through the `python -m core` entry point."""

import json
import logging
import os
import subprocess
import sys

import pytest

from tests.cli_runner import ROOT, run_cli

cli = run_cli


def test_import_reports_each_problem_on_stderr_and_exits_1(tmp_path):
    """The one real process: `python -m core`'s exit status and stderr as a shell sees them."""
    db = f"sqlite:///{tmp_path / 'c.db'}"
    patients = tmp_path / "patients.csv"
    patients.write_text("patient_id,infusion_date,product\nP1,2026-11-01,axi-cel\n")
    bad = tmp_path / "labs.csv"
    bad.write_text("patient_id,day,analyte,value,unit\nP1,1,ferritin,abc,ng/mL\n"
                   "P2,1,ferritin,5,ng/mL\n")
    assert cli("--db", db, "import", str(patients)).returncode == 0
    run = subprocess.run([sys.executable, "-m", "core", "import", str(bad), "--db", db,
                          "--user", "nurse.kim"], cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 1
    lines = [ln for ln in run.stderr.splitlines() if ln.startswith("labs.csv: row")]
    assert len(lines) == 2
    assert "row 2, column value" in lines[0] and "must be a number" in lines[0]
    assert "row 3, column patient_id" in lines[1] and "No patient" in lines[1]
    dry = cli("import", str(patients), "--db", db, "--dry-run")
    assert dry.returncode == 0 and "already present 1" in dry.stdout


def test_seed_evaluate_and_replay_print_the_design_json(tmp_path):
    db = f"sqlite:///{tmp_path / 's.db'}"
    assert cli("--db", db, "seed-sample").returncode == 0
    run = cli("--db", db, "evaluate", "--json", "--patient", "SYN-004")
    assert run.returncode == 0, run.stderr
    doc = json.loads(run.stdout)
    assert doc["as_of"].endswith("Z")
    (patient,) = doc["patients"]
    assert patient["patient_id"] == "SYN-004" and isinstance(patient["day"], int)
    rules = {f["rule"] for f in patient["findings"]}
    assert {"iec_hs", "crs_grade", "hscore", "icaht_early"} <= rules
    for f in patient["findings"]:
        assert f["status"] in ("met", "not_met", "not_evaluable")
    replay = json.loads(cli("--db", db, "replay", "--json", "--patient", "SYN-004").stdout)
    assert len(replay["patients"][0]["days"]) >= 20


def test_backup_makes_a_consistent_copy(tmp_path):
    db = f"sqlite:///{tmp_path / 'b.db'}"
    patients = tmp_path / "patients.csv"
    patients.write_text("patient_id,infusion_date,product\nP1,2026-11-01,axi-cel\n")
    assert cli("--db", db, "import", str(patients)).returncode == 0
    assert cli("--db", db, "backup", str(tmp_path / "copy.db")).returncode == 0
    import sqlite3

    con = sqlite3.connect(tmp_path / "copy.db")
    assert con.execute("select patient_id from patient").fetchall() == [("P1",)]
    assert con.execute("pragma integrity_check").fetchone() == ("ok",)


def test_create_user_reads_the_password_from_stdin_and_refuses_short_ones(tmp_path):
    db = f"sqlite:///{tmp_path / 'u.db'}"
    assert cli("--db", db, "create-user", "kim", "--role", "nurse",
               stdin="long-enough-secret\n").returncode == 0
    short = cli("--db", db, "create-user", "lee", "--role", "nurse", stdin="short\n")
    assert short.returncode == 1 and "at least" in short.stderr


def test_init_makes_the_first_admin_and_prints_its_password_once(tmp_path):
    from core.access.accounts import active_account
    from core.access.users import check_password
    from core.store.db import make_engine

    db = f"sqlite:///{tmp_path / 'first.db'}"
    first = cli("--db", db, "init")
    assert first.returncode == 0, first.stderr
    (line,) = [ln for ln in first.stdout.splitlines() if "password" in ln.lower()
               and ln.startswith("Admin password (shown once): ")]
    password = line.split(": ", 1)[1]
    assert len(password) >= 16
    engine = make_engine(db)
    admin = active_account(engine, "admin")
    assert admin.role == "admin" and check_password(password, admin.password_hash)
    with engine.connect() as c:
        audit = str(c.exec_driver_sql("SELECT actor, action, after FROM auditlog").all())
    assert "create_user" in audit and password not in audit
    again = cli("--db", db, "init")
    assert again.returncode == 0 and "password" not in again.stdout.lower()
    assert "schema is up to date" in again.stdout


def test_set_password_gives_a_locked_out_admin_a_way_back_in(tmp_path):
    from core.access.accounts import active_account, locked_until, record_sign_in
    from core.access.users import check_password
    from core.store.db import make_engine

    db = f"sqlite:///{tmp_path / 'pw.db'}"
    assert cli("--db", db, "init").returncode == 0
    engine = make_engine(db)
    for _ in range(5):
        record_sign_in(engine, "admin", "login_failed")
    assert locked_until(engine, "admin", 5, 15)
    assert cli("--db", db, "set-password", "nobody", stdin="a long new secret\n").returncode == 1
    short = cli("--db", db, "set-password", "admin", stdin="short\n")
    assert short.returncode == 1 and "at least" in short.stderr
    done = cli("--db", db, "--user", "ops", "set-password", "admin",
               stdin="a long new secret\n")
    assert done.returncode == 0 and "new password set for admin" in done.stdout
    assert check_password("a long new secret", active_account(engine, "admin").password_hash)
    assert locked_until(engine, "admin", 5, 15) is None
    with engine.connect() as c:
        rows = c.exec_driver_sql("SELECT actor, action FROM auditlog "
                                 "WHERE action = 'password_reset'").all()
    assert [tuple(r) for r in rows] == [("ops", "password_reset")]


@pytest.mark.parametrize("args, code, stream, said", [
    pytest.param(["frobnicate"], 2, "stderr", "invalid choice: 'frobnicate'", id="no-command"),
    pytest.param(["import"], 2, "stderr", "the following arguments are required: files",
                 id="missing-argument"),
    pytest.param(["--help"], 0, "stdout", "usage: python -m core", id="help"),
])
def test_argument_errors_exit_as_the_process_would(args, code, stream, said):
    run = cli(*args)
    assert run.returncode == code and said in getattr(run, stream)


def test_an_in_process_run_leaves_logging_and_the_environment_as_they_were(tmp_path):
    """A service's logging.basicConfig writes to the run's stderr and is undone after."""
    db = f"sqlite:///{tmp_path / 'm.db'}"
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    before = dict(os.environ)
    for _ in range(2):
        run = cli("--db", db, "monitor", "--once",
                  env={"CARTWATCH_WARD_TZ": "Europe/Berlin", "CARTWATCH_SITE_SECRET": None})
        assert run.returncode == 0, run.stderr
        assert "monitor cycle done" in run.stdout
        assert (root.handlers, root.level) == (handlers, level)
        assert dict(os.environ) == before
