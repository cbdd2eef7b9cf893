"""`python -m bot` runs the `roombot` command line."""

from bot.cli import main

raise SystemExit(main())
