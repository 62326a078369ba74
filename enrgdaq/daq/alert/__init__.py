"""Alerts: the message a job raises when something needs a person, and the jobs that deliver it."""
