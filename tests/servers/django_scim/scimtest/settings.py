"""Settings for a throwaway django-scim2 server (tests only)."""

import os

BASE = os.environ["SCIMTEST_DIR"]
PORT = os.environ["SCIMTEST_PORT"]

SECRET_KEY = "tests-only"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth", "django_scim", "scimtest"]
MIDDLEWARE = ["scimtest.auth.BearerToken", "django_scim.middleware.SCIMAuthCheckMiddleware"]
ROOT_URLCONF = "scimtest.urls"
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": os.path.join(BASE, "django-scim.sqlite3")}}
AUTH_USER_MODEL = "scimtest.User"
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
USE_TZ = True
SCIM_SERVICE_PROVIDER = {
    "NETLOC": f"127.0.0.1:{PORT}",
    "SCHEME": "http",
    "GROUP_MODEL": "scimtest.models.Group",
    "AUTHENTICATION_SCHEMES": [
        {"type": "oauthbearertoken", "name": "OAuth Bearer Token", "description": "A bearer token"},
    ],
}
LOGGING = {"version": 1, "disable_existing_loggers": False}
