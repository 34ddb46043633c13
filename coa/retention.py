"""Retention of the enforcement part: attempts (every message to a NAS) older than the
cut-off. The requests themselves are billing's (``enforcement_requests``) and stay."""

from __future__ import annotations

from coa.models import EnforcementAttempt
from radbill.pruning import Prunable

ATTEMPTS = Prunable("enforcement_attempts", EnforcementAttempt.id, EnforcementAttempt.at,
                    lambda before: EnforcementAttempt.at < before)
"""Enforcement attempts made before the cut-off."""
