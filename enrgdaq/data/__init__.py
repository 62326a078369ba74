"""The data plane: bulk payloads in shared-memory rings, read zero-copy as Arrow.

A producing job owns one ring (a file in the supervisor's run directory,
mapped by the producer and by every consumer). ZMQ carries only a wake-up
naming the ring; consumers read from their own cursor, so a dropped wake-up
or a restarted consumer loses nothing.
"""
