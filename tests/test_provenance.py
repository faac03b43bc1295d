"""Content credentials: real C2PA manifests, signed here with a certificate chain made at test time.

The chain is a P-256 root CA and an end-entity certificate (ES256) with the profile the C2PA SDK
checks when it signs: v3, digitalSignature key usage, the emailProtection extended key usage, not a
CA, not self-signed (a self-signed leaf is refused: "the certificate is invalid"). Our root is on
no trust list, so the SDK reports such a file as validation_state "Valid" with
signingCredential.untrusted: state "valid", ``trusted`` False. Given the root as a trust anchor it
says "Trusted": ``trusted`` True.
"""
from __future__ import annotations

import datetime
import json
import struct
import sys
from pathlib import Path

import pytest

from conftest import ROOT
from deepfake_demo.aggregate import Verdict
from deepfake_demo.provenance import Provenance, ProvenanceState, read_provenance

c2pa = pytest.importorskip("c2pa", reason="c2pa-python is not installed (requirements.txt)")

EXAMPLES = ROOT / "examples"
IMAGE = EXAMPLES / "astronaut_real.jpg"
VIDEO = EXAMPLES / "astronaut_real_zoom.mp4"
SIGNER_ORG, SIGNER_CN, GENERATOR = "deepfake-demo tests", "test signing key", "test-generator"
AI = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
CAMERA = "http://cv.iptc.org/newscodes/digitalsourcetype/digitalCapture"


