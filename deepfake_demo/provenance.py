"""Content credentials (C2PA manifests): who signed a file, what software wrote the
claim, whether the claim says an AI generator made it, and whether the signature
still holds. This is evidence beside the models' verdict, never mixed into it: a
valid "made by a generator" credential is stated as it is, an absent one says
nothing either way (most files have none, and stripping one is trivial).

``c2pa-python`` is imported on the first read, not with the package.
"""
from __future__ import annotations

import functools
import json
import logging
import os
from dataclasses import dataclass
from typing import Any

__all__ = ["Provenance", "ProvenanceState", "AI_SOURCE_TYPES", "read_provenance"]

log = logging.getLogger(__name__)

AI_SOURCE_TYPES = ("trainedAlgorithmicMedia", "compositeWithTrainedAlgorithmicMedia")
"""IPTC digital source types (the last part of http://cv.iptc.org/newscodes/digitalsourcetype/...)
that say a generative model made the media, or part of it."""

_UNTRUSTED = "signingCredential.untrusted"


class ProvenanceState:
    """What reading a file's content credentials found (:attr:`Provenance.state`)."""

    NONE = "none"  # looked, found no manifest: says nothing either way
    VALID = "valid"  # manifest found, signature and hashes check out (the signer may still be unknown: ``trusted``)
    INVALID = "invalid"  # manifest found, but the file or the manifest changed after signing, or the signature fails
    UNREADABLE = "unreadable"  # the SDK failed on the file: a manifest it cannot parse (or a container it cannot walk)
    NOT_CHECKED = "not_checked"  # c2pa-python missing, or a format it cannot read


@dataclass(frozen=True)
class Provenance:
    """One file's content credentials, as the C2PA SDK validated them.

    ``signer`` is the organisation in the signing certificate (what C2PA tools show as
    "issued by"), ``common_name`` that certificate's CN; both are only what the
    certificate says unless ``trusted`` (its chain ends in a trust anchor the reader was
    given; none is shipped, so from the pipeline this is False). ``ai_generated``: True
    when an action in the manifest store gives an :data:`AI_SOURCE_TYPES` source type,
    False when the manifest makes no such claim, None when no manifest was read.
    ``issues``: the SDK's failure explanations, or why nothing could be read.
    """

    state: str
    signer: str | None = None
    common_name: str | None = None
    claim_generator: str | None = None
    ai_generated: bool | None = None
    trusted: bool = False
    issues: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"state": self.state, "signer": self.signer, "common_name": self.common_name,
                "claim_generator": self.claim_generator, "ai_generated": self.ai_generated,
                "trusted": self.trusted, "issues": list(self.issues), "summary": self.summary()}

    def summary(self) -> str:
        """One plain sentence for a person (the CLI's line, the app's line under the verdict)."""
        s = ProvenanceState
        if self.state == s.NOT_CHECKED:
            return f"Content credentials: not checked ({'; '.join(self.issues) or 'unknown reason'})."
        if self.state == s.NONE:
            return "No content credentials (this says nothing either way: most files have none)."
        if self.state == s.UNREADABLE:
            return (f"Content credentials: could not be read ({'; '.join(self.issues) or 'unknown error'}); "
                    "if the file has any, nothing they claim can be relied on.")
        who = self.signer or self.common_name or "an unnamed signer"
        if self.common_name and self.common_name != who:
            who += f" ({self.common_name})"
        claim = f"signed by {who}" + (f" with {self.claim_generator}" if self.claim_generator else "")
        said = {True: "says it was made (or partly made) by an AI generator",
                False: "does not say an AI generator made it"}[bool(self.ai_generated)]
        if self.state == s.INVALID:
            why = "; ".join(self.issues) or "validation failed"
            return (f"Content credentials: INVALID: the file or its manifest was changed after signing, or the "
                    f"signature fails ({why}). Its claims ({claim}; {said}) cannot be relied on.")
        check = ("signature valid, signer on the trust list" if self.trusted else
                 "signature valid; the signer's certificate is not checked against a trust list, "
                 "so the name is what the certificate says")
        return f"Content credentials: {claim}; {said}; {check}."


@functools.lru_cache(maxsize=4)
def _context(trust_anchors: str | None):
    import c2pa

    # never reach out to the network from an analysis: no remote manifests, no OCSP
    settings: dict[str, Any] = {"verify": {"remote_manifest_fetch": False, "ocsp_fetch": False}}
    if trust_anchors:
        settings["trust"] = {"trust_anchors": trust_anchors}
    return c2pa.Context.from_dict(settings)


