"""Signs or verifies one Standard Webhooks message with the official Python
library, for tests/python_interop.rs. Reads a JSON request on stdin, writes a
JSON answer on stdout:

  {"op": "verify", "secrets": [...], "headers": {...}, "body": "..."}
      -> {"verified": [true | "<why not>", ...]}   (one entry per secret)
  {"op": "sign", "secret": "...", "id": "...", "timestamp": 123, "body": "..."}
      -> {"signature": "v1,..."}
"""

import json
import sys
from datetime import datetime, timezone

from standardwebhooks.webhooks import Webhook, WebhookVerificationError


def verify(request):
    body = request["body"].encode()
    outcomes = []
    for secret in request["secrets"]:
        try:
            Webhook(secret).verify(body, request["headers"], json_parse=False)
            outcomes.append(True)
        except WebhookVerificationError as error:
            outcomes.append(str(error))
    return {"verified": outcomes}


def sign(request):
    timestamp = datetime.fromtimestamp(request["timestamp"], tz=timezone.utc)
    signature = Webhook(request["secret"]).sign(request["id"], timestamp, request["body"].encode())
    return {"signature": signature}


def main():
    request = json.load(sys.stdin)
    answer = {"verify": verify, "sign": sign}[request["op"]](request)
    json.dump(answer, sys.stdout)


if __name__ == "__main__":
    main()
