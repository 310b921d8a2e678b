"""Blind image-quality studies: database, API validation, crash safety, a real browser, the report."""
from __future__ import annotations

import csv
import http.client
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import natural_image, require
from PIL import Image

from revamp.cli import main
from revamp.study import db
from revamp.study.report import krippendorff_alpha_interval, study_summary
from revamp.study.server import make_server


def _folders(root: Path, n: int = 3, with_reference: bool = True) -> dict:
    dirs = {k: root / k for k in ("inputs", "A", "B", "ref")}
    for d in dirs.values():
        d.mkdir(parents=True)
    for i in range(n):
        img = natural_image(48, 64, seed=i)
        for k, d in dirs.items():
            Image.fromarray(img if k != "B" else img // 2).save(d / f"pic{i}.png")
    return dirs


@pytest.fixture
def study_db(tmp_path):
    dirs = _folders(tmp_path)
    path = tmp_path / "study.sqlite"
    conn = db.connect(path)
    db.create_study(conn, "s1", dirs["inputs"], {"A": dirs["A"], "B": dirs["B"]}, dirs["ref"])
    conn.close()
    return path


@pytest.fixture
def server(study_db):
    srv = make_server(study_db, port=0, admin_password="secret")
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}", study_db
    srv.shutdown()
    srv.server_close()


def call(base, path, body=None, token=None, method=None, headers=None, raw: bytes | None = None):
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(base + path, data=data, method=method or ("POST" if data is not None else "GET"))
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("X-Rater-Token", token)
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=10) as res:
            payload = res.read()
            return res.status, json.loads(payload) if res.headers.get_content_type() == "application/json" else payload
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")


def _vote_all(base, token, score=4):
    while True:
        status, item = call(base, "/api/next", token=token)
        assert status == 200
        if item["finished"]:
            return item
        status, res = call(base, "/api/vote", {"item": item["item"], "scores": {str(s["id"]): score for s in item["stimuli"]}}, token)
        assert status == 200, res


def test_a_full_session_through_the_api(server):
    base, path = server
    status, joined = call(base, "/api/join", {"study": "s1", "name": "ann"})
    assert status == 201
    token = joined["token"]
    status, item = call(base, "/api/next", token=token)
    assert item["progress"] == {"done": 0, "total": 3} and len(item["stimuli"]) == 2 and item["reference"]
    assert {s["label"] for s in item["stimuli"]} == {"Image A", "Image B"}  # neutral labels, no method names
    assert "A" not in json.dumps(item).replace("Image A", "")  # the method label appears nowhere
    status, image = call(base, item["stimuli"][0]["url"] + f"?token={token}")
    assert status == 200 and image[:8] == b"\x89PNG\r\n\x1a\n"
    scores = {str(s["id"]): 5 for s in item["stimuli"]}
    assert call(base, "/api/vote", {"item": item["item"], "scores": scores}, token)[1]["stored"] == 2
    # A double submission (a second click, a retry) is stored once.
    assert call(base, "/api/vote", {"item": item["item"], "scores": scores}, token)[1]["stored"] == 0
    done = _vote_all(base, token)
    assert done["finished"] and done["progress"] == {"done": 3, "total": 3}
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT COUNT(*) FROM votes").fetchone()[0] == 6
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_each_rater_gets_their_own_order_and_cannot_touch_others_votes(server):
    base, path = server
    tokens = [call(base, "/api/join", {"study": "s1", "name": f"r{i}"})[1]["token"] for i in range(6)]
    firsts = {call(base, "/api/next", token=t)[1]["item"] for t in tokens}
    assert len(firsts) > 1  # random order per rater
    _vote_all(base, tokens[0], score=1)
    _vote_all(base, tokens[1], score=5)
    conn = sqlite3.connect(path)
    per_rater = dict(conn.execute("SELECT r.name, AVG(v.score) FROM votes v JOIN raters r ON r.id = v.rater_id GROUP BY r.name"))
    assert per_rater == {"r0": 1, "r1": 5}


