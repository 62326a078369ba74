"""Timing constants of the supervisor (the seed's names and values) and of the control plane."""

DAQ_SUPERVISOR_LOOP_INTERVAL_SECONDS = 0.1
"""Time in seconds between supervisor loop iterations (the reconcile tick)."""

DAQ_SUPERVISOR_DEFAULT_RESTART_TIME_SECONDS = 2
"""Default time in seconds to wait before restarting a DAQ job."""

DAQ_SUPERVISOR_HEARTBEAT_MESSAGE_INTERVAL_SECONDS = 1
"""Time in seconds between sending supervisor heartbeat messages."""

DAQ_SUPERVISOR_STATS_MESSAGE_INTERVAL_SECONDS = 1
"""Time in seconds between sending supervisor stats messages."""

DAQ_SUPERVISOR_ROUTES_MESSAGE_INTERVAL_SECONDS = 0.1
"""Time in seconds between sending supervisor routes messages."""

DAQ_JOB_MARK_AS_ALIVE_TIME_SECONDS = 5
"""Time in seconds to mark a DAQ job as alive after it has been running for that long;
a crash after that resets the restart backoff."""

DAQ_JOB_QUEUE_ACTION_TIMEOUT = 0.02
"""Time in seconds to wait for a DAQ job to process a message."""

DAQ_JOB_STOP_GRACE_SECONDS = 5.0
"""After a stop request, how long ``start()`` may take to return before the run is ended by force."""

SUPERVISOR_CONFIG_FILE_NAME = "supervisor.toml"

SUPERVISOR_ID_ENV = "ENRGDAQ_SUPERVISOR_ID"
"""Set in the supervisor worker before its pool forks, so that tick tasks know their supervisor."""

SESSION_ENV = "ENRGDAQ_SESSION"
"""Set by ``enrgdaq up``: a supervisor that sees a new session starts from an empty registry."""

RUN_DIR_ENV = "ENRGDAQ_RUN_DIR"
REDIS_URL_ENV = "ENRGDAQ_REDIS_URL"
CONFIG_DIR_ENV = "ENRGDAQ_CONFIG_DIR"

SUPERVISOR_QUEUE = "supervisor"
"""The queue whose worker hosts the supervisor (and runs the beat ticks); on the wire it is
``supervisor@<node>`` (see :mod:`enrgdaq.control.queues`)."""

NODE_ENV = "ENRGDAQ_NODE"
"""The node (supervisor id) a worker or beat belongs to; default: the supervisor id of its
config directory (``ENRGDAQ_CONFIG_DIR``). Its queues are ``<queue>@<node>`` on the wire."""
