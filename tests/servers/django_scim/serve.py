"""Start a Django SCIM server on 127.0.0.1:PORT with its database in DIR.

    python serve.py PORT DIR TOKEN [PROJECT]

PROJECT is `scimtest` (django-scim2, the default) or `dss`
(django-scim2-server).

Requests are logged to stderr, one line each ("GET /scim/v2/Users HTTP/1.1" 200).
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
port, directory, token = sys.argv[1], sys.argv[2], sys.argv[3]
project = sys.argv[4] if len(sys.argv) > 4 else "scimtest"
os.environ.update(SCIMTEST_PORT=port, SCIMTEST_DIR=directory, SCIMTEST_TOKEN=token, DJANGO_SETTINGS_MODULE=f"{project}.settings")

import django  # noqa: E402
from django.core.management import call_command  # noqa: E402

django.setup()
call_command("migrate", verbosity=0)
call_command("runserver", f"127.0.0.1:{port}", use_reloader=False, use_threading=True, skip_checks=True)
