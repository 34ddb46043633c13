"""The reconciliation reports (issue 13): see :mod:`reports.registry`; every report is
declared in :mod:`reports.catalog`."""

from reports import catalog as catalog
