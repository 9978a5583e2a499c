"""The review app (Flask): work queues, the pair view, decisions, and the person (cluster) view.

Security, for identifiable data on a shared machine inside the secure environment:
- every page but the sign-in page needs a session, which only the per-start access token opens
  (401 otherwise); the session cookie is signed with a key made at start, so it dies with the app;
- every form carries a CSRF token (Flask-WTF), and the cookie is SameSite=Strict;
- every value goes through Jinja's autoescaping (no `|safe` anywhere), and a Content-Security-Policy
  allows only the app's own script and style;
- URLs name pairs and persons by their position in a queue, never by a record id, and nothing is
  logged per request; errors are logged as their type only;
- the reviewer id comes from the environment, never from a form.
"""

from __future__ import annotations

import hmac
import logging
import secrets
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from flask import Flask, abort, flash, redirect, render_template, request, session, url_for
from flask_wtf.csrf import CSRFError, CSRFProtect
from werkzeug.exceptions import HTTPException

from linkage.review.evidence import EvidenceModel, Waterfall
from linkage.review.store import (
    DECISIONS,
    DISPLAY_FIELDS,
    NOTES,
    QUEUE_CLUSTER_SPLIT,
    QUEUE_LABELS,
    Pair,
    ReviewData,
    ReviewStore,
    status_counts,
)

log = logging.getLogger("linkage.review")

SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",  # pages hold identifiable values: never kept in a browser cache
}
OPEN_ENDPOINTS = {"login", "static"}
KEYBOARD_SHORTCUTS = (
    ("m", "match"),
    ("n", "non-match"),
    ("u", "unsure"),
    ("1-8", "choose a note"),
    ("0", "no note"),
    ("j", "next pair"),
    ("k", "previous pair"),
    ("b", "blind mode on/off"),
    ("l", "left record's person"),
    ("r", "right record's person"),
    ("q", "back to the queues"),
)


@dataclass
class ReviewBackend:
    """The store and the model's evidence, rebuilt together on reload."""

    store: ReviewStore
    model: Mapping[str, Any] | None
    evidence: EvidenceModel | None = None
    _waterfalls: dict[tuple, Waterfall] = field(default_factory=dict)

    @property
    def data(self) -> ReviewData:
        return self.store.data

    def reload(self) -> None:
        data = self.store.load()
        self.evidence = EvidenceModel(self.model, data.records.values()) if self.model is not None else None
        self._waterfalls.clear()

    def prefetch(self, pair: Pair) -> None:
        try:
            self.waterfall(pair)
        except Exception as error:  # noqa: BLE001 - a background warm-up; the page computes it again if needed
            log.warning("review app: evidence prefetch failed: %s", type(error).__name__)

    def waterfall(self, pair: Pair) -> Waterfall | None:
        records = self.data.records
        if self.evidence is None or pair.left not in records or pair.right not in records:
            return None
        if pair.key not in self._waterfalls:
            self._waterfalls[pair.key] = self.evidence.waterfall(records[pair.left], records[pair.right])
        return self._waterfalls[pair.key]


