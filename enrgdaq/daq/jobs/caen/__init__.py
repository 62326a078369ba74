"""CAEN hardware jobs: digitizer, HV supply, N1081B and the toolbox, on the ``caen`` queue.

Nothing here imports a vendor binding: each job imports CAEN's Python package only when
a real device is opened, so ``enrgdaq check`` and the simulated devices work without it.
"""
