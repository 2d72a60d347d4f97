"""Answers that change only with the catalogue: ETags, 304s and answers given again.

A listing, a member list or a change-feed page changes only when the
catalogue changes, and every change takes a new change number (app/loading/
changes.py). So one caller's answer to one question at one change number is
always the same bytes. Its ETag is a digest of the question, who asks (the
project, admin or not), the change number and what else shapes answers (this
release, this catalogue); a request whose If-None-Match holds it gets a 304.
Each worker keeps its recent answers (AnswerCache), and a request asked
again as it was (the same path, query, Host and credentials) while the
change number stands is answered from there: by RepeatedAnswers, in front
of Flask, which reads the change number (one single-row read) and nothing
else. Either way the number is read for every request, so a change is seen
by the very next request, on any worker of any node (with replicas, by the
first once its replica has replayed it). Image-show keeps Glance v1's Etag
(the checksum) and never answers 304.
"""

import collections
import hashlib
import importlib.metadata
import threading
import time
from http import HTTPStatus
from pathlib import Path
from typing import NamedTuple

from flask import current_app, g, request
from werkzeug.http import parse_etags

from app import db as database
from app.db.reads import DatabaseUnavailable
from app.freshness import change_state
from app.web import limits, observability
from app.web.request_id import HEADER as REQUEST_ID
from app.web.request_id import request_id_for


def _release():
    """This code's version: a new release may render answers differently, so its ETags differ."""
    try:
        return importlib.metadata.version("image-catalogue")
    except importlib.metadata.PackageNotFoundError:
        # A checkout run in place (flask --app wsgi): its code says what it renders.
        digest = hashlib.blake2b(digest_size=16)
        for path in sorted(Path(__file__).parents[1].rglob("*.py")):
            digest.update(path.read_bytes())
        return digest.hexdigest()


RELEASE = _release()
# What a changes-since poller needs to miss nothing (docs/api.md, "Polling"):
# how far before its previous answer's Date to ask, and the latest change it
# could not see that way, which tells it to list everything again.
MARGIN_HEADER = "X-Image-Catalogue-Changes-Since-Margin"
RELIST_HEADER = "X-Image-Catalogue-Relist-Change"
JSON = "application/json; charset=UTF-8"
# What makes two requests the same question from the same caller, in the WSGI
# environ (after the proxies and Keystone's middleware in front of the app).
_ASKED = (
    "PATH_INFO",
    "QUERY_STRING",
    "HTTP_HOST",
    "HTTP_X_AUTH_TOKEN",
    "HTTP_X_IDENTITY_STATUS",
    "HTTP_X_PROJECT_ID",
    "HTTP_X_ROLES",
)


class Answer(NamedTuple):
    """An answer given, and what giving it again needs."""

    number: int
    etag: str
    # None when only a 304 was given: the body was never made.
    body: bytes | None
    # The URL rule it answered (the metrics' label), and whether it carries
    # the polling headers.
    route: str
    for_pollers: bool
    # The caller's credentials may be taken as they are until then (Caller.trusted_until).
    trusted_until: float
    affinity: str


def init_app(app):
    """Keep answers, and give them again in front of Flask (inside the identity middleware)."""
    answers = AnswerCache(app.config["ANSWER_CACHE_BYTES"])
    app.extensions["answers"] = answers
    if app.config["ACCESS_LOG"] != "all":  # every request's line is the app's to write
        app.wsgi_app = RepeatedAnswers(app, app.wsgi_app, answers)


def answer(question, produce, *, for_pollers=False):
    """The response to `question` for the caller: a 304, the same answer again, or a new one.

    `question` (hashable, its repr stable) is what is asked: the route and its
    parsed parameters. `produce(reader, current)` returns the answer's JSON
    text at `current` (a ChangeState); it runs only when this worker has no
    answer to this request at the current change number (and the caller's
    If-None-Match does not already hold it). `for_pollers` adds what a
    changes-since poller needs (MARGIN_HEADER, RELIST_HEADER).
    """
    caller = g.caller
    key = asked(request.environ)
    answers = current_app.extensions["answers"]

    def work(reader):
        current = change_state(reader)
        given = answers.get(key, current.number)
        if given is not None:
            # The credentials were checked again: trusted for as long as the caller now is.
            given = given._replace(trusted_until=caller.trusted_until)
        else:
            tag = entity_tag((question, caller.project_id, caller.is_admin), current)
            given = Answer(
                current.number,
                tag,
                None,
                request.url_rule.rule,
                for_pollers,
                caller.trusted_until,
                caller.affinity,
            )
        if not _answerable(given, request.if_none_match):
            given = given._replace(body=produce(reader, current).encode())
        answers.put(key, given)
        return current, given

    current, given = database.read(work, caller.affinity)
    status, headers, body = _response(given, current, request.if_none_match, current_app.config)
    response = current_app.response_class(body, status=status)
    response.headers.update(headers)
    return response


