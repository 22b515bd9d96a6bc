"""moto's server, as `moto_server -H HOST -p PORT` runs it, with its requests handled one at
a time.

Real DynamoDB applies a conditional write or a transaction atomically; moto checks the
condition and writes in separate steps, so under concurrent requests (its server runs a
thread per connection) two writes conditioned on the same value can both succeed. The
conformance suite races writes on purpose (16 blocks of one carve, concurrent enrolls of
one host, concurrent reads of one campaign), and those cases then failed at random. One
lock around each request makes moto atomic as DynamoDB is, while connections stay
concurrent and kept alive.

Usage: python3 scripts/moto-server.py HOST PORT
"""

import os
import sys
import threading

from moto.server import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import run_simple


def main() -> None:
    host, port = sys.argv[1], int(sys.argv[2])
    os.environ.setdefault("MOTO_PORT", str(port))
    app = DomainDispatcherApplication(create_backend_app)
    lock = threading.Lock()

    def one_at_a_time(environ, start_response):
        with lock:
            # The whole answer is produced under the lock.
            return list(app(environ, start_response))

    run_simple(
        host,
        port,
        one_at_a_time,
        threaded=True,
        request_handler=MotoRequestHandler,
    )


if __name__ == "__main__":
    main()
