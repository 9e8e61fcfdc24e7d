"""Bounded fan-out of updates to the open pages (one Server-Sent Events stream each).

Every subscriber owns a queue of at most ``capacity`` messages; when a slow or stalled tab lets its
queue fill, the oldest message is dropped (each update carries the whole current state, so a
dropped one loses nothing but a frame). A closed tab unsubscribes when its write fails. Memory is
therefore bounded by ``subscribers x capacity x message size`` whatever the clients do, and the
number of subscribers is capped too.
"""
from __future__ import annotations

import collections
import json
import threading

#: messages kept per subscriber before the oldest is dropped
DEFAULT_CAPACITY = 8
#: the most simultaneous streams (further pages get 503)
MAX_SUBSCRIBERS = 16


class Subscriber:
    """One page's bounded queue of encoded messages."""

    def __init__(self, capacity: int) -> None:
        self._items: collections.deque = collections.deque(maxlen=capacity)
        self._ready = threading.Condition()
        self.dropped = 0
        self.closed = False

    def put(self, message: bytes) -> None:
        with self._ready:
            if len(self._items) == self._items.maxlen:
                self.dropped += 1                   # deque(maxlen) drops the oldest on append
            self._items.append(message)
            self._ready.notify()

    def get(self, timeout: float) -> bytes | None:
        """The next message, or ``None`` after ``timeout`` seconds (or once closed)."""
        with self._ready:
            if not self._items and not self.closed:
                self._ready.wait(timeout)
            return self._items.popleft() if self._items else None

    def close(self) -> None:
        with self._ready:
            self.closed = True
            self._ready.notify_all()

    def __len__(self) -> int:
        return len(self._items)


class Broadcaster:
    """Publish JSON events to every subscriber; the latest of each event name is replayed to newcomers."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY, max_subscribers: int = MAX_SUBSCRIBERS) -> None:
        self.capacity, self.max_subscribers = capacity, max_subscribers
        self._subs: list[Subscriber] = []
        self._latest: dict[str, bytes] = {}
        self._lock = threading.Lock()
        self.published = 0

    @staticmethod
    def encode(event: str, data) -> bytes:
        """One SSE message: ``event: NAME`` and the JSON on one ``data:`` line."""
        text = json.dumps(data, separators=(",", ":"), allow_nan=False)
        return f"event: {event}\ndata: {text}\n\n".encode()

    def publish(self, event: str, data) -> None:
        message = self.encode(event, data)
        with self._lock:
            self._latest[event] = message
            subs = list(self._subs)
            self.published += 1
        for s in subs:
            s.put(message)

    def subscribe(self) -> Subscriber | None:
        """A new subscriber primed with the latest message of each event, or ``None`` when full."""
        with self._lock:
            if len(self._subs) >= self.max_subscribers:
                return None
            sub = Subscriber(self.capacity)
            for message in self._latest.values():
                sub.put(message)
            self._subs.append(sub)
            return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        sub.close()
        with self._lock:
            if sub in self._subs:
                self._subs.remove(sub)

    def close(self) -> None:
        with self._lock:
            subs, self._subs = self._subs, []
        for s in subs:
            s.close()

    @property
    def subscribers(self) -> int:
        with self._lock:
            return len(self._subs)

    def queued(self) -> int:
        """Messages waiting in all queues (bounded by subscribers x capacity)."""
        with self._lock:
            return sum(len(s) for s in self._subs)