@pytest.mark.parametrize("case,expected", [
    ("no-token", 401), ("bad-token", 401), ("unknown-item", 404), ("foreign-stimulus", 400), ("score-high", 400),
    ("score-bool", 400), ("score-float", 400), ("missing-score", 400), ("bad-json", 400), ("json-list", 400),
    ("oversized", 413), ("no-length", 411), ("unknown-path", 404), ("traversal", 404), ("encoded-traversal", 404),
    ("wrong-method", 405), ("name-taken", 409), ("empty-name", 400), ("unknown-study", 404), ("image-unknown", 404),
    ("image-no-token", 401), ("results-no-password", 403), ("results-wrong-password", 403),
])
def test_bad_requests_get_4xx_never_500(server, case, expected):
    base, _ = server
    token = call(base, "/api/join", {"study": "s1", "name": "ann"})[1]["token"]
    item = call(base, "/api/next", token=token)[1]
    ids = [s["id"] for s in item["stimuli"]]
    other = call(base, "/api/next", token=call(base, "/api/join", {"study": "s1", "name": "zed"})[1]["token"])[1]
    foreign = next(s for s in range(1, 7) if s not in ids)
    vote = lambda scores, item_id=item["item"]: call(base, "/api/vote", {"item": item_id, "scores": scores}, token)  # noqa: E731
    status, body = {
        "no-token": lambda: call(base, "/api/next"),
        "bad-token": lambda: call(base, "/api/next", token="nope"),
        "unknown-item": lambda: vote({str(ids[0]): 3}, item_id=999),
        "foreign-stimulus": lambda: vote({str(ids[0]): 3, str(foreign): 3}),
        "score-high": lambda: vote({str(i): 6 for i in ids}),
        "score-bool": lambda: vote({str(i): True for i in ids}),
        "score-float": lambda: vote({str(i): 3.5 for i in ids}),
        "missing-score": lambda: vote({str(ids[0]): 3}),
        "bad-json": lambda: call(base, "/api/vote", raw=b"{not json", token=token),
        "json-list": lambda: call(base, "/api/vote", raw=b"[1, 2]", token=token),
        "oversized": lambda: call(base, "/api/vote", raw=b"x" * 20000, token=token),
        "no-length": lambda: _raw_http(base, b"POST /api/vote HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Rater-Token: " + token.encode() + b"\r\n\r\n"),
        "unknown-path": lambda: call(base, "/api/nothing"),
        "traversal": lambda: _raw_http(base, b"GET /../../etc/passwd HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"),
        "encoded-traversal": lambda: call(base, f"/api/image/..%2F..%2Fetc%2Fpasswd?token={token}"),
        "wrong-method": lambda: call(base, "/api/vote", token=token, method="GET"),
        "name-taken": lambda: call(base, "/api/join", {"study": "s1", "name": "ann"}),
        "empty-name": lambda: call(base, "/api/join", {"study": "s1", "name": "  "}),
        "unknown-study": lambda: call(base, "/api/join", {"study": "nope", "name": "bob"}),
        "image-unknown": lambda: call(base, f"/api/image/99999?token={token}"),
        "image-no-token": lambda: call(base, f"/api/image/{other['stimuli'][0]['id']}"),
        "results-no-password": lambda: call(base, "/api/results"),
        "results-wrong-password": lambda: call(base, "/api/results", headers={"X-Admin-Password": "guess"}),
    }[case]()
    assert status == expected, (status, body)
    assert isinstance(body, dict) and body.get("error")


