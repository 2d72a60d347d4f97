"""Answers that change only with the catalogue: ETags, 304s and answers given again.

A listing, a member list or a change-feed page changes only when the
catalogue changes, and every change takes a new change number (app/loading/
changes.py). So one caller's answer to one question at one change number is
always the same bytes. Its ETag is a digest of the question, who asks (the
project, admin or not), the change number and what else shapes answers (this
release, this catalogue); a request whose If-None-Match holds it gets a 304,
and a question this worker answered recently at the same change number gets
the same bytes again, without the query. Both are checked against the change
number read for every request (one single-row read): a change is seen by the
very next request, on any worker of any node. Image-show keeps Glance v1's
Etag (the checksum) and never answers 304.
"""

import collections
import hashlib
import importlib.metadata
import threading

from flask import current_app, g, request

from app import db as database
from app.freshness import change_state

RELEASE = importlib.metadata.version("image-catalogue")


def init_app(app):
    app.extensions["answers"] = AnswerCache(app.config["ANSWER_CACHE_BYTES"])


# What a changes-since poller needs to miss nothing (docs/api.md, "Polling"):
# how far before its previous answer's Date to ask, and the latest change it
# could not see that way, which tells it to list everything again.
MARGIN_HEADER = "X-Image-Catalogue-Changes-Since-Margin"
RELIST_HEADER = "X-Image-Catalogue-Relist-Change"


def answer(question, produce, *, for_pollers=False):
    """The response to `question` for the caller: a 304, the same answer again, or a new one.

    `question` (hashable, its repr stable) is what is asked: the route and its
    parsed parameters. `produce(reader, current)` returns the answer's JSON
    text at `current` (a ChangeState); it runs only when this worker has no
    answer to the question at the current change number (and the caller's
    If-None-Match does not already hold it). `for_pollers` adds what a
    changes-since poller needs (MARGIN_HEADER, RELIST_HEADER).
    """
    caller = g.caller
    key = (question, caller.project_id, caller.is_admin)
    answers = current_app.extensions["answers"]

    def work(reader):
        current = change_state(reader)
        tag = entity_tag(key, current)
        if request.if_none_match.contains_weak(tag):
            return current, tag, None
        body = answers.get(key, current)
        if body is None:
            body = produce(reader, current).encode()
            answers.put(key, current, body)
        return current, tag, body

    current, tag, body = database.read(work, caller.affinity)
    if body is None:
        response = current_app.response_class(status=304)
    else:
        response = current_app.response_class(body, mimetype=current_app.json.mimetype)
    response.set_etag(tag)
    if for_pollers:
        response.headers[MARGIN_HEADER] = str(current_app.config["CHANGES_SINCE_MARGIN_SECONDS"])
        response.headers[RELIST_HEADER] = str(current.relist_change)
    return response


def entity_tag(key, current):
    """The ETag (unquoted) of the answer to `key` at change number `current`."""
    text = repr((RELEASE, current.deployment, current.number, key))
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


class AnswerCache:
    """This worker's recent answers, each with the change number it holds for.

    At most `max_bytes` of answers in all (0 keeps none); past it, the least
    recently used make room. An answer of an older change number is never
    given: it waits to be pushed out.
    """

    def __init__(self, max_bytes):
        self.max_bytes = max_bytes
        self.size = 0
        self._answers = collections.OrderedDict()
        self._lock = threading.Lock()

    def get(self, key, current):
        with self._lock:
            entry = self._answers.get(key)
            if entry is None or entry[0] != current:
                return None
            self._answers.move_to_end(key)
            return entry[1]

    def put(self, key, current, body):
        if len(body) > self.max_bytes:
            return
        with self._lock:
            replaced = self._answers.pop(key, None)
            if replaced is not None:
                self.size -= len(replaced[1])
            while self.size + len(body) > self.max_bytes:
                _, (_, dropped) = self._answers.popitem(last=False)
                self.size -= len(dropped)
            self._answers[key] = (current, body)
            self.size += len(body)
