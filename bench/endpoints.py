#!/usr/bin/env python3
"""How fast a Service follows its pods, measured from outside through the Service under load.

    python3 bench/endpoints.py SOCKET URL SELECTOR [ROUNDS]

SOCKET is berth's API socket, URL the Service (its node port, say), SELECTOR the pods' label
selector (app=web). The pods must answer with their own name (the bench's httpd serves
`hostname`). Four clients request URL without pause, each request a new connection, and
record which pod answered and when. Each round deletes one pod:

- deletion -> no new connections: from the delete request until the last request that pod
  answered, counted from when that request started (so when its connection was opened);
- Ready -> traffic: the Deployment replaces the pod; from the moment the API's watch shows
  the replacement Ready until the first request it answered.

Prints every sample and the medians. Needs the daemon running with the Service and at least
two ready pods. Only the standard library.
"""

import http.client
import json
import socket
import statistics
import sys
import threading
import time
import urllib.parse


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout=30):
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.path)


def api(sock, method, path):
    conn = UnixHTTPConnection(sock)
    conn.request(method, path)
    response = conn.getresponse()
    body = response.read()
    if response.status >= 300:
        raise RuntimeError(f"{method} {path}: {response.status} {body[:200]!r}")
    return json.loads(body) if body else None


def ready(pod):
    if pod.get("metadata", {}).get("deletionTimestamp"):
        return False
    for condition in pod.get("status", {}).get("conditions", []) or []:
        if condition.get("type") == "Ready":
            return condition.get("status") == "True"
    return False


class Watcher(threading.Thread):
    """Follows the pods and records when each one was first seen Ready (monotonic clock)."""

    def __init__(self, sock, selector):
        super().__init__(daemon=True)
        self.sock, self.selector = sock, selector
        self.ready_at = {}
        self.lock = threading.Lock()

    def run(self):
        query = urllib.parse.urlencode({"watch": "true", "labelSelector": self.selector})
        # No timeout: the watch may stay quiet for long.
        conn = UnixHTTPConnection(self.sock, timeout=None)
        conn.request("GET", f"/api/v1/namespaces/default/pods?{query}")
        response = conn.getresponse()
        buffer = b""
        while True:
            chunk = response.read1(65536)
            if not chunk:
                return
            buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                if not line.strip():
                    continue
                event = json.loads(line)
                pod = event.get("object", {})
                name = pod.get("metadata", {}).get("name")
                if name and ready(pod):
                    with self.lock:
                        self.ready_at.setdefault(name, time.monotonic())


def conntrack(port):
    """The host's conntrack entries of a client port, when the kernel shows them."""
    try:
        with open("/proc/net/nf_conntrack") as table:
            lines = [line.strip() for line in table if f"sport={port} " in line]
    except OSError:
        return ""
    return "".join(f"\n    {line}" for line in lines)


class Load:
    """Clients that GET the URL without pause; records (started, name of the answering pod)."""

    def __init__(self, url, clients=4):
        parsed = urllib.parse.urlparse(url)
        self.address = (parsed.hostname, parsed.port or 80)
        self.path = parsed.path or "/"
        self.answers = []
        self.errors = 0
        self.failures = []  # (started, what), the first few
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self.client, daemon=True) for _ in range(clients)]
        for thread in self.threads:
            thread.start()

    def client(self):
        request = f"GET {self.path} HTTP/1.0\r\n\r\n".encode()
        while not self.stop.is_set():
            started = time.monotonic()
            port = None
            try:
                with socket.create_connection(self.address, timeout=5) as conn:
                    port = conn.getsockname()[1]
                    conn.sendall(request)
                    data = b""
                    while True:
                        chunk = conn.recv(4096)
                        if not chunk:
                            break
                        data += chunk
                head, _, body = data.partition(b"\r\n\r\n")
                if not head.split(b"\r\n", 1)[0].endswith(b"200 OK"):
                    raise RuntimeError(head[:40])
                with self.lock:
                    self.answers.append((started, body.decode().strip()))
            except Exception as err:  # noqa: BLE001 - counted, the run goes on
                with self.lock:
                    self.errors += 1
                    if len(self.failures) < 5:
                        self.failures.append((started, f"{type(err).__name__}: {err}, port {port}" + conntrack(port)))

    def finish(self):
        self.stop.set()
        for thread in self.threads:
            thread.join()


def main():
    sock, url, selector = sys.argv[1], sys.argv[2], sys.argv[3]
    rounds = int(sys.argv[4]) if len(sys.argv) > 4 else 5
    query = urllib.parse.urlencode({"labelSelector": selector})
    watcher = Watcher(sock, selector)
    watcher.start()
    load = Load(url)
    begun = time.monotonic()
    time.sleep(1)
    gone, joined = [], []
    for _ in range(rounds):
        pods = api(sock, "GET", f"/api/v1/namespaces/default/pods?{query}")["items"]
        with watcher.lock:
            before = {p["metadata"]["name"] for p in pods} | set(watcher.ready_at)
        victim = sorted(p["metadata"]["name"] for p in pods if ready(p))[0]
        deleted_at = time.monotonic()
        print(f"deleting {victim} at {deleted_at - begun:.3f} s")
        api(sock, "DELETE", f"/api/v1/namespaces/default/pods/{victim}")
        # The replacement: a pod that was not there before, Ready and answering.
        deadline = time.monotonic() + 60
        newcomer = None
        while time.monotonic() < deadline:
            with watcher.lock:
                fresh = [n for n in watcher.ready_at if n not in before]
            if fresh:
                newcomer = fresh[0]
                with load.lock:
                    if any(name == newcomer for _, name in load.answers):
                        break
            time.sleep(0.05)
        if newcomer is None:
            sys.exit(f"no replacement of {victim} became Ready within 60 s")
        time.sleep(2)  # let the victim's last answers and the newcomer's first ones land
        with load.lock:
            answers = list(load.answers)
        last = max((s for s, n in answers if n == victim and s >= deleted_at), default=deleted_at)
        first = min(s for s, n in answers if n == newcomer)
        gone.append((last - deleted_at) * 1000)
        joined.append((first - watcher.ready_at[newcomer]) * 1000)
        print(
            f"deleted {victim}: last new connection it answered {gone[-1]:7.1f} ms after the delete;"
            f"  {newcomer} Ready -> first answer {joined[-1]:7.1f} ms"
        )
    load.finish()
    for started, what in load.failures:
        print(f"failed: {what} (started {started - begun:.3f} s into the run)")
    print(
        f"median: deletion -> no new connections {statistics.median(gone):.1f} ms, "
        f"Ready -> traffic {statistics.median(joined):.1f} ms "
        f"({len(load.answers)} requests, {load.errors} failed)"
    )


if __name__ == "__main__":
    main()
