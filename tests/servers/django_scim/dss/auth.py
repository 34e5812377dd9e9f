"""Bearer-token access check: the one token given on the command line."""

import os

EXPECTED = "Bearer " + os.environ["SCIMTEST_TOKEN"]


def bearer_token(request):
    return request.META.get("HTTP_AUTHORIZATION") == EXPECTED