def create_app(backend: ReviewBackend, token: str, reviewer: str, secret_key: str | None = None) -> Flask:
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=secret_key or secrets.token_hex(32),
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        WTF_CSRF_TIME_LIMIT=None,  # the token lives as long as the session, which dies with the app
        MAX_CONTENT_LENGTH=64 * 1024,
    )
    CSRFProtect(app)
    app.jinja_env.globals.update(
        reviewer=reviewer, notes=NOTES, queue_labels=QUEUE_LABELS, shortcuts=KEYBOARD_SHORTCUTS
    )

    @app.before_request
    def require_session():
        if request.endpoint not in OPEN_ENDPOINTS and not session.get("signed_in"):
            return render_template("login.html", error=None), 401
        return None

    @app.after_request
    def security_headers(response):
        response.headers.update(SECURITY_HEADERS)
        return response

    @app.errorhandler(CSRFError)
    def csrf_refused(error):
        return render_template(
            "message.html",
            title="Form refused",
            message="The form had no valid CSRF token: reload the page and try again.",
        ), 400

    @app.errorhandler(Exception)
    def unexpected(error):
        if isinstance(error, HTTPException):
            return error  # an HTTP error (404, 405...) renders as itself
        # The type only: an exception's message can quote a record's values.
        log.error("review app error: %s", type(error).__name__)
        return render_template(
            "message.html", title="Error", message="Something went wrong; nothing about the data was logged."
        ), 500

    @app.route("/login", methods=["GET", "POST"])
    def login():
        if request.method == "GET":
            return render_template("login.html", error=None)
        offered = request.form.get("token", "")
        if not hmac.compare_digest(offered.encode("utf-8"), token.encode("utf-8")):
            return render_template("login.html", error="Wrong access token."), 401
        session.clear()
        session["signed_in"] = True
        return redirect(url_for("index"))

    @app.post("/logout")
    def logout():
        session.clear()
        return redirect(url_for("login"))

    @app.get("/")
    def index():
        data = backend.data
        queues = [
            (name, QUEUE_LABELS[name], status_counts(pairs, data.decisions), _first_pending(pairs, data))
            for name, pairs in data.queues.items()
        ]
        return render_template("index.html", queues=queues)

    @app.get("/queue/<queue>")
    def queue_list(queue: str):
        pairs = _queue(queue)
        return render_template(
            "queue.html", queue=queue, pairs=pairs, decisions=backend.data.decisions, blind=_blind()
        )

    @app.get("/pair/<queue>/<int:index>")
    def pair_view(queue: str, index: int):
        pairs = _queue(queue)
        if not 0 <= index < len(pairs):
            abort(404)
        page = render_template("pair.html", **_pair_context(queue, pairs, index))
        if index + 1 < len(pairs):  # the next pair's evidence, ready by the time the reviewer gets there
            threading.Thread(target=backend.prefetch, args=(pairs[index + 1],), daemon=True).start()
        return page

    @app.post("/pair/<queue>/<int:index>")
    def decide(queue: str, index: int):
        pairs = _queue(queue)
        if not 0 <= index < len(pairs):
            abort(404)
        decision = request.form.get("decision", "")
        note = request.form.get("note") or None
        if decision not in DECISIONS or (note is not None and note not in NOTES):
            abort(400)
        backend.store.decide([pairs[index].key], decision, note, queue)
        following = _next_pending(pairs, backend.data, index)
        if following is None:
            flash(f"Every pair of the {QUEUE_LABELS[queue].lower()} has a decision.")
            return redirect(url_for("index"))
        return redirect(url_for("pair_view", queue=queue, index=following))

    @app.get("/person/<int:number>")
    def person_view(number: int):
        person_key = _person_key(number)
        members = backend.data.persons[person_key]
        return render_template(
            "person.html",
            number=number,
            members=members,
            records=backend.data.records,
            fields=DISPLAY_FIELDS,
            back=request.args.get("back", ""),
        )

    @app.post("/person/<int:number>/split")
    def split_person(number: int):
        person_key = _person_key(number)
        members = backend.data.persons[person_key]
        chosen = []
        for value in request.form.getlist("record"):
            if not value.isdigit() or int(value) >= len(members):
                abort(400)
            chosen.append(members[int(value)])
        note = request.form.get("note") or None
        if note is not None and note not in NOTES:
            abort(400)
        pairs = backend.store.split_pairs(person_key, chosen)
        if not pairs:
            flash("Choose some, not all, of the person's records to split off.")
        else:
            backend.store.decide(pairs, "non_match", note, QUEUE_CLUSTER_SPLIT)
            flash(f"Recorded {len(pairs)} non-match decision(s): the next link run splits the person.")
        return redirect(url_for("person_view", number=number))

    @app.post("/blind")
    def toggle_blind():
        session["blind"] = not _blind()
        return redirect(_local_path(request.form.get("next", "")))

    @app.post("/reload")
    def reload():
        backend.reload()
        flash("Reloaded the queues and decisions from the lake.")
        return redirect(url_for("index"))

    # -- helpers ---------------------------------------------------------------------------------

    def _queue(queue: str) -> list[Pair]:
        pairs = backend.data.queues.get(queue)
        if pairs is None:
            abort(404)
        return pairs

    def _person_key(number: int) -> str:
        keys = backend.data.person_keys
        if not 0 <= number < len(keys):
            abort(404)
        return keys[number]

    def _blind() -> bool:
        return bool(session.get("blind"))

    def _pair_context(queue: str, pairs: list[Pair], index: int) -> dict[str, Any]:
        data, pair = backend.data, pairs[index]
        left, right = data.records.get(pair.left), data.records.get(pair.right)
        person_numbers = {key: n for n, key in enumerate(data.person_keys)}

        def others(record: Mapping[str, Any] | None) -> tuple[int | None, list[Mapping[str, Any]]]:
            if record is None or record.get("person_key") not in person_numbers:
                return None, []
            members = data.persons[record["person_key"]]
            return (
                person_numbers[record["person_key"]],
                [data.records[k] for k in members if k not in (pair.left, pair.right)],
            )

        left_person, left_others = others(left)
        right_person, right_others = others(right)
        return {
            "queue": queue,
            "index": index,
            "total": len(pairs),
            "pair": pair,
            "left": left,
            "right": right,
            "rows": compared_rows(left, right),
            "decision": data.decisions.get(pair.key),
            "blind": _blind(),
            "waterfall": backend.waterfall(pair) if left and right else None,
            "left_person": left_person,
            "right_person": right_person,
            "left_others": left_others,
            "right_others": right_others,
            "fields": DISPLAY_FIELDS,
            "same_person": bool(
                left
                and right
                and left.get("person_key")
                and left.get("person_key") == right.get("person_key")
            ),
        }

    return app


