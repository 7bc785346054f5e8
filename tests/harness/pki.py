"""Certificate files for TLS tests, made with trustme, readable by nginx's workers.

`Pki(directory)` holds one root CA (`root.pem`). `leaf(name, *identities, issuer=..., ...)` writes
`name.crt` (the leaf, then its issuer's intermediates, root excluded: what a server or a client
sends), `name.key` and `name.pem` (key and chain: what `load_cert_chain` and curl take).
`chain(n)` makes n intermediates below the root, each issued by the one before; `self_signed(name)`
writes a certificate that is its own issuer. Every file is world-readable: nginx as root runs its
workers as `nobody`.
"""
from __future__ import annotations

from pathlib import Path

import trustme


class Pki:
    def __init__(self, directory: Path):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.dir.chmod(0o755)
        self.root = trustme.CA(organization_name="Test Root")
        self._write("root.pem", self.root.cert_pem.bytes())

    def path(self, name: str) -> Path:
        return self.dir / name

    def chain(self, length: int, issuer: trustme.CA | None = None) -> list[trustme.CA]:
        """`length` intermediate CAs below `issuer` (the root), each issued by the one before."""
        cas = []
        parent = issuer or self.root
        for _ in range(length):
            parent = parent.create_child_ca()
            cas.append(parent)
        return cas

    def leaf(self, name: str, *identities: str, issuer: trustme.CA | None = None,
             common_name: str | None = None, unit: str = "Tests") -> trustme.LeafCert:
        cert = (issuer or self.root).issue_cert(*identities, common_name=common_name,
                                                organization_name="Example Org",
                                                organization_unit_name=unit)
        self._write(f"{name}.crt", b"".join(p.bytes() for p in cert.cert_chain_pems))
        self._write(f"{name}.key", cert.private_key_pem.bytes())
        self._write(f"{name}.pem", cert.private_key_and_cert_chain_pem.bytes())
        return cert

    def self_signed(self, name: str) -> None:
        """A certificate signed by its own key (a CA certificate used as a leaf)."""
        ca = trustme.CA(organization_name="Self Signed", organization_unit_name="Tests")
        self._write(f"{name}.crt", ca.cert_pem.bytes())
        self._write(f"{name}.key", ca.private_key_pem.bytes())
        self._write(f"{name}.pem", ca.private_key_pem.bytes() + ca.cert_pem.bytes())

    def _write(self, name: str, data: bytes) -> None:
        path = self.dir / name
        path.write_bytes(data)
        path.chmod(0o644)
