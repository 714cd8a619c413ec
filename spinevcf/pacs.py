"""PACS round trip over DICOMweb: pull a study (WADO-RS), run the pipeline, push the results (STOW-RS).

``spinevcf pacs --url http://127.0.0.1:8042 --study UID --out DIR`` calls
:func:`pacs_round_trip`:

1. QIDO-RS ``GET {root}/studies/{study}/series`` lists the study's series;
2. WADO-RS ``GET {root}/studies/{study}/series/{series}`` (``multipart/related;
   type="application/dicom"``) retrieves each series into a private temporary folder
   (files named by a counter, never by a server-supplied value);
3. :func:`spinevcf.pipeline.process_study` loads the CT series, runs the models and
   writes the outputs into ``DIR`` (atomically);
4. STOW-RS ``POST {root}/studies`` stores the DICOM SR and the secondary capture back.

The study UID is validated (digits and dots, at most 64 characters) before it is put
into a URL. Every request has a timeout; the amount retrieved is bounded
(:data:`MAX_STUDY_BYTES`). Errors are :class:`PacsError` (server down, refused,
malformed answer) with a one-line message naming the cause; patient attributes are
never logged.
"""

from __future__ import annotations

import logging
import re
import tempfile
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from email.message import Message
from pathlib import Path
from typing import Any, Final

import requests

from spinevcf.errors import InputError, SpineVCFError

__all__ = [
    "PacsError",
    "DicomWebClient",
    "RoundTripResult",
    "pacs_round_trip",
    "DEFAULT_TIMEOUT_S",
    "DICOMWEB_ROOT",
    "MAX_STUDY_BYTES",
]

log = logging.getLogger(__name__)

#: Per-request timeout (seconds): connect and read.
DEFAULT_TIMEOUT_S: Final = 60.0
#: Path of the DICOMweb API below the server URL (Orthanc's default).
DICOMWEB_ROOT: Final = "/dicom-web"
#: Largest study (bytes, all series together) that is retrieved.
MAX_STUDY_BYTES: Final = 8 * 1024**3
#: Most series retrieved from one study.
MAX_SERIES: Final = 500
#: Media type of DICOM parts.
DICOM_MEDIA_TYPE: Final = "application/dicom"
_UID_RE: Final = re.compile(r"^[0-9]+(\.[0-9]+)*$")
_UID_MAX_LEN: Final = 64
_CHUNK: Final = 1 << 20
#: DICOM JSON tags used here.
_TAG_SERIES_UID: Final = "0020000E"
_TAG_FAILED_SOP_SEQUENCE: Final = "00081198"
_TAG_REFERENCED_SOP_SEQUENCE: Final = "00081199"
_TAG_REFERENCED_SOP_INSTANCE_UID: Final = "00081155"


class PacsError(SpineVCFError):
    """The PACS is unreachable, refused a request or answered something unusable."""

    exit_code = 7


def _check_uid(uid: str, what: str) -> str:
    if not (0 < len(uid) <= _UID_MAX_LEN and _UID_RE.match(uid)):
        raise InputError(f"{what} is not a valid DICOM UID (digits and dots, at most {_UID_MAX_LEN} characters)")
    return uid


def _split_multipart(body: bytes, content_type: str) -> Iterator[bytes]:
    """The bodies of the parts of a ``multipart/related`` payload.

    Raises:
        PacsError: the payload is not multipart or has no boundary.
    """
    msg = Message()
    msg["Content-Type"] = content_type
    if msg.get_content_maintype() != "multipart":
        raise PacsError(f"expected a multipart answer, got content type {msg.get_content_type()!r}")
    boundary = msg.get_param("boundary")
    if not isinstance(boundary, str) or not boundary:
        raise PacsError("multipart answer without a boundary")
    delimiter = b"--" + boundary.encode("ascii", "replace")
    for chunk in body.split(delimiter)[1:]:
        if chunk.startswith(b"--"):
            break  # closing delimiter
        head, sep, payload = chunk.partition(b"\r\n\r\n")
        if not sep:
            raise PacsError("malformed multipart part (no header/body separator)")
        yield payload[:-2] if payload.endswith(b"\r\n") else payload


@dataclass
class RoundTripResult:
    """What :func:`pacs_round_trip` did.

    Attributes:
        n_retrieved: instances retrieved from the PACS.
        outputs: the files written into the output folder, by kind.
        stored_sop_instance_uids: SOP Instance UIDs the PACS accepted (SR, SC).
        status: ``results.json`` status (``ok`` / ``no_spine``).
    """

    n_retrieved: int
    outputs: dict[str, Path]
    stored_sop_instance_uids: list[str] = field(default_factory=list)
    status: str = ""