def compared_rows(left: Mapping[str, Any] | None, right: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """One row per displayed field: both values (standardised, and as supplied when that differs) and how they
    compare: same, differs, or missing on a side."""
    rows = []
    for label, std, raw in DISPLAY_FIELDS:
        values = [_shown(record, std, raw) for record in (left, right)]
        a, b = (record.get(std) if record else None for record in (left, right))
        if a is None and b is None:
            if not any(v["raw"] for v in values):
                continue
            state = "missing"
        elif a is None or b is None:
            state = "missing"
        else:
            state = "same" if _comparable(a) == _comparable(b) else "differs"
        rows.append({"label": label, "left": values[0], "right": values[1], "state": state})
    return rows


def _shown(record: Mapping[str, Any] | None, std: str, raw: str | None) -> dict[str, str]:
    value = _text(record.get(std)) if record else ""
    supplied = _text(record.get(raw)) if record and raw else ""
    return {"value": value, "raw": supplied if supplied and supplied != value else ""}


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        return " ".join(_text(v) for v in value)
    return str(value)


def _comparable(value: Any) -> Any:
    return value.strip().upper() if isinstance(value, str) else value


def _first_pending(pairs: list[Pair], data: ReviewData) -> int | None:
    return _next_pending(pairs, data, -1)


def _next_pending(pairs: list[Pair], data: ReviewData, after: int) -> int | None:
    """The next pair after `after` with no decision, wrapping round; else the next `unsure` one; else None."""
    order = [*range(after + 1, len(pairs)), *range(0, max(after + 1, 0))]
    for wanted in (lambda d: d is None, lambda d: d is not None and d.decision == "unsure"):
        for i in order:
            if i != after and wanted(data.decisions.get(pairs[i].key)):
                return i
    return None


def _local_path(target: str) -> str:
    """Only a path inside the app: never redirect elsewhere."""
    return target if target.startswith("/") and not target.startswith("//") and "\\" not in target else "/"


__all__ = ["create_app", "ReviewBackend", "compared_rows"]
