"""``python -m app.cli``: the same as the installed ``nnwatch``."""

from app.cli.main import main

raise SystemExit(main())
