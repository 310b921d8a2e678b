"""SQLite storage for blind image-quality studies.

One file holds any number of studies. WAL mode and one transaction per request: a vote is
either fully stored or not at all, so killing the server at any moment loses no committed vote
and leaves a consistent database. ``UNIQUE(rater_id, stimulus_id)`` stores a double-submitted
vote once.
"""
from __future__ import annotations

import secrets
import sqlite3
from datetime import datetime, timezone
from pathlib import Path

from revamp.imageio import INPUT_SUFFIXES

SCHEMA = """
CREATE TABLE IF NOT EXISTS studies (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    created TEXT NOT NULL,
    score_min INTEGER NOT NULL,
    score_max INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS methods (
    id INTEGER PRIMARY KEY,
    study_id INTEGER NOT NULL REFERENCES studies(id),
    label TEXT NOT NULL,
    folder TEXT NOT NULL,
    UNIQUE (study_id, label)
);
CREATE TABLE IF NOT EXISTS items (
    id INTEGER PRIMARY KEY,
    study_id INTEGER NOT NULL REFERENCES studies(id),
    name TEXT NOT NULL,
    reference TEXT,
    UNIQUE (study_id, name)
);
CREATE TABLE IF NOT EXISTS stimuli (
    id INTEGER PRIMARY KEY,
    item_id INTEGER NOT NULL REFERENCES items(id),
    method_id INTEGER NOT NULL REFERENCES methods(id),
    path TEXT NOT NULL,
    UNIQUE (item_id, method_id)
);
CREATE TABLE IF NOT EXISTS raters (
    id INTEGER PRIMARY KEY,
    study_id INTEGER NOT NULL REFERENCES studies(id),
    name TEXT NOT NULL,
    token TEXT NOT NULL UNIQUE,
    created TEXT NOT NULL,
    UNIQUE (study_id, name)
);
CREATE TABLE IF NOT EXISTS votes (
    id INTEGER PRIMARY KEY,
    rater_id INTEGER NOT NULL REFERENCES raters(id),
    stimulus_id INTEGER NOT NULL REFERENCES stimuli(id),
    score INTEGER NOT NULL,
    created TEXT NOT NULL,
    UNIQUE (rater_id, stimulus_id)
);
"""


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def connect(path: str | Path) -> sqlite3.Connection:
    conn = sqlite3.connect(str(path), timeout=10, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")  # a vote acknowledged to the browser survives a power cut too
    conn.execute("PRAGMA foreign_keys=ON")
    conn.executescript(SCHEMA)
    return conn


class StudyError(Exception):
    """A problem reported to the user as one line."""




def _images(folder: Path) -> dict[str, Path]:
    """Stem -> file for the images directly in ``folder`` (restored outputs keep the input's stem)."""
    if not folder.is_dir():
        raise StudyError(f"{folder}: no such folder")
    return {p.stem: p.resolve() for p in sorted(folder.iterdir()) if p.suffix.lower() in INPUT_SUFFIXES and p.is_file()}


def create_study(conn: sqlite3.Connection, name: str, images: Path, methods: dict[str, Path], reference: Path | None = None,
                 score_range: tuple[int, int] = (1, 5)) -> int:
    """A study over the images of ``images`` (their names pick the items) restored by each method.

    Every method folder must hold an image with the same stem for every item, so each rater
    sees every method for every image. Returns the study id.
    """
    if len(methods) < 2:
        raise StudyError("a study compares at least two methods (--method A=DIR --method B=DIR)")
    names = sorted(_images(images))
    if not names:
        raise StudyError(f"{images}: no images")
    per_method = {label: _images(folder) for label, folder in methods.items()}
    refs = _images(reference) if reference else {}
    for label, found in per_method.items():
        missing = [n for n in names if n not in found]
        if missing:
            raise StudyError(f"method {label}: no output for {len(missing)} image(s), e.g. {missing[0]}")
    if reference:
        missing = [n for n in names if n not in refs]
        if missing:
            raise StudyError(f"reference folder: no image for {missing[0]}")
    conn.execute("BEGIN IMMEDIATE")
    try:
        if conn.execute("SELECT 1 FROM studies WHERE name = ?", (name,)).fetchone():
            raise StudyError(f"a study named {name!r} exists in this database")
        study = conn.execute("INSERT INTO studies (name, created, score_min, score_max) VALUES (?, ?, ?, ?)",
                             (name, now(), *score_range)).lastrowid
        method_ids = {label: conn.execute("INSERT INTO methods (study_id, label, folder) VALUES (?, ?, ?)",
                                          (study, label, str(Path(folder).resolve()))).lastrowid for label, folder in methods.items()}
        for n in names:
            item = conn.execute("INSERT INTO items (study_id, name, reference) VALUES (?, ?, ?)",
                                (study, n, str(refs[n]) if reference else None)).lastrowid
            for label, mid in method_ids.items():
                conn.execute("INSERT INTO stimuli (item_id, method_id, path) VALUES (?, ?, ?)", (item, mid, str(per_method[label][n])))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return study


def study_id(conn: sqlite3.Connection, name: str) -> int:
    row = conn.execute("SELECT id FROM studies WHERE name = ?", (name,)).fetchone()
    if row is None:
        raise StudyError(f"no study named {name!r} in this database")
    return row["id"]


def add_rater(conn: sqlite3.Connection, study: int, name: str) -> str:
    """A new rater's secret token (sent with each of their requests)."""
    token = secrets.token_urlsafe(24)
    conn.execute("INSERT INTO raters (study_id, name, token, created) VALUES (?, ?, ?, ?)", (study, name, token, now()))
    return token


def record_votes(conn: sqlite3.Connection, rater: int, scores: dict[int, int]) -> int:
    """All scores for one image in one transaction; a repeated vote is ignored. Returns how many were new."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        stamp, added = now(), 0
        for stimulus, score in scores.items():
            added += conn.execute("INSERT OR IGNORE INTO votes (rater_id, stimulus_id, score, created) VALUES (?, ?, ?, ?)",
                                  (rater, stimulus, score, stamp)).rowcount
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return added