@pytest.fixture(scope="module")
def chain() -> dict[str, bytes]:
    """{"cert": end-entity PEM, "key": its PKCS#8 PEM, "root": the CA's PEM}."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)

    def name(org: str, cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
                          x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def usage(signs_certs: bool) -> x509.KeyUsage:
        return x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                             data_encipherment=False, key_agreement=False, key_cert_sign=signs_certs,
                             crl_sign=signs_certs, encipher_only=False, decipher_only=False)

    def cert(subject, issuer, key, signing_key, ca: bool):
        b = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(key.public_key())
             .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
             .not_valid_after(now + datetime.timedelta(days=30))
             .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
             .add_extension(usage(ca), critical=True)
             .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False))
        if not ca:
            b = (b.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
                 .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(signing_key.public_key()),
                                critical=False))
        return b.sign(signing_key, hashes.SHA256())

    root_key, leaf_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    root_name = name("deepfake-demo test CA", "test root")
    root = cert(root_name, root_name, root_key, root_key, ca=True)
    leaf = cert(name(SIGNER_ORG, SIGNER_CN), root_name, leaf_key, root_key, ca=False)
    pem = serialization.Encoding.PEM
    return {"cert": leaf.public_bytes(pem), "root": root.public_bytes(pem),
            "key": leaf_key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())}


def sign(chain, src: Path, dst: Path, source_type: str = AI) -> Path:
    """Copy ``src`` to ``dst`` with an embedded manifest: our claim generator and one c2pa.created action."""
    manifest = {"claim_generator_info": [{"name": GENERATOR, "version": "1.0"}], "title": src.name,
                "assertions": [{"label": "c2pa.actions", "data": {"actions": [
                    {"action": "c2pa.created", "digitalSourceType": source_type}]}}]}
    signer = c2pa.Signer.from_info(c2pa.C2paSignerInfo(c2pa.C2paSigningAlg.ES256, chain["cert"], chain["key"], None))
    with signer, c2pa.Builder(manifest) as builder:
        builder.sign_file(str(src), str(dst), signer)
    return dst


def app11_segments(data: bytes) -> list[tuple[int, int]]:
    """(offset of the 0xFFEB marker, segment length) of each APP11 (JUMBF) segment before the scan."""
    out, i = [], 2
    while data[i] == 0xFF and data[i + 1] != 0xDA:
        length = struct.unpack(">H", data[i + 2:i + 4])[0]
        if data[i + 1] == 0xEB:
            out.append((i, length))
        i += 2 + length
    return out


def flipped(data: bytes, at: int, n: int = 4) -> bytes:
    b = bytearray(data)
    for k in range(n):
        b[at + k] ^= 0x01  # never makes a 0xFF (a JPEG marker) from anything but 0xFE
    return bytes(b)


@pytest.fixture(scope="module")
def signed_image(chain, tmp_path_factory) -> Path:
    return sign(chain, IMAGE, tmp_path_factory.mktemp("c2pa") / "astronaut_signed.jpg")


def test_a_signed_ai_image_gives_signer_generator_ai_claim_and_validity(chain, signed_image):
    p = read_provenance(signed_image)
    assert p == Provenance(ProvenanceState.VALID, signer=SIGNER_ORG, common_name=SIGNER_CN,
                           claim_generator=f"{GENERATOR} 1.0", ai_generated=True, trusted=False, issues=())
    text = p.summary()
    assert f"signed by {SIGNER_ORG} ({SIGNER_CN}) with {GENERATOR} 1.0" in text
    assert "made (or partly made) by an AI generator" in text and "signature valid" in text
    assert "not checked against a trust list" in text
    # the same file, read with our root as a trust anchor: the SDK calls it Trusted
    trusted = read_provenance(signed_image, trust_anchors=chain["root"].decode())
    assert trusted.state == ProvenanceState.VALID and trusted.trusted and "on the trust list" in trusted.summary()
    assert json.loads(json.dumps(p.to_dict()))["ai_generated"] is True


def test_a_credential_that_claims_a_camera_is_not_an_ai_claim(chain, tmp_path):
    p = read_provenance(sign(chain, IMAGE, tmp_path / "camera.jpg", source_type=CAMERA))
    assert p.state == ProvenanceState.VALID and p.ai_generated is False
    assert "does not say an AI generator made it" in p.summary()


def test_no_manifest_says_nothing_either_way(monkeypatch):
    p = read_provenance(IMAGE)
    assert p == Provenance(ProvenanceState.NONE)
    assert p.ai_generated is None and "says nothing either way" in p.summary()
    monkeypatch.setitem(sys.modules, "c2pa", None)  # as if c2pa-python were not installed
    p = read_provenance(IMAGE)
    assert p.state == ProvenanceState.NOT_CHECKED and p.summary() == (
        "Content credentials: not checked (c2pa-python not installed).")


def test_tampered_and_broken_manifests_are_findings_and_the_file_is_still_analysed(signed_image, tmp_path,
                                                                                   detector):
    data = signed_image.read_bytes()
    (first, length), *_ = app11_segments(data)
    scan = data.index(b"\xff\xda")
    base = detector.analyze(signed_image, heatmaps=False)
    assert base.ok and base.faces, base.error  # the astronaut's face is found in the intact file
    cases = {
        # bytes in the middle of the manifest store (its thumbnail assertion): its hash no longer matches
        "manifest_bytes": (flipped(data, first + length // 2), ProvenanceState.INVALID, "hash"),
        # one change in the compressed pixels the manifest's data hash covers
        "pixels": (flipped(data, (scan + len(data)) // 2, 1), ProvenanceState.INVALID, "hash"),
        # the JUMBF box type itself: the SDK cannot parse the store at all
        "jumbf_header": (flipped(data, data.index(b"jumb", first)), ProvenanceState.UNREADABLE, "JUMBF"),
    }
    for name, (blob, state, word) in cases.items():
        path = tmp_path / f"{name}.jpg"
        path.write_bytes(blob)
        p = read_provenance(path)
        assert p.state == state and any(word in i for i in p.issues), (name, p)
        report = detector.analyze(path, heatmaps=False)
        assert report.ok, (name, report.error)
        if name != "pixels":  # only the manifest is damaged: the pixels, so the analysis, are the intact file's
            assert (report.verdict, report.fake_probability, len(report.faces)) == (
                base.verdict, base.fake_probability, len(base.faces)), name
        assert report.provenance == p
        assert report.to_dict()["provenance"]["state"] == state
    assert "INVALID" in read_provenance(tmp_path / "pixels.jpg").summary()


def test_a_signed_mp4_and_a_tampered_one(chain, tmp_path, detector):
    try:
        signed = sign(chain, VIDEO, tmp_path / "zoom_signed.mp4")
    except c2pa.C2paError as exc:  # pragma: no cover - this SDK version signs MP4 (BMFF hash)
        pytest.skip(f"c2pa-python cannot sign this MP4: {exc}")
    p = read_provenance(signed)
    assert p.state == ProvenanceState.VALID and p.ai_generated and p.signer == SIGNER_ORG
    report = detector.analyze(signed, frames=4, heatmaps=False)
    assert report.ok and report.kind == "video" and report.frames_analyzed == 4 and report.provenance == p
    data = signed.read_bytes()
    mdat = data.index(b"mdat")
    tampered = tmp_path / "zoom_tampered.mp4"
    tampered.write_bytes(flipped(data, mdat + 4 + (len(data) - mdat) // 2, 1))
    assert read_provenance(tampered).state == ProvenanceState.INVALID


def test_the_report_json_summary_and_app_badge_carry_it(signed_image):
    from deepfake_demo import present
    from deepfake_demo.report import Report, error_report

    p = read_provenance(signed_image)
    r = Report(path=str(signed_image), kind="image", verdict=Verdict.REAL, reason="r", fake_probability=0.1,
               provenance=p)
    assert r.to_dict()["provenance"] == p.to_dict() and r.to_dict()["provenance"]["state"] == "valid"
    assert "  " + p.summary() in r.summary().splitlines()
    badge = present.badge_html(r)
    assert 'id="provenance"' in badge and f"signed by {SIGNER_ORG}" in badge
    none = Report(path="x.jpg", kind="image", verdict=Verdict.NO_FACE, reason="no face",
                  provenance=Provenance(ProvenanceState.NONE))
    assert "No content credentials" in present.badge_html(none)
    # not looked at (an ERROR, an array) is None, apart from "looked, found none"
    err = error_report("x.jpg", "unreadable")
    assert err.to_dict()["provenance"] is None and 'id="provenance"' not in present.badge_html(err)


def test_cli_json_line_and_human_line(signed_image, tiny_weights):
    from test_cli import lines, scan

    out = scan(signed_image, IMAGE, "--json", "--weights", tiny_weights, "--quiet")
    assert out.returncode == 0, out.stderr[-2000:]
    signed, plain = (r["provenance"] for r in lines(out))
    assert signed["state"] == "valid" and signed["ai_generated"] is True and signed["signer"] == SIGNER_ORG
    assert signed["claim_generator"] == f"{GENERATOR} 1.0" and signed["trusted"] is False
    assert plain["state"] == "none" and plain["ai_generated"] is None
    out = scan(signed_image, IMAGE, "--weights", tiny_weights, "--quiet")
    assert out.returncode == 0, out.stderr[-2000:]
    assert f"  Content credentials: signed by {SIGNER_ORG}" in out.stdout
    assert "  No content credentials (this says nothing either way" in out.stdout
