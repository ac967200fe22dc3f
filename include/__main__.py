"""`python -m include ...` is `python -m include.cli ...`: the operators' command line."""
from include.cli import main

raise SystemExit(main())
