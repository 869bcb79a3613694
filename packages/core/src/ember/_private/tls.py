"""Optional TLS for every connection of a cluster (gRPC and HTTP), set by environment.

    EMBER_TLS_CERT   PEM certificate (chain) this process presents, as server and as client
    EMBER_TLS_KEY    its private key
    EMBER_TLS_CA     optional: PEM CA bundle. When set, TLS is *mutual*: servers require a
                     client certificate signed by it, clients verify servers against it
    EMBER_TLS_SERVER_NAME  optional: the name clients expect in server certificates, for
                     certificates that do not list the nodes' IPs as subject alt names

All processes of a cluster must agree: ``ember start --tls-cert/--tls-key/--tls-ca``
sets these for the processes it starts (they pass them on to their workers), and
drivers set them in their environment. Without EMBER_TLS_CA a client trusts the
cluster certificate itself (a self-signed certificate shared by all nodes).

Certificates are checked against the address dialled: give each node a
certificate whose subject alternative names hold its IP (``IP:10.0.0.5``), or
set EMBER_TLS_SERVER_NAME to a DNS name that all certificates carry.

:func:`check_transport` tells a client whose TLS settings do not match the
server's what to change, before gRPC would only say "unavailable".

>>> cfg = load()                     # None: plaintext
>>> server.add_secure_port("127.0.0.1:0", server_credentials(cfg))
"""
from __future__ import annotations

import ipaddress
import os
import socket
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping

if TYPE_CHECKING:
    import ssl

from ..exceptions import AuthenticationError

CERT_ENV = "EMBER_TLS_CERT"
KEY_ENV = "EMBER_TLS_KEY"
CA_ENV = "EMBER_TLS_CA"
SERVER_NAME_ENV = "EMBER_TLS_SERVER_NAME"
ENV_VARS = (CERT_ENV, KEY_ENV, CA_ENV, SERVER_NAME_ENV)

_SETTINGS_HINT = (f"set {CERT_ENV}, {KEY_ENV} (and {CA_ENV} if the cluster uses one) to the "
                  "files the cluster's processes were started with")


class TlsError(AuthenticationError, ConnectionError):
    """This process's TLS settings do not match the cluster's (or its certificate was refused).

    Example: ``TlsError("the server at 10.0.0.1:6379 expects TLS")``"""

    _default = "The TLS settings of this process do not match the cluster's."
    _hint = "See docs/architecture.md (Auth) for how a cluster's processes share TLS settings."


@dataclass(frozen=True)
class TlsConfig:
    """Certificates read from the files named by the environment."""

    cert_path: str
    key_path: str
    ca_path: str | None
    server_name: str | None
    cert: bytes = field(repr=False)
    key: bytes = field(repr=False)
    ca: bytes | None = field(repr=False)

    @property
    def mutual(self) -> bool:
        """Clients must present a certificate signed by the CA."""
        return self.ca is not None

    @property
    def trusted(self) -> bytes:
        """What clients verify servers against: the CA, else the cluster certificate."""
        return self.ca if self.ca is not None else self.cert


def config_from(env: Mapping[str, str]) -> TlsConfig | None:
    """The TLS configuration ``env`` describes (None: plaintext); ValueError if it is unusable.

    >>> config_from({}) is None
    True
    """
    cert, key, ca = (env.get(v, "").strip() for v in (CERT_ENV, KEY_ENV, CA_ENV))
    name = env.get(SERVER_NAME_ENV, "").strip() or None
    if not (cert or key or ca):
        if name:
            raise ValueError(f"{SERVER_NAME_ENV} is set but TLS is not: also set {CERT_ENV} "
                             f"and {KEY_ENV}, or unset {SERVER_NAME_ENV}")
        return None
    if not (cert and key):
        missing = KEY_ENV if cert else CERT_ENV if key else f"{CERT_ENV} and {KEY_ENV}"
        verb = "are" if " and " in missing else "is"
        raise ValueError(f"TLS needs both a certificate and its key: {missing} {verb} not set "
                         f"(set {CERT_ENV} and {KEY_ENV} together, {CA_ENV} optionally; or "
                         "unset them all for a plaintext cluster)")
    data = {var: _read(var, path) for var, path in ((CERT_ENV, cert), (KEY_ENV, key),
                                                    (CA_ENV, ca)) if path}
    import ssl    # here: a plaintext cluster (the default) never loads OpenSSL
    check = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        check.load_cert_chain(os.path.abspath(cert), os.path.abspath(key))
    except ssl.SSLError as e:
        raise ValueError(f"{CERT_ENV}={cert} and {KEY_ENV}=<its key file> do not form a "
                         f"usable certificate and key ({e.reason or e}): check that both are "
                         "PEM files and that the key belongs to the certificate") from None
    if ca:
        try:
            check.load_verify_locations(cadata=data[CA_ENV].decode("ascii", "replace"))
        except (ssl.SSLError, ValueError) as e:
            raise ValueError(f"{CA_ENV}={ca} holds no usable PEM certificate ({e}): point it "
                             "at the CA certificate that signed the cluster's certificates") \
                from None
    return TlsConfig(cert_path=os.path.abspath(cert), key_path=os.path.abspath(key),
                     ca_path=os.path.abspath(ca) if ca else None, server_name=name,
                     cert=data[CERT_ENV], key=data[KEY_ENV], ca=data.get(CA_ENV))


