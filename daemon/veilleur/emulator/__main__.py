"""``python -m veilleur.emulator``: run the LookupEvents emulator in the foreground."""

from veilleur.emulator.cloudtrail import main

raise SystemExit(main())
