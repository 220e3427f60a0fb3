"""Real servers on loopback for the remote-read tests: HTTP(S) with Range support, and moto's S3."""

from __future__ import annotations

import datetime
import ipaddress
import os
import re
import ssl
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar


class RangeHandler(SimpleHTTPRequestHandler):
    """Serves files with ``Range: bytes=a-b`` (206), and a few failure modes keyed by path prefix."""

    ignore_range = False
    requests_seen: ClassVar[list[str]] = []

    def log_message(self, *args):  # keep test output clean
        pass

    def do_HEAD(self):
        self.do_GET(head=True)

    def do_GET(self, head: bool = False):
        type(self).requests_seen.append(self.path)
        if self.path.startswith("/private/") and self.headers.get("Authorization") != "Bearer good-token":
            self.send_error(401, "Earthdata Login required")
            return
        if self.path.startswith("/broken/"):
            self.send_error(500, "server fault")
            return
        path = Path(self.translate_path(self.path.replace("/private/", "/", 1)))
        if not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        match = re.fullmatch(r"bytes=(\d+)-(\d+)", self.headers.get("Range", ""))
        if match and not self.ignore_range:
            start, stop = int(match[1]), min(int(match[2]), len(data) - 1)
            if start >= len(data):
                self.send_error(416)
                return
            body = data[start : stop + 1]
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{stop}/{len(data)}")
        else:
            body = data
            self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        if not head:
            self.wfile.write(body)


class NoRangeHandler(RangeHandler):
    ignore_range = True


class Behaviour:
    """What a :class:`ScriptedHandler` server does: latency, faults, and what it counted.

    ``fail_every``: every n-th request answers 503; ``reset_every``: every n-th request sends half
    its body and drops the connection; ``stall_every``: every n-th request waits ``stall`` seconds
    before answering; ``short_every``: every n-th request sends fewer bytes than its headers promise
    then closes; ``wrong_range_every``: every n-th request answers another range than asked.
    """

    def __init__(self, latency: float = 0.0, **faults: float):
        self.latency = latency
        self.fail_every = int(faults.pop("fail_every", 0))
        self.reset_every = int(faults.pop("reset_every", 0))
        self.stall_every = int(faults.pop("stall_every", 0))
        self.stall = float(faults.pop("stall", 0.0))
        self.short_every = int(faults.pop("short_every", 0))
        self.wrong_range_every = int(faults.pop("wrong_range_every", 0))
        self.trickle = float(faults.pop("trickle", 0.0))
        self.login_page = bool(faults.pop("login_page", False))
        if faults:
            raise TypeError(f"unknown faults {sorted(faults)}")
        self.lock = threading.Lock()
        self.requests = 0
        self.bytes_sent = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.ranges: list[tuple[int, int]] = []
        self.authorization: list[str | None] = []

    def start(self) -> int:
        with self.lock:
            self.requests += 1
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            return self.requests

    def done(self, sent: int) -> None:
        with self.lock:
            self.in_flight -= 1
            self.bytes_sent += sent

    def every(self, n: int, number: int) -> bool:
        return n > 0 and number % n == 0