def _read(var: str, path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise ValueError(f"{var}={path}: cannot read it ({e.strerror or e}); point {var} at a "
                         "readable PEM file") from None


_cache_lock = threading.Lock()
_cache: dict[tuple[str, ...], TlsConfig | None] = {}


def load() -> TlsConfig | None:
    """This process's TLS configuration from its environment (files read once), or None.

    >>> load() is None          # no EMBER_TLS_* set
    True
    """
    key = tuple(os.environ.get(v, "") for v in ENV_VARS)
    with _cache_lock:
        if key not in _cache:
            _cache[key] = config_from(os.environ)
        return _cache[key]


# ---------------------------------------------------------------- gRPC

def server_credentials(cfg: TlsConfig) -> Any:
    """Server credentials; with a CA, clients without a certificate it signed are refused."""
    import grpc
    return grpc.ssl_server_credentials([(cfg.key, cfg.cert)], root_certificates=cfg.ca,
                                       require_client_auth=cfg.mutual)


def channel_credentials(cfg: TlsConfig) -> Any:
    """Client credentials: verify the server, and present our certificate (mutual TLS)."""
    import grpc
    return grpc.ssl_channel_credentials(root_certificates=cfg.trusted, private_key=cfg.key,
                                        certificate_chain=cfg.cert)


def channel_options(cfg: TlsConfig) -> list[tuple[str, Any]]:
    """Extra channel options: the expected server name, when certificates do not carry IPs."""
    return [("grpc.ssl_target_name_override", cfg.server_name)] if cfg.server_name else []


# ---------------------------------------------------------------- HTTP servers and clients

def server_ssl_context(cfg: TlsConfig) -> ssl.SSLContext:
    """An ``ssl.SSLContext`` for an HTTP server of the cluster (dashboard, metrics, jobs).

    >>> uvicorn.run(app, ssl=...)  # or: HTTPServer(...).socket = ctx.wrap_socket(sock, ...)
    """
    import ssl
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cfg.cert_path, cfg.key_path)
    if cfg.ca is not None:
        ctx.load_verify_locations(cadata=cfg.ca.decode("ascii", "replace"))
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def wrap_http_server(server: Any, cfg: TlsConfig | None = None) -> bool:
    """Make a ``socketserver``-style HTTP server (``http.server``) speak only TLS when this
    process has EMBER_TLS_* set; True if it now does. Call before ``serve_forever``.

    The handshake runs in the thread that handles the connection (on its first
    read), not in the accepting loop, so a slow client stalls no one else.

    >>> server = ThreadingHTTPServer((ip, port), Handler); wrap_http_server(server)
    """
    cfg = cfg if cfg is not None else load()
    if cfg is None:
        return False
    server.socket = server_ssl_context(cfg).wrap_socket(
        server.socket, server_side=True, do_handshake_on_connect=False)
    return True


def client_ssl_context(cfg: TlsConfig) -> ssl.SSLContext:
    """An ``ssl.SSLContext`` for talking to a cluster's TLS servers (as gRPC does)."""
    import ssl
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(cadata=cfg.trusted.decode("ascii", "replace"))
    # gRPC (BoringSSL) accepts the cluster certificate itself as trust anchor even
    # when a CA signed it; do the same.
    ctx.verify_flags |= getattr(ssl, "VERIFY_X509_PARTIAL_CHAIN", 0)
    ctx.load_cert_chain(cfg.cert_path, cfg.key_path)
    return ctx


# ---------------------------------------------------------------- exposure

def is_loopback(ip: str) -> bool:
    """>>> is_loopback("127.0.0.1"), is_loopback("10.0.0.1")
    (True, False)"""
    try:
        return ipaddress.ip_address(ip.strip("[]")).is_loopback
    except ValueError:
        return ip == "localhost"


