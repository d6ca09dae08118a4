"""On-demand jobs, run by the worker beside exports: an export job writes a project's endpoints,
users or event counts to an object store in pieces; an import job reads endpoint definitions
from one.

- ``shapes.py``: an endpoint as Pinpoint's export files hold it, and the CSV columns of both;
- ``plan.py``: what an export job writes, taken as a snapshot when it is planned;
- ``pieces.py``: encoding and writing one piece, reading and parsing one import object;
- ``runner.py``: the loop that plans, leases, runs and finishes jobs.
"""
