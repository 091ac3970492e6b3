"""Read-only web page over the fleet archive, driven by a real headless browser (SR-SVC-6).

The archive is built the way ``test_fleet_archive.py`` builds it (the real firmware EventLog
and AlarmManager, ``.plog`` files as a pull leaves them, ``archive.import_plog``): a pump
with an active alarm and a therapy, a pump whose archive has a gap, a healthy pump and one
whose serial is markup.  The Flask app runs on a free loopback port in a thread (werkzeug
``make_server``) and Debian's chromium is driven through its chromedriver (Selenium, no
driver download: the network is closed).
"""
import os
import shutil
import tempfile
import threading
import urllib.error
import urllib.request

import pytest
from click.testing import CliRunner

from firmware import alarms as al
from firmware import events
from host_tools.fleet import archive
from host_tools.pumpctl.cli import main
from tests.pg_server import pg_server  # noqa: F401  (session fixture: a private server)
from tests.test_fleet_archive import alarm_pump, plog, pump_log

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
HOSTILE = "<script>alert(1)</script>&\"'"


def _therapy(log, rate_ul_per_h=10000, vtbi_ul=50000):
    log.append(events.THERAPY_PROGRAMMED, rate_ul_per_h, vtbi_ul)
    log.append(events.THERAPY_STARTED, 0)
    for i in range(1, 6):
        log.append(events.RATE_CHANGED, i)
    log.append(events.THERAPY_PAUSED, 1500)
    log.append(events.THERAPY_RESUMED, 1500)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def fleet_db(request, tmp_path_factory):
    """The archive the page shows, on SQLite (a file path) and on PostgreSQL (a URL on the
    suite's own server, ``tests/pg_server.py``): every test that uses it runs on both, the
    browser session shared."""
    tmp = tmp_path_factory.mktemp("fleet-web")
    if request.param == "sqlite":
        db = str(tmp / "fleet.sqlite")
    else:
        db = request.getfixturevalue("pg_server").new_database("fleetweb")
    log, mgr = alarm_pump()                   # BATTERY LOW active, occlusion cleared
    _therapy(log)
    assert list(mgr.active) == [al.BATTERY_LOW]
    archive.import_plog(db, plog(tmp, "alarm.plog", log.read(1, 1000)), "SN-ZZ-ALARM")
    raws = pump_log(300).read(1, 1000)        # records 101..130 cut out of the pull
    archive.import_plog(db, plog(tmp, "gap.plog", raws[:100] + raws[130:]), "SN-MM-GAP")
    ok = pump_log(40)
    _therapy(ok)
    archive.import_plog(db, plog(tmp, "ok.plog", ok.read(1, 1000)), "SN-AA-OK", model="AP-1")
    archive.import_plog(db, plog(tmp, "x.plog", pump_log(5).read(1, 10)), HOSTILE)
    yield db
    from host_tools.fleet import db as fdb
    fdb.dispose_all()             # the pooled connections of this archive's engine


@pytest.fixture(scope="module")
def server(fleet_db):
    from werkzeug.serving import make_server

    from host_tools.fleet.web import create_app
    srv = make_server("127.0.0.1", 0, create_app(fleet_db), threaded=True)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield "http://127.0.0.1:%d" % srv.server_port
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join(10)


@pytest.fixture(scope="module")
def browser():
    for path in (CHROMIUM, CHROMEDRIVER):
        if not os.path.exists(path):
            pytest.skip("%s is missing: install Debian's chromium and chromium-driver "
                        "(`make toolchain`) to run the browser test" % path)
    from selenium import webdriver
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    profile = tempfile.mkdtemp(prefix="fleet-web-chromium-")
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync",
                 "--user-data-dir=" + profile):
        opts.add_argument(flag)
    try:
        drv = webdriver.Chrome(service=webdriver.ChromeService(executable_path=CHROMEDRIVER),
                               options=opts)
    except BaseException:
        shutil.rmtree(profile, ignore_errors=True)
        raise
    drv.set_page_load_timeout(60)
    try:
        yield drv
    finally:
        drv.quit()
        shutil.rmtree(profile, ignore_errors=True)


def _rows(drv):
    from selenium.webdriver.common.by import By
    return drv.find_elements(By.CSS_SELECTOR, "#pumps tr.pump")