def _raw_http(base: str, request: bytes, shutdown: bool = False):
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as s:
        s.sendall(request)
        if shutdown:
            s.shutdown(socket.SHUT_WR)  # the client sends no more
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                raise ConnectionError("the server closed the connection without an answer")
            data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        length = int(next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")))
        while len(rest) < length:
            rest += s.recv(4096)
    return int(head.split()[1]), json.loads(rest[:length])


@pytest.mark.parametrize("case,expected", [
    ("nested-json", 400), ("huge-id", 400), ("superscript-length", 411), ("form-content-type", 415), ("other-origin", 403),
    ("rebinding-host", 421), ("short-body", 400),
])
def test_hostile_requests_get_one_line_4xx(server, case, expected):
    base, _ = server
    token = call(base, "/api/join", {"study": "s1", "name": "ann"})[1]["token"]
    item = call(base, "/api/next", token=token)[1]
    scores = {str(s["id"]): 3 for s in item["stimuli"]}
    status, body = {
        "nested-json": lambda: call(base, "/api/vote", raw=b"[" * 8000 + b"]" * 8000, token=token),
        "huge-id": lambda: call(base, "/api/vote", {"item": 2**70, "scores": scores}, token),
        "superscript-length": lambda: _raw_http(base, "POST /api/join HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                                                      "Content-Length: \u00b2\r\n\r\n{}".encode("latin-1")),  # '²', which str.isdigit accepts
        "form-content-type": lambda: call(base, "/api/join", {"study": "s1", "name": "eve"},
                                          headers={"Content-Type": "application/x-www-form-urlencoded"}),
        "other-origin": lambda: call(base, "/api/join", {"study": "s1", "name": "eve"}, headers={"Origin": "http://evil.example"}),
        "rebinding-host": lambda: _raw_http(base, b"GET /api/studies HTTP/1.1\r\nHost: evil.example:8000\r\n\r\n"),
        "short-body": lambda: _raw_http(base, b"POST /api/join HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                                              b"Content-Length: 40\r\nConnection: close\r\n\r\n{}", shutdown=True),
    }[case]()
    assert status == expected, (status, body)
    assert isinstance(body, dict) and body.get("error")
    assert call(base, "/api/studies")[0] == 200  # and the server still answers


def test_a_stalled_client_does_not_freeze_the_others(server):
    """A client that sends half a request and waits holds no lock: others are answered at once."""
    base, _ = server
    host, port = base.removeprefix("http://").split(":")
    stalled = [socket.create_connection((host, int(port))) for _ in range(3)]
    for s in stalled:
        s.sendall(b"POST /api/join HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{")
    try:
        for _ in range(5):
            t0 = time.monotonic()
            status, _ = call(base, "/api/studies")
            assert status == 200 and time.monotonic() - t0 < 1.0
    finally:
        for s in stalled:
            s.close()


def test_200_concurrent_requests_are_all_answered(server):
    base, _ = server
    from concurrent.futures import ThreadPoolExecutor

    def get(_):
        try:
            return call(base, "/api/studies")[0]
        except OSError as exc:  # a connection reset or refused
            return repr(exc)

    with ThreadPoolExecutor(200) as pool:
        results = list(pool.map(get, range(200)))
    assert results == [200] * 200, [r for r in results if r != 200][:5]


def test_votes_csv_keeps_formulas_as_text(server, tmp_path):
    base, path = server
    token = call(base, "/api/join", {"study": "s1", "name": '=HYPERLINK("http://x","y")'})[1]["token"]
    _vote_all(base, token)
    from revamp.study.report import write_report

    conn = db.connect(path)
    write_report(conn, "s1", tmp_path / "rep")
    rows = list(csv.reader(open(tmp_path / "rep" / "votes.csv")))
    assert rows[1][0] == '\'=HYPERLINK("http://x","y")'


def test_results_with_the_admin_password(server):
    base, _ = server
    _vote_all(base, call(base, "/api/join", {"study": "s1", "name": "ann"})[1]["token"])
    status, body = call(base, "/api/results", headers={"X-Admin-Password": "secret"})
    assert status == 200 and body["studies"][0]["votes"] == 6


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(db_path: Path, port: int) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "revamp.cli", "study", "serve", "--db", str(db_path), "--port", str(port)],
                            stderr=subprocess.PIPE, text=True)
    assert "study server on" in proc.stderr.readline()
    return proc


def test_killing_the_server_mid_study_loses_no_committed_vote(tmp_path):
    dirs = _folders(tmp_path, n=40)
    path = tmp_path / "study.sqlite"
    db.create_study(db.connect(path), "big", dirs["inputs"], {"A": dirs["A"], "B": dirs["B"]})
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    proc = _start(path, port)
    token = call(base, "/api/join", {"study": "big", "name": "ann"})[1]["token"]
    acknowledged, stop = [], threading.Event()

    def rate():  # votes as fast as it can until the server dies under it
        while not stop.is_set():
            try:
                item = call(base, "/api/next", token=token)[1]
                if item.get("finished"):
                    return
                status, _ = call(base, "/api/vote", {"item": item["item"], "scores": {str(s["id"]): 3 for s in item["stimuli"]}}, token)
                if status == 200:
                    acknowledged.append(item["item"])
            except (OSError, http.client.HTTPException):  # refused, reset, or killed mid-response (IncompleteRead)
                return

    worker = threading.Thread(target=rate)
    worker.start()
    deadline = time.time() + 60
    while len(acknowledged) < 10 and time.time() < deadline:  # kill while votes are streaming in
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    stop.set()
    worker.join()
    assert 0 < len(acknowledged) < 40, "the kill must land mid-study"
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    stored = {r[0] for r in conn.execute("SELECT DISTINCT s.item_id FROM votes v JOIN stimuli s ON s.id = v.stimulus_id")}
    assert set(acknowledged) <= stored
    # Each image's votes are all there or not at all (one transaction per image).
    counts = [r[0] for r in conn.execute("SELECT COUNT(*) FROM votes v JOIN stimuli s ON s.id = v.stimulus_id GROUP BY s.item_id")]
    assert set(counts) == {2}
    conn.close()
    # The rater comes back to a restarted server and finishes.
    proc = _start(path, port)
    try:
        done = _vote_all(base, token)
        assert done["progress"] == {"done": 40, "total": 40}
    finally:
        proc.terminate()
        proc.wait()


def test_krippendorff_alpha_matches_the_published_example():
    """Krippendorff (2011), 'Computing Krippendorff's alpha-reliability', 4 coders x 12 units: interval alpha 0.849."""
    n = None
    coders = [[1, 2, 3, 3, 2, 1, 4, 1, 2, n, n, n], [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, n, 3],
              [n, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, n], [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, n]]
    units = {u: [c[u] for c in coders if c[u] is not None] for u in range(12)}
    assert krippendorff_alpha_interval(units) == pytest.approx(0.849, abs=5e-4)


def test_report_files_and_numbers(server, tmp_path):
    base, path = server
    for name, score in [("ann", 4), ("bob", 5), ("cy", 3)]:
        _vote_all(base, call(base, "/api/join", {"study": "s1", "name": name})[1]["token"], score)
    out = tmp_path / "report"
    assert main(["study", "report", "s1", "--db", str(path), "-o", str(out)]) == 0
    s = study_summary(db.connect(path), "s1")
    assert s["per_method"]["A"]["mos"] == pytest.approx(4.0) and s["per_method"]["A"]["votes"] == 9
    assert s["per_method"]["A"]["ci95"] == pytest.approx(2.306 * 0.8660 / 3, abs=1e-3)  # t(0.975, 8) * sd / sqrt(9)
    assert s["krippendorff_alpha_interval"] < 0  # raters disagree by design: no agreement beyond chance
    for f in ("mos.png", "mos.svg", "votes.csv", "mos.csv", "summary.json", "summary.md"):
        assert (out / f).stat().st_size > 100, f
    assert (out / "mos.svg").read_text().lstrip().startswith("<?xml")


def _browser():
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    require(bool(chromium and driver), "Debian's chromium and chromium-driver (the browser test)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000"):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service(executable_path=driver), options=options)