def asked(environ):
    """What makes a request the same question from the same caller (AnswerCache's key)."""
    return tuple(environ.get(name) for name in _ASKED)


def entity_tag(key, current):
    """The ETag (unquoted) of the answer to `key` at change number `current`."""
    text = repr((RELEASE, current.deployment, current.number, key))
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def _response(given, current, if_none_match, config):
    """(status, headers, body) of `given` for a request whose If-None-Match is `if_none_match`."""
    headers = [("ETag", f'"{given.etag}"')]
    if given.for_pollers:
        headers += [
            (MARGIN_HEADER, str(config["CHANGES_SINCE_MARGIN_SECONDS"])),
            (RELIST_HEADER, str(current.relist_change)),
        ]
    if if_none_match.contains_weak(given.etag):
        return 304, headers, b""
    return 200, [("Content-Type", JSON), *headers], given.body


def _answerable(given, if_none_match):
    """Whether `given` answers a request with `if_none_match`: with a 304, or its body."""
    return given.body is not None or if_none_match.contains_weak(given.etag)


class RepeatedAnswers:
    """WSGI: a GET asked again as it was is answered from AnswerCache if nothing changed since.

    Only a request that Flask answered before, with the same credentials
    (still trusted: Caller.trusted_until) and Host, within the size limits:
    one single-row read (the change number), then the same bytes or a 304,
    counted and logged as the app does. Anything else, and any change, goes
    on to Flask.
    """

    def __init__(self, app, wsgi_app, answers):
        self.app, self.wsgi_app, self.answers = app, wsgi_app, answers

    def __call__(self, environ, start_response):
        started = time.perf_counter()
        given = self._still_given(environ)
        if given is None:
            return self.wsgi_app(environ, start_response)
        answer_, current, if_none_match = given
        status, headers, body = _response(answer_, current, if_none_match, self.app.config)
        request_id = request_id_for(environ.get("HTTP_X_OPENSTACK_REQUEST_ID", ""))
        headers.append((REQUEST_ID, request_id))
        if status == 200:  # a 304 has no length of its own
            headers.append(("Content-Length", str(len(body))))
        start_response(f"{status} {HTTPStatus(status).phrase}", headers)
        elapsed = time.perf_counter() - started
        observability.record(self.app, environ, answer_.route, status, elapsed, request_id)
        return [body]

    def _still_given(self, environ):
        """(Answer, ChangeState, If-None-Match) if this request's answer stands, else None."""
        if environ["REQUEST_METHOD"] != "GET":
            return None
        given = self.answers.peek(asked(environ))
        # The token cache's clock, which set trusted_until.
        if given is None or given.trusted_until <= self.app.extensions["token_cache"].clock():
            return None
        if_none_match = parse_etags(environ.get("HTTP_IF_NONE_MATCH"))
        if not _answerable(given, if_none_match):
            return None
        if limits.oversized(environ, self.app.config) is not None:
            return None
        reads = self.app.extensions["reads"]
        try:
            current = reads.read(change_state, given.affinity, settings=False)
        except DatabaseUnavailable:
            return None  # Flask answers it: the 503, logged and counted
        if current.number != given.number:
            return None
        return given, current, if_none_match


class AnswerCache:
    """This worker's recent answers, each with the change number it holds for.

    At most `max_bytes` of answers in all (0 keeps none), each counted as its
    body and ENTRY_BYTES more; past it, the least recently used make room. An
    answer of an older change number is never given: it waits to be pushed
    out or replaced.
    """

    # About what an entry's key, ETag and the rest take besides the body.
    ENTRY_BYTES = 512

    def __init__(self, max_bytes):
        self.max_bytes = max_bytes
        self.size = 0
        self._answers = collections.OrderedDict()
        self._lock = threading.Lock()

    def peek(self, key):
        """The latest answer kept for `key`, whatever its change number."""
        return self._answers.get(key)

    def get(self, key, number):
        with self._lock:
            given = self._answers.get(key)
            if given is None or given.number != number:
                return None
            self._answers.move_to_end(key)
            return given

    def put(self, key, given):
        size = self._size(given)
        with self._lock:
            replaced = self._answers.pop(key, None)
            if replaced is not None:
                self.size -= self._size(replaced)
            if size > self.max_bytes:
                return  # and the older answer is gone: it would only be looked up in vain
            while self.size + size > self.max_bytes:
                _, dropped = self._answers.popitem(last=False)
                self.size -= self._size(dropped)
            self._answers[key] = given
            self.size += size

    def _size(self, given):
        return self.ENTRY_BYTES + len(given.body or b"")
