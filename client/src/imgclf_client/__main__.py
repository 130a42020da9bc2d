"""`python -m imgclf_client`: the `classify` command."""

from .cli import main

raise SystemExit(main())
