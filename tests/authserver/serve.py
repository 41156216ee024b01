"""Run the test authorization server: ``python -m tests.authserver.serve --port P --db PATH``."""

import argparse
import os
import sys


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--db", required=True)
    args = parser.parse_args(argv)

    os.environ["DJANGO_SETTINGS_MODULE"] = "tests.authserver.settings"
    os.environ["AUTHSERVER_DB"] = args.db
    os.environ.setdefault("AUTHSERVER_BASE_URL", f"http://127.0.0.1:{args.port}")

    import django

    django.setup()

    from django.core.management import call_command
    from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler
    from django.core.wsgi import get_wsgi_application

    from tests.authserver.views import ensure_default_users

    call_command("migrate", verbosity=0, interactive=False)
    ensure_default_users()

    class Server(ThreadedWSGIServer):
        # Benchmarks open 50+ connections at once; Django's default backlog is 10.
        request_queue_size = 128
        daemon_threads = True

    server = Server(("127.0.0.1", args.port), WSGIRequestHandler)
    server.set_app(get_wsgi_application())
    print(f"authserver listening on http://127.0.0.1:{args.port}", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
