"""The admin app for a production WSGI server: ``gunicorn admin.wsgi:app`` (radbill-web).

Settings come from the ``RADBILL_*`` environment (``/etc/radbill/radbill.env`` under
systemd), as for every other radbill process.
"""

from __future__ import annotations

from admin import create_app
from radbill.secure import private_umask, warn_if_exposed

private_umask()
app = create_app()
warn_if_exposed(app.config["RADBILL_SETTINGS"])
