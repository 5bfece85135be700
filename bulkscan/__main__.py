"""``python -m bulkscan``."""

from __future__ import annotations

import sys

from bulkscan.cli import main

sys.exit(main())
