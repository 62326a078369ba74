"""Real parts for the tests: redis-server, celery worker and beat subprocesses, config dirs."""
