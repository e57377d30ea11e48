"""Realtime side of sos-voice: audio -> events -> text -> audio."""
