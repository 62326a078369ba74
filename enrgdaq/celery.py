"""The Celery application: ``celery -A enrgdaq worker|beat|flower`` finds it here.

Settings come from the ``celeryconfig`` module (the repository's top-level
``celeryconfig.py``, also installed with the package); ``ENRGDAQ_CELERY_CONFIG``
names another module.
"""

from __future__ import annotations

import os

from celery import Celery

app = Celery("enrgdaq")
app.config_from_object(os.environ.get("ENRGDAQ_CELERY_CONFIG", "celeryconfig"))

from enrgdaq.control import signals as _signals  # noqa: E402,F401  (connects the worker signal handlers)
from enrgdaq.control import tasks as _tasks  # noqa: E402,F401  (registers the tasks, explicitly)
from enrgdaq.control.bootstep import SupervisorStep  # noqa: E402

app.steps["worker"].add(SupervisorStep)

__all__ = ["app"]
