"""`python -m memora_cdn_demo ...`: load the demo content into a database."""
from memora_cdn_demo.content import main

raise SystemExit(main())
