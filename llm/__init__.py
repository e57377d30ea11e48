"""Answerers for sos-voice: catalog-grounded, streamed text from the SOS model or the catalog."""