def test_a_rater_completes_the_study_in_a_real_browser(server, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    base, path = server
    browser = _browser()
    try:
        wait = WebDriverWait(browser, 20)
        browser.get(base + "/")
        wait.until(ec.visibility_of_element_located((By.ID, "name"))).send_keys("browser rater")
        browser.find_element(By.ID, "start").click()
        for n in range(3):
            wait.until(lambda b: b.find_element(By.ID, "progress").text.startswith(f"{n} / 3"))
            wait.until(ec.visibility_of_element_located((By.ID, "panels")))
            panels = browser.find_elements(By.CSS_SELECTOR, ".panel")
            assert [p.find_element(By.TAG_NAME, "h2").text for p in panels] == ["Reference", "Image A", "Image B"]
            wait.until(lambda b: all(i.get_property("naturalWidth") == 64 for i in b.find_elements(By.CSS_SELECTOR, ".view img")))
            if n == 0:  # zoom on one picture: every picture follows
                browser.execute_script("document.querySelector('.view').dispatchEvent(new WheelEvent('wheel', {deltaY: -100, clientX: 10, clientY: 10, bubbles: true, cancelable: true}))")
                transforms = {i.get_attribute("style") for i in browser.find_elements(By.CSS_SELECTOR, ".view img")}
                assert len(transforms) == 1 and "scale(1.25)" in transforms.pop()
            submit = browser.find_element(By.ID, "submit")
            assert not submit.is_enabled()
            for row in browser.find_elements(By.CSS_SELECTOR, ".scores"):
                row.find_elements(By.TAG_NAME, "button")[n + 2].click()  # scores 3, 4, 5
            assert submit.is_enabled()
            submit.click()
        wait.until(ec.visibility_of_element_located((By.ID, "done")))
        assert "browser rater" in browser.find_element(By.ID, "done").text
        # Reloading the page resumes the same rater (token kept by the browser): still done.
        browser.refresh()
        wait.until(ec.visibility_of_element_located((By.ID, "done")))
    finally:
        browser.quit()
    conn = sqlite3.connect(path)
    scores = sorted(r[0] for r in conn.execute("SELECT score FROM votes"))
    assert scores == [3, 3, 4, 4, 5, 5]
    out = tmp_path / "report"
    assert main(["study", "report", "s1", "--db", str(path), "-o", str(out)]) == 0
    assert (out / "mos.png").stat().st_size > 5000


def test_create_errors_are_one_line(tmp_path, capsys):
    dirs = _folders(tmp_path, n=2)
    (dirs["B"] / "pic1.png").unlink()
    code = main(["study", "create", "--name", "x", "--images", str(dirs["inputs"]), "--method", f"A={dirs['A']}",
                 "--method", f"B={dirs['B']}", "--db", str(tmp_path / "s.sqlite")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and "method B: no output" in err[0]
    assert os.path.exists(tmp_path / "s.sqlite")
    assert db.connect(tmp_path / "s.sqlite").execute("SELECT COUNT(*) FROM studies").fetchone()[0] == 0


def test_create_with_models_restores_the_images_first(tmp_path):
    dirs = _folders(tmp_path, n=2)
    dbp = tmp_path / "s.sqlite"
    assert main(["study", "create", "--name", "m", "--images", str(dirs["inputs"]), "--model", "default", "--method", f"B={dirs['B']}",
                 "--db", str(dbp)]) == 0
    conn = db.connect(dbp)
    assert [r[0] for r in conn.execute("SELECT label FROM methods ORDER BY id")] == ["B", "default"]
    paths = [Path(r[0]) for r in conn.execute("SELECT path FROM stimuli")]
    assert len(paths) == 4 and all(p.is_file() for p in paths)
    assert (tmp_path / "m-outputs" / "default" / "pic0.png").is_file()
