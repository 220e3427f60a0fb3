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