def read_provenance(path: str | os.PathLike, trust_anchors: str | None = None) -> Provenance:
    """Read and validate the C2PA manifest store of the image or video at ``path``.

    ``trust_anchors``: PEM certificates whose chains count as trusted (e.g. the C2PA
    trust list); without them no signer is ``trusted``. Never raises: a missing
    c2pa-python or an unsupported format is NOT_CHECKED, a broken manifest INVALID or
    UNREADABLE (the media itself is analysed all the same).
    """
    try:
        import c2pa
    except ImportError:
        return Provenance(ProvenanceState.NOT_CHECKED, issues=("c2pa-python not installed",))
    except OSError as exc:  # installed, but its native library does not load on this machine
        return Provenance(ProvenanceState.NOT_CHECKED, issues=(f"c2pa-python could not load: {_message(exc)}",))
    try:
        reader = c2pa.Reader.try_create(str(path), None, None, _context(trust_anchors))
        if reader is None:
            return Provenance(ProvenanceState.NONE)
        with reader:
            store = json.loads(reader.json())
    except c2pa.C2paError.NotSupported:
        ext = os.path.splitext(str(path))[1].lower()
        return Provenance(ProvenanceState.NOT_CHECKED,
                          issues=(f"the C2PA SDK does not read {ext + ' files' if ext else 'this format'}",))
    except (c2pa.C2paError, OSError, ValueError) as exc:  # ValueError: the SDK's JSON did not parse
        return Provenance(ProvenanceState.UNREADABLE, issues=(_message(exc),))
    except Exception as exc:  # a bug or an SDK surprise must cost the credentials line, not the analysis
        log.exception("reading content credentials of %s failed", path)
        return Provenance(ProvenanceState.UNREADABLE, issues=(f"internal error: {exc.__class__.__name__}: {exc}",))
    return _from_store(store if isinstance(store, dict) else {})


def _message(exc: Exception) -> str:
    text = str(exc).strip() or exc.__class__.__name__
    return text[:300]


def _from_store(store: dict[str, Any]) -> Provenance:
    """A :class:`Provenance` from the SDK's manifest-store JSON (``Reader.json()``)."""
    manifests = store.get("manifests") if isinstance(store.get("manifests"), dict) else {}
    active = manifests.get(store.get("active_manifest")) or {}
    if not isinstance(active, dict):
        active = {}
    sig = active.get("signature_info") if isinstance(active.get("signature_info"), dict) else {}
    statuses = [s for s in store.get("validation_status") or () if isinstance(s, dict)]
    failures = tuple(str(s.get("explanation") or s.get("code")) for s in statuses if s.get("code") != _UNTRUSTED)
    state = store.get("validation_state")
    if state not in ("Valid", "Trusted", "Invalid"):  # older SDKs: no overall state, only the failures
        state = "Invalid" if failures else "Valid"
    if not active:
        return Provenance(ProvenanceState.UNREADABLE, issues=failures or ("no active manifest in the store",))
    return Provenance(
        ProvenanceState.INVALID if state == "Invalid" else ProvenanceState.VALID,
        signer=_text(sig.get("issuer")), common_name=_text(sig.get("common_name")),
        claim_generator=_generator(active), ai_generated=any(_says_ai(m) for m in manifests.values()),
        trusted=state == "Trusted", issues=failures)


def _text(x: Any) -> str | None:
    return None if x is None else (str(x).strip() or None)


def _generator(manifest: dict[str, Any]) -> str | None:
    """The software that wrote the claim: v1's ``claim_generator``, else v2's first ``claim_generator_info``."""
    info = manifest.get("claim_generator_info")
    if isinstance(info, list) and info and isinstance(info[0], dict) and info[0].get("name"):
        return " ".join(str(info[0][k]) for k in ("name", "version") if info[0].get(k))
    return _text(manifest.get("claim_generator"))


def _says_ai(manifest: Any) -> bool:
    """Whether any ``c2pa.actions``/``c2pa.actions.v2`` action in ``manifest`` has an AI source type."""
    if not isinstance(manifest, dict):
        return False
    for assertion in manifest.get("assertions") or ():
        if not isinstance(assertion, dict) or not str(assertion.get("label", "")).startswith("c2pa.actions"):
            continue
        data = assertion.get("data") if isinstance(assertion.get("data"), dict) else {}
        for action in data.get("actions") or ():
            source = str(action.get("digitalSourceType", "")) if isinstance(action, dict) else ""
            if source.rstrip("/").rsplit("/", 1)[-1] in AI_SOURCE_TYPES:
                return True
    return False