def exposure_warning(ip: str, cfg: TlsConfig | None) -> str | None:
    """The warning a head listening on ``ip`` deserves, or None.

    >>> exposure_warning("127.0.0.1", None) is None
    True
    """
    if cfg is not None or is_loopback(ip):
        return None
    return (f"the cluster listens on {ip} without TLS: its token and all data (task "
            "arguments, results, objects) cross the network in the clear. Start it with "
            f"--tls-cert/--tls-key/--tls-ca (or {CERT_ENV}/{KEY_ENV}/{CA_ENV}) on every "
            "node, or keep it on a trusted network")


# ---------------------------------------------------------------- diagnosing a mismatch

_H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"


def _is_h2_settings(data: bytes) -> bool:
    # An HTTP/2 server answers the preface with a SETTINGS frame (type 4).
    return len(data) >= 9 and data[3] == 4


def verdict(address: str, cfg: TlsConfig | None, outcome: str, detail: str = "") -> str | None:
    """What is wrong, given how a probe of ``address`` went; None when nothing is (known) wrong.

    ``outcome``: ``"h2"`` (an HTTP/2 server answered), ``"closed"`` (it hung up
    without answering), ``"not-tls"`` (our TLS handshake met plaintext),
    ``"bad-server-cert"`` (its certificate did not verify; ``detail`` says why),
    or ``"unknown"``.

    >>> verdict("1.2.3.4:5", None, "closed")[:40]
    'the server at 1.2.3.4:5 closed the conne'
    """
    if outcome == "closed" and cfg is None:
        return (f"the server at {address} closed the connection without answering: the "
                f"cluster uses TLS and this process does not ({CERT_ENV} is not set): "
                + _SETTINGS_HINT)
    if outcome == "closed" and cfg is not None:
        return (f"the server at {address} refused this process's client certificate "
                f"({CERT_ENV}={cfg.cert_path}): the cluster uses mutual TLS and only accepts "
                f"certificates signed by its CA; use a certificate its CA signed "
                f"({_SETTINGS_HINT})")
    if outcome == "not-tls" and cfg is not None:
        return (f"the server at {address} does not speak TLS, but this process has "
                f"{CERT_ENV} set: the cluster runs without TLS; unset {CERT_ENV}, {KEY_ENV} "
                f"and {CA_ENV} to talk to it, or restart the cluster with TLS")
    if outcome == "bad-server-cert" and cfg is not None:
        against = f"{CA_ENV}={cfg.ca_path}" if cfg.ca_path else f"{CERT_ENV}={cfg.cert_path}"
        return (f"the certificate of the server at {address} did not verify against "
                f"{against} ({detail}): use the CA that signed the cluster's certificates, "
                f"and certificates that list each node's IP as a subject alternative name "
                f"(or set {SERVER_NAME_ENV} to a name they carry)")
    return None


def probe(address: str, cfg: TlsConfig | None, timeout: float = 5.0) -> tuple[str, str]:
    """Open one connection to ``address`` as a gRPC client with ``cfg`` would; see :func:`verdict`."""
    import ssl
    host, _, port = address.rpartition(":")
    host = host.strip("[]")
    try:
        sock = socket.create_connection((host, int(port)), timeout=timeout)
    except OSError as e:
        return "unknown", str(e)
    try:
        sock.settimeout(timeout)
        if cfg is not None:
            ctx = client_ssl_context(cfg)
            ctx.set_alpn_protocols(["h2"])
            try:
                sock = ctx.wrap_socket(sock, server_hostname=cfg.server_name or host)
            except ssl.SSLCertVerificationError as e:
                return "bad-server-cert", str(e.verify_message or e.reason or e)
            except ssl.SSLError as e:
                if "WRONG_VERSION_NUMBER" in str(e) or "RECORD_LAYER" in str(e):
                    return "not-tls", str(e)
                return "unknown", str(e)
        sock.sendall(_H2_PREFACE)
        try:
            data = sock.recv(64)
        except (ConnectionResetError, ssl.SSLError):
            return "closed", ""
        except OSError as e:
            return "unknown", str(e)
        if not data:
            return "closed", ""
        return ("h2", "") if _is_h2_settings(data) else ("unknown", "not HTTP/2")
    except OSError as e:
        return "unknown", str(e)
    finally:
        sock.close()


def check_transport(address: str, timeout: float = 5.0) -> None:
    """Raise :class:`TlsError` saying what to change when this process's TLS settings and
    the server's at ``address`` do not match (or its certificate is refused).

    >>> check_transport("127.0.0.1:6379")     # before the first RPC to a cluster
    """
    cfg = load()
    outcome, detail = probe(address, cfg, timeout)
    problem = verdict(address, cfg, outcome, detail)
    if problem is not None:
        raise TlsError(problem)
