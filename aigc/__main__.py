"""`python -m aigc ...`: the same command as the installed `aigc`."""
from aigc.cli import main

raise SystemExit(main())
