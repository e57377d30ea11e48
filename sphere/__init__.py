"""Following the sphere and driving it: the SOS Automation Interface (TCP port 2468).

Sits between ``server`` and ``voice`` in the layering: it reads the voice package's
:class:`voice.exhibit.Exhibit` and wraps an answerer, and the voice package never imports it.
"""