class DicomWebClient:
    """A small DICOMweb client (QIDO-RS, WADO-RS, STOW-RS) with timeouts and typed errors.

    Args:
        url: server URL, e.g. ``http://127.0.0.1:8042``.
        root: path of the DICOMweb API below ``url``.
        timeout_s: per-request timeout in seconds.
        max_study_bytes: refuse to retrieve more than this per study.

    Example:
        >>> client = DicomWebClient("http://127.0.0.1:8042")  # doctest: +SKIP
        >>> client.retrieve_study("1.2.3", Path("/tmp/study"))  # doctest: +SKIP
    """

    def __init__(
        self,
        url: str,
        *,
        root: str = DICOMWEB_ROOT,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        max_study_bytes: int = MAX_STUDY_BYTES,
    ) -> None:
        if not re.match(r"^https?://[^/\s]+$", url.rstrip("/")):
            raise InputError(f"invalid PACS URL {url!r}: expected http(s)://HOST:PORT")
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be positive, got {timeout_s}")
        self.base = url.rstrip("/") + "/" + root.strip("/")
        self.timeout_s = timeout_s
        self.max_study_bytes = max_study_bytes
        self.session = requests.Session()
        self.session.trust_env = False  # no proxy from the environment: talk to the PACS directly

    def close(self) -> None:
        """Close the HTTP session."""
        self.session.close()

    def __enter__(self) -> DicomWebClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transport ---------------------------------------------------------------------
    def _request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        url = f"{self.base}/{path.lstrip('/')}"
        try:
            resp = self.session.request(method, url, timeout=self.timeout_s, **kwargs)
        except requests.ConnectionError as exc:
            raise PacsError(f"PACS at {self.base} is unreachable (connection refused or reset)") from exc
        except requests.Timeout as exc:
            raise PacsError(f"PACS at {self.base} did not answer within {self.timeout_s:g} s") from exc
        except requests.RequestException as exc:
            raise PacsError(f"request to the PACS at {self.base} failed: {type(exc).__name__}") from exc
        if resp.status_code >= 400:
            raise PacsError(f"PACS refused {method} {path.split('?')[0]}: HTTP {resp.status_code}")
        return resp

    def _json(self, resp: requests.Response) -> Any:
        if not resp.content:
            return []
        try:
            return resp.json()
        except ValueError as exc:
            raise PacsError("the PACS answered with malformed JSON") from exc

    # -- operations --------------------------------------------------------------------
    def series_of(self, study_uid: str) -> list[str]:
        """SeriesInstanceUIDs of a study (QIDO-RS).

        Raises:
            InputError: ``study_uid`` is not a valid UID.
            PacsError: the server is down, refused, or the study does not exist.
        """
        _check_uid(study_uid, "study UID")
        answer = self._json(self._request("GET", f"studies/{study_uid}/series", headers={"Accept": "application/dicom+json"}))
        if not isinstance(answer, list):
            raise PacsError("QIDO-RS answer is not a list")
        uids: list[str] = []
        for item in answer[:MAX_SERIES]:
            try:
                uid = str(item[_TAG_SERIES_UID]["Value"][0])
            except (KeyError, IndexError, TypeError) as exc:
                raise PacsError("QIDO-RS answer lacks a SeriesInstanceUID") from exc
            uids.append(_check_uid(uid, "a SeriesInstanceUID from the PACS"))
        if not uids:
            raise PacsError("the study has no series on the PACS")
        return uids

    def retrieve_study(self, study_uid: str, dest: Path) -> int:
        """Retrieve every instance of a study into ``dest`` (WADO-RS, series by series).

        Files are named ``<series index>_<instance index>.dcm``.

        Returns:
            The number of instances written.

        Raises:
            InputError: invalid study UID.
            PacsError: server errors, malformed multipart answers, a study above
                ``max_study_bytes``.
        """
        dest.mkdir(parents=True, exist_ok=True)
        total = 0
        count = 0
        accept = f'multipart/related; type="{DICOM_MEDIA_TYPE}"; transfer-syntax=*'
        for s, series_uid in enumerate(self.series_of(study_uid)):
            resp = self._request(
                "GET", f"studies/{study_uid}/series/{series_uid}", headers={"Accept": accept}, stream=True
            )
            body = bytearray()
            for chunk in resp.iter_content(_CHUNK):
                body += chunk
                if total + len(body) > self.max_study_bytes:
                    resp.close()
                    raise PacsError(f"the study is larger than the limit of {self.max_study_bytes} bytes")
            total += len(body)
            for i, part in enumerate(_split_multipart(bytes(body), resp.headers.get("Content-Type", ""))):
                (dest / f"{s:04d}_{i:06d}.dcm").write_bytes(part)
                count += 1
        log.info("retrieved %d instance(s), %d bytes, from the PACS", count, total)
        return count

    def store(self, paths: Sequence[Path]) -> list[str]:
        """Store DICOM files (STOW-RS) and return the SOP Instance UIDs the server accepted.

        Raises:
            PacsError: the request failed or the server reports failed instances.
        """
        if not paths:
            return []
        boundary = f"spinevcf-{uuid.uuid4().hex}"
        body = bytearray()
        for path in paths:
            body += f"--{boundary}\r\nContent-Type: {DICOM_MEDIA_TYPE}\r\n\r\n".encode("ascii")
            body += path.read_bytes() + b"\r\n"
        body += f"--{boundary}--\r\n".encode("ascii")
        headers = {
            "Content-Type": f'multipart/related; type="{DICOM_MEDIA_TYPE}"; boundary={boundary}',
            "Accept": "application/dicom+json",
        }
        answer = self._json(self._request("POST", "studies", data=bytes(body), headers=headers))
        if not isinstance(answer, dict):
            raise PacsError("STOW-RS answer is not a JSON object")
        failed = answer.get(_TAG_FAILED_SOP_SEQUENCE, {}).get("Value") or []
        if failed:
            raise PacsError(f"the PACS refused {len(failed)} of {len(paths)} instance(s)")
        stored = []
        for item in answer.get(_TAG_REFERENCED_SOP_SEQUENCE, {}).get("Value") or []:
            values = item.get(_TAG_REFERENCED_SOP_INSTANCE_UID, {}).get("Value") or []
            stored.extend(str(v) for v in values)
        log.info("stored %d instance(s) on the PACS", len(stored))
        return stored


