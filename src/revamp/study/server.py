"""`revamp study serve`: the rating web page and its JSON API (standard library HTTP server).

Raters join with a name and get a secret token (kept by their browser), then see the images of
a study one at a time in their own random order, every method's version side by side under
neutral labels in a per-rater random order, and score each. Every request is validated: bad
input gets a 4xx answer with a one-line JSON error. Bodies are read before the app's lock is
taken and sockets time out, so a slow client holds up no one; requests for another host name
(DNS rebinding), from another site's page (Origin) or with a non-JSON body (a CSRF form) are
refused. Images are served by database
id only, from the paths recorded when the study was created, so no URL can reach another file.
"""
from __future__ import annotations

import hmac
import ipaddress
import json
import mimetypes
import random
import re
import socket
import sqlite3
import sys
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from urllib.parse import parse_qs, urlparse

from revamp.study import db

MAX_BODY = 16 * 1024
TIMEOUT_S = 10  # a client that stalls mid-request is dropped after this long (it never holds the lock)
BACKLOG = 256  # connections the kernel queues while every thread is busy
LOCAL_NAMES = {"localhost", "127.0.0.1", "::1"}
API_PATHS = {"/api/studies", "/api/join", "/api/next", "/api/vote", "/api/results"}
STATIC = {"/": ("page.html", "text/html; charset=utf-8"), "/app.js": ("app.js", "text/javascript; charset=utf-8"),
          "/app.css": ("app.css", "text/css; charset=utf-8")}


class ApiError(Exception):
    def __init__(self, status: HTTPStatus, message: str):
        super().__init__(message)
        self.status = status


def _static(name: str) -> bytes:
    return (resources.files("revamp.study") / "static" / name).read_bytes()