class ScriptedHandler(SimpleHTTPRequestHandler):
    """Range server with latency and faults from the server's :class:`Behaviour` (``server.behaviour``)."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_HEAD(self):
        self.do_GET(head=True)

    def do_GET(self, head: bool = False):
        import time

        plan: Behaviour = self.server.behaviour  # type: ignore[attr-defined]
        number = plan.start()
        sent = 0
        try:
            plan.authorization.append(self.headers.get("Authorization"))
            time.sleep(plan.latency)
            if plan.every(plan.stall_every, number):
                time.sleep(plan.stall)
            if plan.every(plan.fail_every, number):
                self.send_error(503, "slow down")
                return
            if plan.login_page:  # what Earthdata Login does without a token: redirect to a login form
                if not self.path.startswith("/oauth/"):
                    self.send_response(302)
                    self.send_header("Location", "/oauth/authorize?client_id=x")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                page = b"<!DOCTYPE html><html><body><form>Earthdata Login</form></body></html>"
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(page)))
                self.end_headers()
                self.wfile.write(page)
                sent = len(page)
                return
            path = Path(self.translate_path(self.path.split("?", 1)[0]))
            if not path.is_file():
                self.send_error(404)
                return
            size = path.stat().st_size
            match = re.fullmatch(r"bytes=(\d+)-(\d+)", self.headers.get("Range", ""))
            start, stop = (int(match[1]), min(int(match[2]), size - 1)) if match else (0, size - 1)
            if start >= size:
                self.send_error(416)
                return
            if plan.every(plan.wrong_range_every, number) and match:
                start, stop = max(0, start - 1), max(0, stop - 1)
            with plan.lock:
                plan.ranges.append((start, stop + 1))
            self.send_response(206 if match else 200)
            if match:
                self.send_header("Content-Range", f"bytes {start}-{stop}/{size}")
            self.send_header("Content-Length", str(stop - start + 1))
            self.send_header("Accept-Ranges", "bytes")
            self.end_headers()
            if head:
                return
            cut = plan.every(plan.reset_every, number) or plan.every(plan.short_every, number)
            if not cut and not plan.trickle:  # as nginx or S3's front ends: the kernel sends the file's pages
                with path.open("rb") as f:
                    sent = self.connection.sendfile(f, start, stop - start + 1)
                return
            with path.open("rb") as f:
                f.seek(start)
                body = f.read(stop - start + 1)
            if cut:
                self.wfile.write(body[: len(body) // 2])
                self.wfile.flush()
                sent = len(body) // 2
                if plan.every(plan.reset_every, number):
                    import socket
                    import struct

                    # RST, not FIN: the client sees a connection reset mid-body
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.close_connection = True
                self.connection.close()
                return
            if plan.trickle:
                for i in range(len(body)):
                    self.wfile.write(body[i : i + 1])
                    self.wfile.flush()
                    time.sleep(plan.trickle)
                    sent += 1
                return
        except (BrokenPipeError, ConnectionResetError, OSError):
            self.close_connection = True
        finally:
            plan.done(sent)


def serve_scripted(directory: Path, behaviour: Behaviour):
    """A threaded loopback server for ``directory`` that behaves as ``behaviour`` says."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(ScriptedHandler, directory=str(directory)))
    server.daemon_threads = True
    server.behaviour = behaviour  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def serve_http(directory: Path, handler=RangeHandler, certfile: Path | None = None):
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(handler, directory=str(directory)))
    if certfile is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(certfile)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    scheme = "https" if certfile else "http"
    return server, f"{scheme}://127.0.0.1:{server.server_address[1]}"


def self_signed_cert(directory: Path) -> tuple[Path, Path]:
    """A loopback CA and a 127.0.0.1 server certificate signed by it, made on the spot (no network).

    Returns (server PEM with certificate and key, CA PEM for clients to trust).
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)

    def build(subject, issuer, public_key, signing_key, ca: bool):
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if not ca:
            san = x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
            builder = builder.add_extension(san, critical=False)
        return builder.sign(signing_key, hashes.SHA256())

    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "is2grid test CA")])
    ca = build(ca_name, ca_name, ca_key.public_key(), ca_key, ca=True)
    leaf_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    leaf = build(leaf_name, ca_name, key.public_key(), ca_key, ca=False)
    server, authority = directory / "loopback.pem", directory / "loopback-ca.pem"
    server.write_bytes(
        leaf.public_bytes(serialization.Encoding.PEM)
        + key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    authority.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    return server, authority


def start_moto():
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    return server, f"http://{host}:{port}"


def fake_aws_env(monkeypatch):
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-west-2",
    }.items():
        monkeypatch.setenv(key, value)
    os.environ.pop("AWS_PROFILE", None)
