"""The WebSocket service (``sos-voice --serve``): OpenAI Realtime events over a WebSocket.

See docs/protocol.md for the wire protocol and :mod:`server.app` for the entry point.
"""

from server.app import Server, serve
from server.config import ServerConfig

__all__ = ["Server", "ServerConfig", "serve"]
