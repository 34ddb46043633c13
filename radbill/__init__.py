"""radbill: AAA backend and billing policy engine for Internet service providers.

This package is the composition root: configuration, database wiring, audit log and the CLI.
The domain lives in the sibling packages (`billing`, `radius`).
"""

# The release; CHANGELOG.md's newest entry names the same (a test checks).
__version__ = "0.2.0"