class StudyApp:
    """The API's logic over one database connection (requests are serialised by a lock)."""

    def __init__(self, db_path: Path, admin_password: str | None = None):
        self.conn = db.connect(db_path)
        self.lock = threading.Lock()
        self.admin_password = admin_password

    # --- helpers -----------------------------------------------------------

    def rater(self, token: str | None) -> sqlite3.Row:
        if not token:
            raise ApiError(HTTPStatus.UNAUTHORIZED, "missing rater token")
        row = self.conn.execute("SELECT * FROM raters WHERE token = ?", (token,)).fetchone()
        if row is None:
            raise ApiError(HTTPStatus.UNAUTHORIZED, "unknown rater token")
        return row

    def _items(self, rater: sqlite3.Row) -> list[int]:
        ids = [r["id"] for r in self.conn.execute("SELECT id FROM items WHERE study_id = ? ORDER BY id", (rater["study_id"],))]
        random.Random(f"items-{rater['id']}").shuffle(ids)
        return ids

    def _progress(self, rater: sqlite3.Row) -> dict:
        total = self.conn.execute("SELECT COUNT(*) FROM items WHERE study_id = ?", (rater["study_id"],)).fetchone()[0]
        done = self.conn.execute("""SELECT COUNT(DISTINCT s.item_id) FROM votes v JOIN stimuli s ON s.id = v.stimulus_id
                                    WHERE v.rater_id = ?""", (rater["id"],)).fetchone()[0]
        return {"done": done, "total": total}

    # --- endpoints ---------------------------------------------------------

    def studies(self) -> dict:
        rows = self.conn.execute("SELECT name, score_min, score_max FROM studies ORDER BY id").fetchall()
        return {"studies": [dict(r) for r in rows]}

    def join(self, body: dict) -> dict:
        study, name = body.get("study"), body.get("name")
        if not isinstance(study, str) or not isinstance(name, str) or not name.strip() or len(name) > 100:
            raise ApiError(HTTPStatus.BAD_REQUEST, "send {\"study\": NAME, \"name\": YOUR NAME} (a name of 1 to 100 characters)")
        try:
            sid = db.study_id(self.conn, study)
        except db.StudyError as exc:
            raise ApiError(HTTPStatus.NOT_FOUND, str(exc)) from None
        try:
            token = db.add_rater(self.conn, sid, name.strip())
        except sqlite3.IntegrityError:
            raise ApiError(HTTPStatus.CONFLICT, "that name is taken in this study: pick another, or continue in the browser you started with") from None
        return {"token": token}

    def next_item(self, token: str | None) -> dict:
        rater = self.rater(token)
        study = self.conn.execute("SELECT * FROM studies WHERE id = ?", (rater["study_id"],)).fetchone()
        voted = {r[0] for r in self.conn.execute("""SELECT DISTINCT s.item_id FROM votes v JOIN stimuli s ON s.id = v.stimulus_id
                                                    WHERE v.rater_id = ?""", (rater["id"],))}
        progress = self._progress(rater)
        pending = [i for i in self._items(rater) if i not in voted]
        if not pending:
            return {"finished": True, "progress": progress, "rater": rater["name"]}
        item = self.conn.execute("SELECT * FROM items WHERE id = ?", (pending[0],)).fetchone()
        stimuli = [r["id"] for r in self.conn.execute("SELECT id FROM stimuli WHERE item_id = ? ORDER BY id", (item["id"],))]
        random.Random(f"methods-{rater['id']}-{item['id']}").shuffle(stimuli)
        return {"finished": False, "item": item["id"], "progress": progress, "rater": rater["name"],
                "scores": [study["score_min"], study["score_max"]],
                "reference": f"/api/reference/{item['id']}" if item["reference"] else None,
                "stimuli": [{"id": s, "label": f"Image {chr(65 + k)}", "url": f"/api/image/{s}"} for k, s in enumerate(stimuli)]}

    def vote(self, token: str | None, body: dict) -> dict:
        rater = self.rater(token)
        item, scores = body.get("item"), body.get("scores")
        if not isinstance(item, int) or isinstance(item, bool) or not 0 <= item < 2**63 or not isinstance(scores, dict):
            raise ApiError(HTTPStatus.BAD_REQUEST, "send {\"item\": ID, \"scores\": {STIMULUS_ID: SCORE, ...}}")
        row = self.conn.execute("SELECT * FROM items WHERE id = ? AND study_id = ?", (item, rater["study_id"])).fetchone()
        if row is None:
            raise ApiError(HTTPStatus.NOT_FOUND, f"no image {item} in your study")
        study = self.conn.execute("SELECT * FROM studies WHERE id = ?", (rater["study_id"],)).fetchone()
        expected = {r["id"] for r in self.conn.execute("SELECT id FROM stimuli WHERE item_id = ?", (item,))}
        parsed: dict[int, int] = {}
        for key, score in scores.items():
            if not re.fullmatch(r"\d{1,12}", str(key)) or int(key) not in expected:
                raise ApiError(HTTPStatus.BAD_REQUEST, f"{key!r} is not one of this image's versions")
            if not isinstance(score, int) or isinstance(score, bool) or not study["score_min"] <= score <= study["score_max"]:
                raise ApiError(HTTPStatus.BAD_REQUEST, f"scores are whole numbers from {study['score_min']} to {study['score_max']}")
            parsed[int(key)] = score
        if set(parsed) != expected:
            raise ApiError(HTTPStatus.BAD_REQUEST, "score every version of the image")
        added = db.record_votes(self.conn, rater["id"], parsed)
        return {"stored": added, "progress": self._progress(rater)}

    def image_path(self, token: str | None, kind: str, ident: int) -> Path:
        rater = self.rater(token)
        if kind == "image":
            row = self.conn.execute("""SELECT s.path FROM stimuli s JOIN items i ON i.id = s.item_id
                                       WHERE s.id = ? AND i.study_id = ?""", (ident, rater["study_id"])).fetchone()
        else:
            row = self.conn.execute("SELECT reference AS path FROM items WHERE id = ? AND study_id = ?", (ident, rater["study_id"])).fetchone()
        if row is None or not row["path"]:
            raise ApiError(HTTPStatus.NOT_FOUND, f"no {kind} {ident} in your study")
        path = Path(row["path"])
        if not path.is_file():
            raise ApiError(HTTPStatus.NOT_FOUND, f"the file of {kind} {ident} is gone from disk")
        return path

    def results(self, password: str | None) -> dict:
        if not self.admin_password:
            raise ApiError(HTTPStatus.NOT_FOUND, "results over HTTP need `revamp study serve --admin-password`; or run `revamp study report`")
        if not password or not hmac.compare_digest(password.encode(), self.admin_password.encode()):
            raise ApiError(HTTPStatus.FORBIDDEN, "wrong admin password")
        from revamp.study.report import study_summary

        return {"studies": [study_summary(self.conn, s["name"]) for s in self.studies()["studies"]]}


def _host_name(host_header: str) -> str:
    """The name part of a Host header ("[::1]:8000" -> "::1", "example.org:80" -> "example.org")."""
    if host_header.startswith("["):
        return host_header[1:].partition("]")[0]
    return host_header.rsplit(":", 1)[0] if host_header.count(":") == 1 else host_header


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        return False


