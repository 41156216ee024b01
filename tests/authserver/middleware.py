"""Injects provider failures in front of the token endpoint (``/o/token/``).

Faults are answered here, before DOT runs, so a faulted request never consumes an
authorization code or rotates a refresh token -- like a load balancer failing in front of a
real provider. The "timeout" mode is the exception: it delays, then lets DOT answer (the
provider did the work but the client gave up). "stall" delays, then answers 504 without reaching
DOT (a gateway that timed out in front of the provider). "no_refresh_token" also lets DOT answer,
then removes ``refresh_token`` from the JSON body of a successful response: a provider that grants
access but no refresh token (no ``offline_access`` scope, no ``prompt=consent``, or a client not
allowed the refresh_token grant). DOT did issue one, so the code is consumed all the same.
"""

import json
import time
from collections.abc import Callable
from urllib.parse import parse_qs

from django.http import HttpRequest, HttpResponse

from tests.authserver import state

TOKEN_PATH = "/o/token/"


def strip_refresh_token(response: HttpResponse) -> HttpResponse:
    """Drop `refresh_token` from a successful JSON token response, keeping everything else."""
    if response.status_code != 200:
        return response
    try:
        body = json.loads(response.content)
    except ValueError:
        return response
    if not isinstance(body, dict) or "refresh_token" not in body:
        return response
    del body["refresh_token"]
    response.content = json.dumps(body).encode()
    response["Content-Length"] = str(len(response.content))
    return response


def build_fault_response(mode: str) -> HttpResponse | None:
    if mode == "500":
        return HttpResponse("Internal Server Error", status=500, content_type="text/plain")
    if mode == "503_retry_after":
        response = HttpResponse("Service Unavailable", status=503, content_type="text/plain")
        response["Retry-After"] = "7"
        return response
    if mode == "429":
        response = HttpResponse("Too Many Requests", status=429, content_type="text/plain")
        response["Retry-After"] = "3"
        return response
    if mode == "garbage":
        # A 200 that is not JSON: what a captive portal or a misrouted proxy returns.
        return HttpResponse("<html>oops</html>", status=200, content_type="text/html")
    if mode == "html_400":
        body = "<html><body><h1>400 Bad Request</h1><p>Request rejected.</p></body></html>"
        return HttpResponse(body, status=400, content_type="text/html")
    return None


class TokenEndpointFaultMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path != TOKEN_PATH:
            return self.get_response(request)
        # request.body is cached, so DOT can still read the form afterwards.
        form = parse_qs(request.body.decode("utf-8", errors="replace"))
        grant_type = form.get("grant_type", [""])[0]
        fault, fault_delay, latency = state.record_token_call(grant_type=grant_type)
        if latency > 0:
            time.sleep(latency)
        if fault == "timeout":
            time.sleep(fault_delay)
        elif fault == "stall":
            time.sleep(fault_delay)
            return HttpResponse("Gateway Timeout", status=504, content_type="text/plain")
        elif fault == "no_refresh_token":
            return strip_refresh_token(self.get_response(request))
        elif fault is not None:
            response = build_fault_response(fault)
            if response is not None:
                return response
        return self.get_response(request)
