"""The ``sos-voice`` command: arguments, the whole configuration, the console view. The top of
the layering: it may import every package; none imports it."""
