"""Settings for a throwaway django-scim2-server server (tests only).

Users and groups are Django's own auth.User and auth.Group, which is what the
package serves by default; only the access check is ours (dss.auth)."""

import os

BASE = os.environ["SCIMTEST_DIR"]

SECRET_KEY = "tests-only"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth", "django_scim2_server"]
MIDDLEWARE = []
ROOT_URLCONF = "dss.urls"
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": os.path.join(BASE, "django-scim2-server.sqlite3")}}
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
USE_TZ = True
SCIM2_SERVER_AUTH_CHECK = "dss.auth.bearer_token"
LOGGING = {"version": 1, "disable_existing_loggers": False}
