"""Real servers for the tests and benchmarks: RabbitMQ, SeaweedFS (S3), PostgreSQL, ``dagster dev``.

Dev-only: they start processes as root, switch users and walk ``/proc``, which an installed
package has no business doing, so they live here and not in the wheel. ``fixtures`` holds the
session fixtures (enabled by ``tests/conftest.py``); benchmarks put ``tests/`` on
``sys.path`` and import the same classes.
"""