def make_handler(app: StudyApp, allowed_hosts: set[str]):
    """``allowed_hosts``: the names raters' browsers may use for this server; any IP literal is
    accepted too. A request for another name (DNS rebinding) or from another site's page
    (Origin) is refused, so a web page a rater visits cannot join, vote or read in their name."""

    class Handler(BaseHTTPRequestHandler):
        server_version = "revamp-study"
        protocol_version = "HTTP/1.1"
        timeout = TIMEOUT_S

        def log_message(self, fmt, *args):  # quiet; errors are returned to the client
            pass

        def _send(self, status: int, body: bytes, ctype: str, cache: bool = False) -> None:
            try:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("X-Content-Type-Options", "nosniff")
                self.send_header("Content-Security-Policy", "default-src 'self'; img-src 'self'; frame-ancestors 'none'")
                self.send_header("Cache-Control", "private, max-age=3600" if cache else "no-store")
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):  # the client left before the answer: no one to tell
                self.close_connection = True

        def _json(self, status: int, data: dict) -> None:
            self._send(status, json.dumps(data).encode(), "application/json")

        def _body(self) -> dict:
            """The request's JSON object, read in full before the app's lock is taken."""
            length = self.headers.get("Content-Length")
            if length is None or not re.fullmatch(r"[0-9]{1,9}", length.strip()):
                self.close_connection = True
                raise ApiError(HTTPStatus.LENGTH_REQUIRED, "a JSON body with a decimal Content-Length is required")
            if int(length) > MAX_BODY:
                self.close_connection = True  # do not read an oversized body
                raise ApiError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"request body over {MAX_BODY} bytes")
            if self.headers.get_content_type() != "application/json":
                self.close_connection = True
                raise ApiError(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "send the body as Content-Type: application/json")
            data = self.rfile.read(int(length))
            if len(data) < int(length):
                self.close_connection = True
                raise ApiError(HTTPStatus.BAD_REQUEST, "the body is shorter than its Content-Length")
            try:
                body = json.loads(data or b"null")
            except (ValueError, UnicodeDecodeError, RecursionError):
                raise ApiError(HTTPStatus.BAD_REQUEST, "the body is not valid JSON") from None
            if not isinstance(body, dict):
                raise ApiError(HTTPStatus.BAD_REQUEST, "the body must be a JSON object")
            return body

        def _check_origin(self) -> None:
            host = self.headers.get("Host")
            name = _host_name(host or "").lower()
            if not host or not (name in allowed_hosts or _is_ip(name)):
                raise ApiError(HTTPStatus.MISDIRECTED_REQUEST, f"this server does not answer for host {host!r} (revamp study serve --allow-host)")
            origin = self.headers.get("Origin")
            if origin is not None and origin != f"http://{host}":
                raise ApiError(HTTPStatus.FORBIDDEN, "requests from another site's page are refused")

        def _handle(self, method: str) -> None:
            url = urlparse(self.path)
            token = self.headers.get("X-Rater-Token") or (parse_qs(url.query).get("token") or [None])[0]
            try:
                self._check_origin()
                body = self._body() if method == "POST" and url.path in ("/api/join", "/api/vote") else None
                with app.lock:
                    if method == "GET" and url.path in STATIC:
                        name, ctype = STATIC[url.path]
                        return self._send(200, _static(name), ctype)
                    if method == "GET" and url.path == "/api/studies":
                        return self._json(200, app.studies())
                    if method == "POST" and url.path == "/api/join":
                        return self._json(201, app.join(body))
                    if method == "GET" and url.path == "/api/next":
                        return self._json(200, app.next_item(token))
                    if method == "POST" and url.path == "/api/vote":
                        return self._json(200, app.vote(token, body))
                    if method == "GET" and url.path == "/api/results":
                        return self._json(200, app.results(self.headers.get("X-Admin-Password")))
                    m = re.fullmatch(r"/api/(image|reference)/(\d{1,12})", url.path)
                    if method == "GET" and m:
                        path = app.image_path(token, m.group(1), int(m.group(2)))
                        ctype = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
                        return self._send(200, path.read_bytes(), ctype, cache=True)
                    known = url.path in STATIC or url.path in API_PATHS or m is not None
                    raise ApiError(HTTPStatus.METHOD_NOT_ALLOWED if known else HTTPStatus.NOT_FOUND, f"no {method} {url.path}")
            except ApiError as exc:
                self._json(exc.status, {"error": str(exc)})
            except (TimeoutError, ConnectionError):
                self.close_connection = True  # the client stalled or left: nothing to answer
            except Exception as exc:  # noqa: BLE001 - an unanticipated case: one JSON line for the client, one for the log
                print(f"revamp study: {method} {url.path}: {type(exc).__name__}: {' '.join(str(exc).split())}", file=sys.stderr)
                self.close_connection = True
                self._json(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": "internal error (logged by the server)"})

        def do_GET(self):  # noqa: N802 - the http.server API
            self._handle("GET")

        def do_HEAD(self):  # noqa: N802
            self._handle("GET")

        def do_POST(self):  # noqa: N802
            self._handle("POST")

        def do_PUT(self):  # noqa: N802
            self._handle("PUT")

        def do_DELETE(self):  # noqa: N802
            self._handle("DELETE")

    return Handler


class _Server(ThreadingHTTPServer):
    request_queue_size = BACKLOG
    daemon_threads = True


def make_server(db_path: Path, host: str = "127.0.0.1", port: int = 8000, admin_password: str | None = None,
                allow_hosts: list[str] | tuple[str, ...] = ()) -> ThreadingHTTPServer:
    """``allow_hosts``: names raters use for this machine besides localhost, its own host names and
    IP addresses (for example a DNS name on the lab's network)."""
    allowed = LOCAL_NAMES | {host.lower(), socket.gethostname().lower(), socket.getfqdn().lower()} | {h.lower() for h in allow_hosts}
    return _Server((host, port), make_handler(StudyApp(db_path, admin_password), allowed))
