"""`python -m memora_cdn ...` is `python -m memora_cdn ...`: the operators' command line."""
from memora_cdn.ops.cli import main

raise SystemExit(main())