def _status(url, method="GET", headers=None):
    req = urllib.request.Request(url, method=method, data=b"x=1" if method != "GET" else None,
                                 headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            body = resp.read()
            return resp.status, resp.headers, body if body[:4] == b"\x89PNG" else body.decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read().decode()


def test_pumps_with_alarms_then_gaps_are_listed_first_and_flagged_SR_SVC_6(server, browser):
    from selenium.webdriver.common.by import By
    browser.get(server + "/")
    rows = _rows(browser)
    serials = [r.get_attribute("data-serial") for r in rows]
    assert serials == ["SN-ZZ-ALARM", "SN-MM-GAP", HOSTILE, "SN-AA-OK"], serials
    first = rows[0]
    assert "alarm" in first.get_attribute("class").split()
    assert first.find_element(By.CSS_SELECTOR, ".flag.alarm").text == "ALARM"
    assert first.find_element(By.CSS_SELECTOR, ".alarms").text == "BATTERY LOW (%s)" % (
        al.PRIORITY_NAMES[al.priority(al.BATTERY_LOW)])
    assert "OCCLUSION" not in first.text              # raised, then cleared
    gap = rows[1]
    assert gap.find_element(By.CSS_SELECTOR, ".flag.gap").text == "GAP"
    assert "101..130" in gap.find_element(By.CSS_SELECTOR, ".gaps").text
    assert "gap" in gap.get_attribute("class").split()
    ok = rows[3]
    assert ok.find_elements(By.CSS_SELECTOR, ".flag.alarm, .flag.gap") == []
    assert ok.find_element(By.CSS_SELECTOR, ".flag.ok").text == "OK"
    assert "1 with active alarms, 1 with gaps or conflicts" in browser.find_element(
        By.ID, "summary").text
    # the markup serial is shown as text: nothing injected
    assert HOSTILE in rows[2].find_element(By.CSS_SELECTOR, ".serial").text
    assert rows[2].find_element(By.CSS_SELECTOR, ".flag.ok").text == "OK"
    assert browser.find_elements(By.TAG_NAME, "script") == []


def test_clicking_a_pump_opens_its_timeline_and_the_plot_loads_SR_SVC_6(server, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait
    browser.get(server + "/")
    _rows(browser)[0].find_element(By.LINK_TEXT, "SN-ZZ-ALARM").click()
    WebDriverWait(browser, 30).until(ec.presence_of_element_located((By.ID, "serial")))
    assert browser.current_url == server + "/pump/SN-ZZ-ALARM"
    assert browser.find_element(By.ID, "serial").text == "SN-ZZ-ALARM"
    assert "BATTERY LOW" in browser.find_element(By.ID, "alarms").text
    img = browser.find_element(By.ID, "timeline")
    WebDriverWait(browser, 60).until(
        lambda d: d.execute_script("return arguments[0].complete", img))
    width = browser.execute_script("return arguments[0].naturalWidth", img)
    assert width > 0, "the timeline plot did not load"
    events_text = browser.find_element(By.ID, "events").text
    assert "ALARM_RAISED" in events_text and "OCCLUSION DOWNSTREAM" in events_text
    assert "10.0 mL/h, VTBI 50.0 mL" in events_text
    # newest first
    seqs = [int(r.find_elements(By.TAG_NAME, "td")[0].text)
            for r in browser.find_elements(By.CSS_SELECTOR, "#events tr")[1:]]
    assert seqs == sorted(seqs, reverse=True) and seqs
    status, headers, png = _status(server + "/pump/SN-ZZ-ALARM/timeline.png")
    assert status == 200 and headers["Content-Type"] == "image/png"
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10000
    # the gap pump's page names its gap; the markup pump's page stays text
    browser.get(server + "/pump/SN-MM-GAP")
    assert browser.find_element(By.ID, "gaps").text == "101..130"
    browser.get(server + "/")
    _rows(browser)[2].find_element(By.CSS_SELECTOR, ".serial a").click()
    WebDriverWait(browser, 30).until(ec.presence_of_element_located((By.ID, "serial")))
    assert browser.find_element(By.ID, "serial").text == HOSTILE
    assert browser.find_elements(By.TAG_NAME, "script") == []
    img = browser.find_element(By.ID, "timeline")
    WebDriverWait(browser, 60).until(
        lambda d: d.execute_script("return arguments[0].complete", img))
    assert browser.execute_script("return arguments[0].naturalWidth", img) > 0


def test_unknown_serial_is_a_404_page_naming_it_SR_SVC_6(server, browser):
    from selenium.webdriver.common.by import By
    browser.get(server + "/pump/NO-SUCH-PUMP")
    assert browser.find_element(By.TAG_NAME, "h1").text == "404 Not Found"
    assert browser.find_element(By.ID, "message").text == \
        "pump NO-SUCH-PUMP is not in the fleet archive"
    status, _, body = _status(server + "/pump/NO-SUCH-PUMP")
    assert status == 404 and "pump NO-SUCH-PUMP is not in the fleet archive" in body
    status, _, _ = _status(server + "/pump/NO-SUCH-PUMP/timeline.png")
    assert status == 404


def test_the_page_only_reads_every_write_method_is_refused_SR_SVC_6(server, fleet_db):
    before = archive.fleet_summary(fleet_db)
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        for path in ("/", "/pump/SN-ZZ-ALARM", "/pump/NO-SUCH-PUMP", "/anything"):
            status, headers, body = _status(server + path, method)
            assert status == 405, (method, path, status)
            assert headers["Allow"] == "GET, HEAD"
            assert "%s refused" % method in body
    status, headers, _ = _status(server + "/")
    assert status == 200 and "default-src 'none'" in headers["Content-Security-Policy"]
    assert archive.fleet_summary(fleet_db) == before


def test_fleet_serve_refuses_a_missing_archive_without_creating_it_SR_SVC_6(tmp_path):
    missing = tmp_path / "none.sqlite"
    res = CliRunner().invoke(main, ["fleet", "serve", "--db", str(missing), "--port", "0"])
    assert res.exit_code == 1 and "no fleet archive" in res.output
    assert not missing.exists()
    res = CliRunner().invoke(main, ["fleet", "serve", "--help"])
    assert res.exit_code == 0 and "127.0.0.1" in res.output


def test_plot_covers_the_archive_or_the_last_records_when_cut_SR_SVC_6(fleet_db):
    from host_tools.fleet import db as fdb
    from host_tools.fleet.web import PLOT_TYPES, plot_records_of
    engine = fdb.open_archive(fleet_db, create=False)
    recs = plot_records_of(engine, "SN-ZZ-ALARM")
    seqs = [r["seq"] for r in recs]
    assert seqs[0] == 1 and seqs[-1] == 35 and seqs == sorted(set(seqs))
    assert all(r["type"] in PLOT_TYPES for r in recs[:-1])
    assert {"seq", "type", "type_name", "rtc_s", "mono_ms", "a", "b", "link"} <= set(recs[0])
    cut = plot_records_of(engine, "SN-ZZ-ALARM", limit=3)
    assert [r["type_name"] for r in cut] == ["THERAPY_STARTED", "THERAPY_PAUSED",
                                             "THERAPY_RESUMED"]
    assert plot_records_of(engine, "NO-SUCH-PUMP") == []


def test_fleet_serve_command_listens_on_loopback_and_answers_SR_SVC_6(fleet_db):
    import re
    import select
    import subprocess
    import sys
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.Popen([sys.executable, "-m", "host_tools.pumpctl.cli", "fleet", "serve",
                             "--db", fleet_db, "--port", "0"], cwd=repo,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # the first line names the URL; a command that never prints must not hang the suite
        ready, _, _ = select.select([proc.stdout], [], [], 60)
        line = proc.stdout.readline() if ready else ""
        m = re.search(r"read-only on (http://127\.0\.0\.1:\d+/)", line)
        assert m, (line, proc.stderr.read() if proc.poll() is not None else "")
        status, _, body = _status(m.group(1))
        assert status == 200 and "SN-ZZ-ALARM" in body and "ALARM" in body
        assert _status(m.group(1), "POST")[0] == 405
        # DNS rebinding: a page served on loopback answers loopback names only
        port = m.group(1).rsplit(":", 1)[1].rstrip("/")
        assert _status(m.group(1), headers={"Host": "localhost:" + port})[0] == 200
        status, _, body = _status(m.group(1), headers={"Host": "attacker.example:" + port})
        assert status == 400 and "host attacker.example is not served here" in body
        assert "SN-ZZ-ALARM" not in body
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
