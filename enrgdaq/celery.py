"""The Celery application: ``celery -A enrgdaq worker|beat|flower`` finds it here.

This module is the only place that wires the app: settings from the
``celeryconfig`` module (the repository's top-level ``celeryconfig.py``, also
installed with the package; ``ENRGDAQ_CELERY_CONFIG`` names another one), the
tasks, the worker signal handlers and the supervisor's bootstep. Nothing it
wires imports it back.
"""

from __future__ import annotations

import os

from celery import Celery

from enrgdaq.control.bootstep import SupervisorStep
from enrgdaq.control.signals import connect_signals
from enrgdaq.control.tasks import register_tasks

app = Celery("enrgdaq")
app.config_from_object(os.environ.get("ENRGDAQ_CELERY_CONFIG", "celeryconfig"))
register_tasks(app)
connect_signals(app)
app.steps["worker"].add(SupervisorStep)

__all__ = ["app"]
