#!/usr/bin/env python3
# A no-op persistent worker for bench/pool.js: one JSON job a line in, one outcome a line out.
import json
import sys

for line in sys.stdin:
    job = json.loads(line)
    sys.stdout.write(json.dumps({"id": job["id"], "ok": True, "result": None}) + "\n")
    sys.stdout.flush()
