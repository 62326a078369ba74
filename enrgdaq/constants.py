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
