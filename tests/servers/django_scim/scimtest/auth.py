"""Bearer-token authentication: the one token given on the command line."""

import os


class _Client:
    is_authenticated = True
    is_active = True


class BearerToken:
    def __init__(self, get_response):
        self.get_response = get_response
        self.expected = "Bearer " + os.environ["SCIMTEST_TOKEN"]

    def __call__(self, request):
        if request.META.get("HTTP_AUTHORIZATION") == self.expected:
            request.user = _Client()
        return self.get_response(request)
