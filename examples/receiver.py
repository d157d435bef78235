#!/usr/bin/env python3
"""A minimal processing endpoint for order-processor's HTTP processor (README, "A real
processing step"). Standard library only.

    PROCESSOR_SECRET=whsec_... python3 examples/receiver.py [PORT]

then start the service with PROCESSOR_URL=http://127.0.0.1:PORT/ and the same
PROCESSOR_SECRET. Port 0 picks a free one; the first line printed says which.
"""

import base64
import decimal
import hashlib
import hmac
import json
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SECRET = base64.b64decode(os.environ["PROCESSOR_SECRET"].removeprefix("whsec_"))
done = {}  # order id -> result; a real shop keeps this in its own database


def signed(headers, body):
    """The Standard Webhooks check: v1 HMAC-SHA256 over id.timestamp.body, fresh."""
    msg_id, timestamp = headers["webhook-id"], headers["webhook-timestamp"]
    if abs(time.time() - int(timestamp)) > 300:
        return False
    mac = hmac.new(SECRET, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256)
    expected = base64.b64encode(mac.digest()).decode()
    return any(
        hmac.compare_digest(signature[3:], expected)
        for signature in headers["webhook-signature"].split()
        if signature.startswith("v1,")
    )


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if not signed(self.headers, body):
            return self.answer(401, {"error": "bad signature"})
        # Amounts as exact decimals, never floats.
        order = json.loads(body, parse_float=decimal.Decimal)
        key = self.headers["Idempotency-Key"]  # the order id, the same on every attempt
        if key not in done:
            if order["total_amount"] > 10000:
                # A refusal: no attempt can succeed, so the order fails at once.
                return self.answer(422, {"error": "amount over the 10000 limit"})
            # The real work goes here (charge, reserve stock, hand to fulfilment). A
            # dependency that is down: answer 503, with Retry-After if you know when.
            done[key] = {"charge_id": "ch_" + key[:8], "attempt": order["attempt"]}
        # Done (now or on an earlier attempt): the object is kept as the order's result.
        self.answer(200, done[key])

    def answer(self, status, value):
        data = json.dumps(value).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


port = int(sys.argv[1]) if len(sys.argv) > 1 else 8080
server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
print(f"listening on 127.0.0.1:{server.server_port}", flush=True)
server.serve_forever()
