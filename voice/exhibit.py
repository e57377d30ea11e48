"""What the installation's sphere is showing: one state per process, shared by its sessions.

A visitor asking "what does this show?" means the dataset the sphere is playing now, and at a
multi-headset installation that is the same dataset for everyone. So the state lives in one
:class:`Exhibit`, created by whoever creates the sessions (the CLI for a kiosk, the server for
headsets) and handed to each :class:`voice.pipeline.Session`; a session reads it at the moment
each question is asked. A headset may still override it for itself (``SessionSettings.showing``,
the ``session.update`` field), which wins over the exhibit for that session only.

Changes come from ``sos-voice --showing``, the server's ``/exhibit/showing`` HTTP endpoint (an
exhibit controller moving along its playlist), or code. Subscribers are told synchronously, so
the WebSocket can send ``session.updated`` and the CLI can redraw its status line.

Not thread-safe by design: like the sessions, it belongs to the event loop's thread. Resolve a
reference off the loop with :meth:`Exhibit.resolve` (difflib over 520 titles) if you must, then
:meth:`Exhibit.set` the entry on the loop.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from catalog.datasets import Catalog, CatalogEntry, CatalogError

log = logging.getLogger(__name__)

__all__ = ["CatalogError", "Exhibit", "ExhibitChange"]


@dataclass(frozen=True, slots=True)
class ExhibitChange:
    """One change of the showing dataset. ``source`` says who made it ("cli", "http", ...)
    for logs; ``version`` counts changes since start-up."""

    showing: CatalogEntry | None
    previous: CatalogEntry | None
    source: str
    version: int


Subscriber = Callable[[ExhibitChange], None]


class Exhibit:
    """The dataset on the installation's sphere, with change notification."""

    def __init__(self, catalog: Catalog, showing: CatalogEntry | None = None) -> None:
        self.catalog = catalog
        self._showing = showing
        self._version = 0
        self._subscribers: list[Subscriber] = []

    @property
    def showing(self) -> CatalogEntry | None:
        """The current dataset, or None when the installation has not said."""
        return self._showing

    @property
    def version(self) -> int:
        """How many times the showing dataset has changed (0 at start)."""
        return self._version

    def resolve(self, ref: str) -> CatalogEntry:
        """A catalog URL, slug or (approximate) title -> the entry; CatalogError otherwise."""
        return self.catalog.resolve(ref)

    def set(self, ref: str | CatalogEntry | None, *, source: str = "") -> CatalogEntry | None:
        """Make ``ref`` the showing dataset (None clears it) and tell the subscribers.

        A string is resolved against the catalog first, so an unknown dataset raises
        :class:`CatalogError` and changes nothing. Setting the dataset that is already
        showing is a no-op: nobody is told twice about the same state.
        """
        entry = self.resolve(ref) if isinstance(ref, str) else ref
        if entry is not None and self.catalog.by_slug(entry.slug) is None:
            raise CatalogError(f"{entry.url} is not in this exhibit's catalog")
        if entry == self._showing:
            return entry
        previous, self._showing = self._showing, entry
        self._version += 1
        change = ExhibitChange(entry, previous, source, self._version)
        log.info(
            "exhibit: now showing %s (was %s; via %s)",
            entry.slug if entry else "nothing",
            previous.slug if previous else "nothing",
            source or "code",
        )
        for subscriber in list(self._subscribers):
            try:
                subscriber(change)
            except Exception:  # one broken listener must not stop the others hearing it
                log.exception("exhibit subscriber %r failed", subscriber)
        return entry

    def clear(self, *, source: str = "") -> None:
        self.set(None, source=source)

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Call ``callback`` on every change (synchronously, on the caller's thread). Returns
        the function that unsubscribes it; calling that twice is harmless."""
        self._subscribers.append(callback)

        def unsubscribe() -> None:
            if callback in self._subscribers:
                self._subscribers.remove(callback)

        return unsubscribe

    def describe(self) -> dict[str, str | int | None]:
        """The state as JSON-ready data (HTTP endpoint, health)."""
        entry = self._showing
        return {
            "slug": entry.slug if entry else None,
            "url": entry.url if entry else None,
            "title": entry.title if entry else None,
            "version": self._version,
        }
