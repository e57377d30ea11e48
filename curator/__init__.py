"""The curator's view: what visitors asked, stored in SQLite, shown to the exhibit staff.

``store`` keeps one row per turn (text only, never audio) and forgets rows older than the
retention; ``recorder`` turns a :class:`voice.pipeline.Session`'s events into those rows;
``page`` and ``charts`` render the staff page. The server (``/curator``) and the CLI's kiosk
loop wire them in; this package sits between them and ``voice`` in the layering.
"""
