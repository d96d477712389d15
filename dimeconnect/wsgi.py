"""WSGI entry point (gunicorn dimeconnect.wsgi).

The production checks run here too, so a server started without `manage.py serve` still refuses
to start without SECRET_KEY and FIELD_ENCRYPTION_KEYS.
"""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dimeconnect.settings")

application = get_wsgi_application()

from dimeconnect.startup import refuse_unsafe_start  # noqa: E402

refuse_unsafe_start()
