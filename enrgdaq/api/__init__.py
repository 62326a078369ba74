"""The REST control API and the status page (FastAPI), served by ``enrgdaq api``.

``enrgdaq up`` runs it as one of its child processes, Compose as the ``api`` service. It binds
loopback by default; bound to anything else it requires a bearer token. Every endpoint calls
:class:`enrgdaq.control.operations.Operator`, the same surface the CLI uses.
"""

from enrgdaq.api.app import create_app

__all__ = ["create_app"]
