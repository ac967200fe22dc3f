"""Demo content for local runs and tests: a Frappe-compatible schema and a generated content tree.

Development only: not part of the `memora-cdn` distribution, never imported by workers.
`python -m memora_cdn_demo --help` loads it into a database.
"""
