"""A small four-stage pipeline config used by store-level tests."""

SNAPSHOT = """\
pipeline: demo
version: "1"
routes:
  - name: ingest
    queue: demo.ingest
    forward_to: enrich
    stages:
      - name: fetch
      - name: parse
  - name: enrich
    queue: demo.enrich
    stages:
      - name: annotate
      - name: index
"""
