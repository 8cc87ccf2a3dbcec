"""The endpoint's message security: Basic256Sha256 Sign / SignAndEncrypt with a server certificate,
SecurityPolicy None only when asked for, and which client certificates are trusted.

The certificate folder (``--certificate-dir``) holds, unless the lab gives its own certificate:

    server-cert.der, server-key.pem   self-signed, made on first start (and again when expired)
    trusted/                          client certificates (DER or PEM) this endpoint accepts
    rejected/                         certificates of clients that were refused, to move to trusted/
"""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from asyncua import Server, ua
from asyncua.crypto import uacrypto
from asyncua.crypto.cert_gen import setup_self_signed_certificate
from asyncua.crypto.permission_rules import SimpleRoleRuleset
from asyncua.crypto.truststore import TrustStore
from asyncua.crypto.validator import CertificateValidator, CertificateValidatorOptions
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID

from ui.endpoints.opcua.errors import EndpointError

log = logging.getLogger(__name__)


class Policy(StrEnum):
    SIGN_ENCRYPT = "sign-encrypt"  # Basic256Sha256, SignAndEncrypt
    SIGN = "sign"  # Basic256Sha256, Sign
    NONE = "none"  # no message security: passwords cross the network in plain text


POLICY_TYPES = {
    Policy.SIGN_ENCRYPT: ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt,
    Policy.SIGN: ua.SecurityPolicyType.Basic256Sha256_Sign,
    Policy.NONE: ua.SecurityPolicyType.NoSecurity,
}
DEFAULT_POLICIES = (Policy.SIGN_ENCRYPT, Policy.SIGN)


class TrustClients(StrEnum):
    LISTED = "listed"  # only client certificates in <certificate dir>/trusted
    ALL = "all"  # any well-formed client certificate (users still sign in with their password)


@dataclass(frozen=True)
class Security:
    policies: tuple[Policy, ...] = DEFAULT_POLICIES
    certificate_dir: Path = Path("opcua-pki")
    certificate: Path | None = None  # the lab's own server certificate (DER or PEM) and its key
    private_key: Path | None = None
    trust_clients: TrustClients = TrustClients.LISTED

    @property
    def needs_certificate(self) -> bool:
        return any(p != Policy.NONE for p in self.policies)


def parse_policies(text: str) -> tuple[Policy, ...]:
    """``sign-encrypt,sign[,none]`` as policies; EndpointError naming the choices otherwise."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    choices = ", ".join(p.value for p in Policy)
    if not names:
        raise EndpointError(f"--security is empty; give one or more of {choices}, e.g. sign-encrypt,sign")
    try:
        return tuple(dict.fromkeys(Policy(n) for n in names))
    except ValueError:
        raise EndpointError(f"--security {text!r}: each policy is one of {choices}") from None


def _uri_of(certificate: x509.Certificate, path: Path) -> str:
    try:
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        return str(names.get_values_for_type(x509.UniformResourceIdentifier)[0])
    except (x509.ExtensionNotFound, IndexError):
        raise EndpointError(
            f"certificate {path} has no application URI (a URI subject alternative name); "
            "an OPC UA application certificate needs one"
        ) from None


async def _own_certificate(security: Security) -> tuple[Path, Path]:
    """The lab's certificate and key, or a self-signed pair in the certificate folder (made if missing)."""
    if security.certificate is not None or security.private_key is not None:
        for name, path in (("certificate", security.certificate), ("private key", security.private_key)):
            if path is None or not path.is_file():
                raise EndpointError(f"the OPC UA {name} {path or '(not given)'} is not a file; give both, or neither")
        assert security.certificate is not None and security.private_key is not None
        return security.certificate, security.private_key
    key, cert = security.certificate_dir / "server-key.pem", security.certificate_dir / "server-cert.der"
    host = socket.gethostname()
    await setup_self_signed_certificate(
        key,
        cert,
        f"urn:{host}:chiptwin:opcua",
        host,
        [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH],
        {"commonName": f"ChipTwin lab OPC UA on {host}", "organizationName": "ChipTwin"},
    )
    os.chmod(key, 0o600)
    return cert, key


class ClientTrust:
    """Validates a client's certificate; the trusted folder is re-read on each connect, so a certificate
    moved there from rejected/ counts without a restart."""

    def __init__(self, folder: Path, trust: TrustClients) -> None:
        self.trusted, self.rejected, self.trust = folder / "trusted", folder / "rejected", trust

    async def _validator(self) -> CertificateValidator:
        options = CertificateValidatorOptions.BASIC_VALIDATION | CertificateValidatorOptions.PEER_CLIENT
        if self.trust == TrustClients.ALL:
            return CertificateValidator(options)
        store = TrustStore([self.trusted], [])
        if any(p.suffix.lower() in (".der", ".pem") for p in self.trusted.iterdir()):
            await store.load_trust()  # an empty store (nothing trusted yet) trusts no one
        return CertificateValidator(options | CertificateValidatorOptions.TRUSTED, store)

    async def __call__(self, certificate: x509.Certificate, description: ua.ApplicationDescription) -> None:
        validator = await self._validator()
        try:
            await validator.validate(certificate, description)
        except ua.UaError as refused:
            name = f"{certificate.fingerprint(hashes.SHA1()).hex()}.der"
            (self.rejected / name).write_bytes(certificate.public_bytes(Encoding.DER))
            log.warning(
                "client %s refused (%s); to trust it, move %s into %s",
                description.ApplicationUri,
                type(refused).__name__,
                self.rejected / name,
                self.trusted,
            )
            raise


async def apply(server: Server, security: Security, rules: SimpleRoleRuleset) -> None:
    """Configure ``server`` (after ``init``, before ``start``) with ``security``'s policies and certificate."""
    types = [POLICY_TYPES[p] for p in security.policies]
    if not security.needs_certificate:
        server.set_security_policy(types, rules)
        return
    try:
        for folder in ("trusted", "rejected"):
            (security.certificate_dir / folder).mkdir(parents=True, exist_ok=True)
        cert_path, key_path = await _own_certificate(security)
        certificate = await uacrypto.load_certificate(cert_path)
        await server.load_certificate(str(cert_path))
        await server.load_private_key(str(key_path))
    except OSError as error:
        raise EndpointError(
            f"the OPC UA certificate folder {security.certificate_dir} cannot be used ({error.strerror or error}); "
            "give a writable --certificate-dir"
        ) from None
    except ValueError as error:  # a file that is not a certificate or key
        raise EndpointError(f"the OPC UA certificate or key cannot be read ({error}); give DER/PEM files") from None
    await server.set_application_uri(_uri_of(certificate, cert_path))
    server.set_security_policy(types, rules)
    server.set_certificate_validator(ClientTrust(security.certificate_dir, security.trust_clients))


def describe(security: Security) -> str:
    """One line for the start message: the policies and where the certificate is."""
    text = ", ".join(p.value for p in security.policies)
    if security.needs_certificate:
        where: Any = security.certificate or security.certificate_dir / "server-cert.der"
        text += f"; certificate {where}"
    return text