def pacs_round_trip(
    url: str,
    study_uid: str,
    out_dir: Path | str,
    *,
    pipeline: Any = None,
    model_repository: Path | str | None = None,
    triton_url: str | None = None,
    triton_protocol: str = "grpc",
    timeout_s: float = DEFAULT_TIMEOUT_S,
    store: bool = True,
) -> RoundTripResult:
    """Pull a study over DICOMweb, run the pipeline, write the outputs, store SR + SC back.

    Args:
        url: PACS URL (``http://HOST:PORT``).
        study_uid: StudyInstanceUID to process.
        out_dir: output folder (SR, SC, PNG, results.json).
        pipeline: a ready :class:`spinevcf.pipeline.Pipeline` (or a stand-in with its
            ``run``); created from ``model_repository`` / ``triton_url`` and closed here
            when ``None``.
        model_repository: model folder for a new pipeline (default: the repository's).
        triton_url: Triton ``HOST:PORT`` for a new pipeline (default: ONNX Runtime).
        triton_protocol: ``grpc`` or ``http``.
        timeout_s: per-request timeout of the PACS client.
        store: store the SR and the secondary capture back on the PACS.

    Returns:
        What was retrieved, written and stored.

    Raises:
        InputError: invalid study UID or URL (and every input error of the loader).
        PacsError: the PACS is down, refused, or answered wrongly.
        SpineVCFError: the pipeline's errors (models, Triton, outputs).
    """
    from spinevcf.pipeline import Pipeline, process_study

    _check_uid(study_uid, "study UID")
    out = Path(out_dir)
    own_pipeline = pipeline is None
    with DicomWebClient(url, timeout_s=timeout_s) as client:
        with tempfile.TemporaryDirectory(prefix="spinevcf-pacs-") as tmp:
            n = client.retrieve_study(study_uid, Path(tmp))
            if own_pipeline:
                pipeline = Pipeline(model_repository, triton_url=triton_url, triton_protocol=triton_protocol)
            try:
                result = process_study(Path(tmp), out, pipeline)
            finally:
                if own_pipeline and pipeline is not None:
                    pipeline.close()
        outputs = {p.name: p for p in out.iterdir()}
        kinds: dict[str, Path] = {"results": out / "results.json"}
        to_store = [p for name, p in sorted(outputs.items()) if name.startswith(("sr_", "sc_")) and name.endswith(".dcm")]
        mine = _outputs_of(to_store, result.record.study_instance_uid)
        for path in mine:
            kinds["sr" if path.name.startswith("sr_") else "capture"] = path
        stored = client.store(mine) if store else []
    return RoundTripResult(n_retrieved=n, outputs=kinds, stored_sop_instance_uids=stored, status=result.record.status)


def _outputs_of(paths: Sequence[Path], study_uid: str) -> list[Path]:
    """The SR/SC files in ``paths`` that belong to ``study_uid`` (the folder may hold older runs)."""
    import pydicom

    mine = []
    for path in paths:
        ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["StudyInstanceUID"])
        if str(ds.get("StudyInstanceUID", "")) == study_uid:
            mine.append(path)
    return mine
