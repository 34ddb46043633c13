"""radbill: AAA backend and billing policy engine for Internet service providers.

This package is the composition root: configuration, database wiring, audit log and the CLI.
The domain lives in the sibling packages (`billing`, `radius`).
"""

__version__ = "0.1.0"
