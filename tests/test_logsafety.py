import logging

from tokenadmin.logsafety import RedactSecretsFilter, redact


def test_it_redacts_reauth_link_tokens_and_oauth_query_values():
    line = (
        'GET /reauth/eyJhbGciOi.abc-DEF_12:xyz/ 410 "http://x/oauth/callback/'
        '?code=SECRETCODE&state=SECRETSTATE&iss=https%3A%2F%2Fidp"'
    )
    clean = redact(line)
    assert "eyJhbGciOi" not in clean and "SECRETCODE" not in clean and "SECRETSTATE" not in clean
    assert "/reauth/[redacted]/" in clean
    assert "code=[redacted]&state=[redacted]&iss=https" in clean


def test_it_leaves_ordinary_lines_alone():
    line = "GET /api/v1/connections/analytics/token?min_ttl=600 200"
    assert redact(line) == line


def test_the_filter_rewrites_formatted_messages():
    record = logging.LogRecord(
        "django.request", logging.WARNING, __file__, 1, "Gone: %s", ("/reauth/SIGNED/",), None
    )
    assert RedactSecretsFilter().filter(record) is True
    assert record.getMessage() == "Gone: /reauth/[redacted]/"
