"""Direct encoding of the spinevcf SR content tree (speed; the same bytes as highdicom wrote).

Building the TID 1500 tree with highdicom's template classes and then encoding it with
pydicom cost most of the write stage (issue 15: ~0.3 s of a 0.32 s write at 19 vertebrae and
300 slices; ~20 000 pydicom elements, each validated on assignment and again when written),
and importing highdicom cost a fresh ``python -m app`` process about 0.5 s more. This module
writes the content items straight to their Explicit VR Little Endian bytes:

* :func:`measurement_group_item` - one TID 1501 Measurement Group: a vertebral body (assessed
  or not assessable) or the patient-level group, with the items, order and values highdicom's
  ``MeasurementsAndQualitativeEvaluations`` gave (``NumericValue`` formatted by pydicom's
  ``DS(..., auto_format=True)``, ``FloatingPointValue`` as float64 for float values only,
  SCOORD3D points as float32);
* :func:`measurement_report_content` - the Content Sequence of the TID 1500 root: language,
  observer context (a device), procedure reported and the Imaging Measurements container
  holding the groups, as highdicom's ``MeasurementReport``;
* :func:`root_elements` - the root container's own elements (value type, title, continuity,
  template), which sit at the top level of the SR document;
* :func:`evidence_sequence_value` - the Current Requested Procedure Evidence Sequence
  (one study, one series, every instance in the given order) as highdicom's
  ``collect_evidence`` makes it;
* :func:`raw_sequence` - a pydicom ``RawDataElement`` holding such bytes, which pydicom
  writes as it is (and parses, like any element read from a file, when it is accessed).

Encoding rules are those of pydicom's writer for a new dataset: elements in tag order,
defined lengths for sequences and items, text padded to even length with a space, UIDs
with a NUL. Codes and fixed texts are ASCII, which every DICOM character set (``ISO_IR 100``,
``ISO_IR 192``, ISO 2022 ...) encodes identically; a TEXT item value that is not ASCII (an
algorithm version, a manufacturer) is encoded with pydicom's ``encode_string`` in the
document's character set (``encodings``), as pydicom's writer would. ``tests/report/
test_sr_encode.py`` checks that the SR is the file highdicom wrote, apart from UIDs and times.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, Final, NamedTuple

from pydicom.charset import default_encoding, encode_string
from pydicom.dataelem import RawDataElement
from pydicom.tag import Tag
from pydicom.valuerep import DS

if TYPE_CHECKING:
    from pydicom.sr.coding import Code as PydicomCode

__all__ = [
    "Code",
    "MEASUREMENT_GROUP_TEMPLATE",
    "MEASUREMENT_REPORT_TEMPLATE",
    "DEFAULT_ENCODINGS",
    "GroupValues",
    "DeviceObserver",
    "content_item",
    "code_item",
    "measurement_group_item",
    "measurement_report_content",
    "root_elements",
    "evidence_sequence_value",
    "raw_sequence",
    "sequence_value",
]


class Code(NamedTuple):
    """A coded concept: what a Code Sequence Macro item holds (PS3.3 Table 8.8-1).

    spinevcf's own rather than :class:`pydicom.sr.coding.Code`, whose import loads all of
    ``pydicom.sr`` with pydicom's concept dictionaries (about 0.1 s of a fresh process,
    issue 15). The attribute names are pydicom's and highdicom's, so their codes compare
    with it attribute by attribute; :meth:`as_pydicom` gives pydicom's class where a
    library needs it (highdicom, when reading a report back).

    Attributes:
        value: Code Value (Long Code Value / URN Code Value when longer than 16 characters).
        scheme_designator: Coding Scheme Designator.
        meaning: Code Meaning.
        scheme_version: Coding Scheme Version, when the scheme needs one.
    """

    value: str
    scheme_designator: str
    meaning: str
    scheme_version: str | None = None

    def as_pydicom(self) -> PydicomCode:
        """The same concept as :class:`pydicom.sr.coding.Code` (imports ``pydicom.sr``)."""
        from pydicom.sr.coding import Code as PydicomCode

        return PydicomCode(self.value, self.scheme_designator, self.meaning, self.scheme_version)


#: VRs with a 4-byte length field (and 2 reserved bytes) in explicit VR (PS3.5 7.1.2).
_LONG_VRS: Final = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "UC", "UN", "UR", "UT", "SV", "UV"})
_ITEM_TAG: Final = (0xFFFE, 0xE000)
#: Codes longer than this go to Long Code Value (highdicom.sr.CodedConcept).
_SHORT_CODE_MAX: Final = 16
MEASUREMENT_GROUP_TEMPLATE: Final = "1501"
MEASUREMENT_REPORT_TEMPLATE: Final = "1500"
#: Python encodings of a document without Specific Character Set (pydicom's default).
DEFAULT_ENCODINGS: Final = (default_encoding,)

# Tags (group << 16 | element) of the elements written here.
_CODE_VALUE: Final = 0x00080100
_CODING_SCHEME_DESIGNATOR: Final = 0x00080102
_CODING_SCHEME_VERSION: Final = 0x00080103
_CODE_MEANING: Final = 0x00080104
_MAPPING_RESOURCE: Final = 0x00080105
_LONG_CODE_VALUE: Final = 0x00080119
_URN_CODE_VALUE: Final = 0x00080120
_REFERENCED_SERIES_SEQUENCE: Final = 0x00081115
_REFERENCED_SOP_CLASS_UID: Final = 0x00081150
_REFERENCED_SOP_INSTANCE_UID: Final = 0x00081155
_REFERENCED_SOP_SEQUENCE: Final = 0x00081199
_STUDY_INSTANCE_UID: Final = 0x0020000D
_SERIES_INSTANCE_UID: Final = 0x0020000E
_MEASUREMENT_UNITS_CODE_SEQUENCE: Final = 0x004008EA
_RELATIONSHIP_TYPE: Final = 0x0040A010
_VALUE_TYPE: Final = 0x0040A040
_CONCEPT_NAME_CODE_SEQUENCE: Final = 0x0040A043
_CONTINUITY_OF_CONTENT: Final = 0x0040A050
_UID: Final = 0x0040A124
_TEXT_VALUE: Final = 0x0040A160
_FLOATING_POINT_VALUE: Final = 0x0040A161
_CONCEPT_CODE_SEQUENCE: Final = 0x0040A168
_MEASURED_VALUE_SEQUENCE: Final = 0x0040A300
_NUMERIC_VALUE: Final = 0x0040A30A
_CONTENT_TEMPLATE_SEQUENCE: Final = 0x0040A504
_CONTENT_SEQUENCE: Final = 0x0040A730
_TEMPLATE_IDENTIFIER: Final = 0x0040DB00
_GRAPHIC_DATA: Final = 0x00700022
_GRAPHIC_TYPE: Final = 0x00700023
_REFERENCED_FRAME_OF_REFERENCE_UID: Final = 0x30060024

_HEADER_SHORT: Final = struct.Struct("<HH2sH")
_HEADER_LONG: Final = struct.Struct("<HH2sHI")
_ITEM_HEADER: Final = struct.Struct("<HHI")


def _element(tag: int, vr: str, value: bytes) -> bytes:
    """One explicit VR little endian element; ``value`` already has even length."""
    if vr in _LONG_VRS:
        return _HEADER_LONG.pack(tag >> 16, tag & 0xFFFF, vr.encode("ascii"), 0, len(value)) + value
    return _HEADER_SHORT.pack(tag >> 16, tag & 0xFFFF, vr.encode("ascii"), len(value)) + value


def _text(tag: int, vr: str, value: str) -> bytes:
    raw = value.encode("ascii")
    if len(raw) % 2:
        raw += b" "
    return _element(tag, vr, raw)


def _uid(tag: int, value: str) -> bytes:
    raw = value.encode("ascii")
    if len(raw) % 2:
        raw += b"\0"
    return _element(tag, "UI", raw)


def _item(body: bytes) -> bytes:
    return _ITEM_HEADER.pack(*_ITEM_TAG, len(body)) + body


def sequence_value(items: Iterable[bytes]) -> bytes:
    """The value of a sequence element: each item body wrapped in a defined-length item."""
    return b"".join(_item(body) for body in items)


def _sequence(tag: int, items: Iterable[bytes]) -> bytes:
    return _element(tag, "SQ", sequence_value(items))


@lru_cache(maxsize=512)
def _code_body(value: str, scheme: str, meaning: str, version: str | None) -> bytes:
    elements = []
    if len(value) > _SHORT_CODE_MAX:
        if value.startswith("urn") or "://" in value:
            elements.append((_URN_CODE_VALUE, _text(_URN_CODE_VALUE, "UR", value)))
        else:
            elements.append((_LONG_CODE_VALUE, _text(_LONG_CODE_VALUE, "UC", value)))
    else:
        elements.append((_CODE_VALUE, _text(_CODE_VALUE, "SH", value)))
    elements.append((_CODING_SCHEME_DESIGNATOR, _text(_CODING_SCHEME_DESIGNATOR, "SH", scheme)))
    if version is not None:
        elements.append((_CODING_SCHEME_VERSION, _text(_CODING_SCHEME_VERSION, "SH", version)))
    elements.append((_CODE_MEANING, _text(_CODE_MEANING, "LO", meaning)))
    return b"".join(e for _, e in sorted(elements))


def code_item(code: Code) -> bytes:
    """Body of a code sequence item (Code Sequence Macro) for ``code``.

    ``code`` may also be a :class:`pydicom.sr.coding.Code` or a highdicom ``CodedConcept``
    (the same attributes).
    """
    return _code_body(str(code.value), str(code.scheme_designator), str(code.meaning), code.scheme_version)


def _code_sequence(tag: int, code: Code) -> bytes:
    return _sequence(tag, [code_item(code)])


def content_item(
    relationship: str,
    value_type: str,
    name: Code,
    value_elements: Sequence[tuple[int, bytes]] = (),
    children: Sequence[bytes] = (),
) -> bytes:
    """Body of one SR content item: relationship, value type, concept name, value, children."""
    elements = [
        (_RELATIONSHIP_TYPE, _text(_RELATIONSHIP_TYPE, "CS", relationship)),
        (_VALUE_TYPE, _text(_VALUE_TYPE, "CS", value_type)),
        (_CONCEPT_NAME_CODE_SEQUENCE, _code_sequence(_CONCEPT_NAME_CODE_SEQUENCE, name)),
        *value_elements,
    ]
    if children:
        elements.append((_CONTENT_SEQUENCE, _sequence(_CONTENT_SEQUENCE, children)))
    return b"".join(e for _, e in sorted(elements, key=lambda te: te[0]))


def _text_value(value: str, encodings: Sequence[str]) -> bytes:
    """Text Value (UT) element: ASCII as it is, other text as pydicom's writer encodes it."""
    if value.isascii():
        return _text(_TEXT_VALUE, "UT", value)
    raw = encode_string(value, list(encodings))
    if len(raw) % 2:
        raw += b" "
    return _element(_TEXT_VALUE, "UT", raw)


def _text_item(relationship: str, name: Code, text: str, encodings: Sequence[str]) -> bytes:
    return content_item(relationship, "TEXT", name, [(_TEXT_VALUE, _text_value(text, encodings))])


def _uidref_item(relationship: str, name: Code, uid: str) -> bytes:
    return content_item(relationship, "UIDREF", name, [(_UID, _uid(_UID, uid))])


def _code_value_item(relationship: str, name: Code, value: Code, children: Sequence[bytes] = ()) -> bytes:
    return content_item(
        relationship,
        "CODE",
        name,
        [(_CONCEPT_CODE_SEQUENCE, _code_sequence(_CONCEPT_CODE_SEQUENCE, value))],
        children,
    )


def _ds_string(value: float) -> str:
    ds = DS(value, auto_format=True)
    return ds.original_string if hasattr(ds, "original_string") else str(ds)


def _num_item(name: Code, value: int | float, unit: Code, children: Sequence[bytes] = ()) -> bytes:
    """NUM content item (CONTAINS) as highdicom's NumContentItem: DS text and, for floats, FD."""
    measured = [
        (_MEASUREMENT_UNITS_CODE_SEQUENCE, _code_sequence(_MEASUREMENT_UNITS_CODE_SEQUENCE, unit)),
        (_NUMERIC_VALUE, _text(_NUMERIC_VALUE, "DS", _ds_string(value))),
    ]
    if isinstance(value, float):
        measured.append(
            (_FLOATING_POINT_VALUE, _element(_FLOATING_POINT_VALUE, "FD", struct.pack("<d", value)))
        )
    body = b"".join(e for _, e in sorted(measured, key=lambda te: te[0]))
    return content_item(
        "CONTAINS",
        "NUM",
        name,
        [(_MEASURED_VALUE_SEQUENCE, _sequence(_MEASURED_VALUE_SEQUENCE, [body]))],
        children,
    )


def _point_item(purpose: Code, point: Sequence[float], frame_of_reference_uid: str) -> bytes:
    """SCOORD3D POINT (INFERRED FROM), as highdicom's CoordinatesForMeasurement3D."""
    values = [
        (_GRAPHIC_DATA, _element(_GRAPHIC_DATA, "FL", struct.pack("<3f", *(float(x) for x in point)))),
        (_GRAPHIC_TYPE, _text(_GRAPHIC_TYPE, "CS", "POINT")),
        (
            _REFERENCED_FRAME_OF_REFERENCE_UID,
            _uid(_REFERENCED_FRAME_OF_REFERENCE_UID, frame_of_reference_uid),
        ),
    ]
    return content_item("INFERRED FROM", "SCOORD3D", purpose, values)


class GroupValues:
    """What one TID 1501 group says, as codes and numbers (built by ``spinevcf.report.sr``).

    Attributes:
        tracking_identifier: text of the Tracking Identifier.
        tracking_uid: the Tracking Unique Identifier.
        finding_type: the group's Finding code.
        finding_site: the group's Finding Site (the vertebra's code, or the spine).
        algorithm: (name, version, parameters) of TID 4019.
        heights: per height, (name, value, unit, topographical modifier,
            ((purpose, point LPS), ...)).
        measurements: other NUM items, (name, value, unit), in order; an ``int`` value is
            written as Numeric Value alone, a ``float`` also as Floating Point Value.
        evaluations: CODE items, (name, value), in order.
    """

    __slots__ = (
        "tracking_identifier",
        "tracking_uid",
        "finding_type",
        "finding_site",
        "algorithm",
        "heights",
        "measurements",
        "evaluations",
    )

    def __init__(
        self,
        *,
        tracking_identifier: str,
        tracking_uid: str,
        finding_type: Code,
        finding_site: Code,
        algorithm: tuple[str, str, Sequence[str]],
        heights: Sequence[tuple[Code, float, Code, Code, Sequence[tuple[Code, Sequence[float]]]]] = (),
        measurements: Sequence[tuple[Code, int | float, Code]] = (),
        evaluations: Sequence[tuple[Code, Code]] = (),
    ) -> None:
        self.tracking_identifier = tracking_identifier
        self.tracking_uid = tracking_uid
        self.finding_type = finding_type
        self.finding_site = finding_site
        self.algorithm = algorithm
        self.heights = heights
        self.measurements = measurements
        self.evaluations = evaluations


# Concept names of TID 1501 / TID 4019 / TID 300 (DCM and SCT, as highdicom's codes).
_TRACKING_IDENTIFIER: Final = Code("112039", "DCM", "Tracking Identifier")
_TRACKING_UID: Final = Code("112040", "DCM", "Tracking Unique Identifier")
_FINDING: Final = Code("121071", "DCM", "Finding")
_FINDING_SITE: Final = Code("363698007", "SCT", "Finding Site")
_TOPOGRAPHICAL_MODIFIER: Final = Code("106233006", "SCT", "Topographical modifier")
_ALGORITHM_NAME: Final = Code("111001", "DCM", "Algorithm Name")
_ALGORITHM_VERSION: Final = Code("111003", "DCM", "Algorithm Version")
_ALGORITHM_PARAMETERS: Final = Code("111002", "DCM", "Algorithm Parameters")
_MEASUREMENT_GROUP: Final = Code("125007", "DCM", "Measurement Group")
# TID 1500 root items (DCM, as pydicom's codedict and highdicom name them).
_LANGUAGE: Final = Code("121049", "DCM", "Language of Content Item and Descendants")
_OBSERVER_TYPE: Final = Code("121005", "DCM", "Observer Type")
_DEVICE: Final = Code("121007", "DCM", "Device")
_DEVICE_OBSERVER_UID: Final = Code("121012", "DCM", "Device Observer UID")
_DEVICE_OBSERVER_NAME: Final = Code("121013", "DCM", "Device Observer Name")
_DEVICE_OBSERVER_MANUFACTURER: Final = Code("121014", "DCM", "Device Observer Manufacturer")
_DEVICE_OBSERVER_MODEL_NAME: Final = Code("121015", "DCM", "Device Observer Model Name")
_PROCEDURE_REPORTED: Final = Code("121058", "DCM", "Procedure reported")
_IMAGING_MEASUREMENTS: Final = Code("126010", "DCM", "Imaging Measurements")


def _template_item(identifier: str) -> bytes:
    """Body of a Content Template Sequence item: DCMR template ``identifier``."""
    return _text(_MAPPING_RESOURCE, "CS", "DCMR") + _text(_TEMPLATE_IDENTIFIER, "CS", identifier)


@lru_cache(maxsize=8)
def _template_sequence(identifier: str) -> bytes:
    return _sequence(_CONTENT_TEMPLATE_SEQUENCE, [_template_item(identifier)])


def _algorithm_items(algorithm: tuple[str, str, Sequence[str]], encodings: Sequence[str]) -> list[bytes]:
    name, version, parameters = algorithm
    items = [
        _text_item("HAS CONCEPT MOD", _ALGORITHM_NAME, name, encodings),
        _text_item("HAS CONCEPT MOD", _ALGORITHM_VERSION, version, encodings),
    ]
    items.extend(_text_item("HAS CONCEPT MOD", _ALGORITHM_PARAMETERS, p, encodings) for p in parameters)
    return items


def measurement_group_item(
    g: GroupValues, frame_of_reference_uid: str, encodings: Sequence[str] = DEFAULT_ENCODINGS
) -> bytes:
    """Body of one TID 1501 Measurement Group container (CONTAINS, in Imaging Measurements).

    Args:
        g: what the group says.
        frame_of_reference_uid: frame of reference of the SCOORD3D points of the heights.
        encodings: Python encodings of the document's character set
            (``pydicom.charset.convert_encodings``), for TEXT values that are not ASCII.
    """
    children = [
        _text_item("HAS OBS CONTEXT", _TRACKING_IDENTIFIER, g.tracking_identifier, encodings),
        _uidref_item("HAS OBS CONTEXT", _TRACKING_UID, g.tracking_uid),
        _code_value_item("CONTAINS", _FINDING, g.finding_type),
        _code_value_item("HAS CONCEPT MOD", _FINDING_SITE, g.finding_site),
        *_algorithm_items(g.algorithm, encodings),
    ]
    for name, value, unit, modifier, points in g.heights:
        site = _code_value_item(
            "HAS CONCEPT MOD",
            _FINDING_SITE,
            g.finding_site,
            [_code_value_item("HAS CONCEPT MOD", _TOPOGRAPHICAL_MODIFIER, modifier)],
        )
        coords = [_point_item(purpose, point, frame_of_reference_uid) for purpose, point in points]
        children.append(_num_item(name, value, unit, [site, *coords]))
    children.extend(_num_item(name, value, unit) for name, value, unit in g.measurements)
    children.extend(_code_value_item("CONTAINS", name, value) for name, value in g.evaluations)
    values = [
        (_CONTINUITY_OF_CONTENT, _text(_CONTINUITY_OF_CONTENT, "CS", "CONTINUOUS")),
        (_CONTENT_TEMPLATE_SEQUENCE, _template_sequence(MEASUREMENT_GROUP_TEMPLATE)),
    ]
    return content_item("CONTAINS", "CONTAINER", _MEASUREMENT_GROUP, values, children)


class DeviceObserver:
    """TID 1004 Device Observer Identifying Attributes of the observer context.

    Attributes:
        uid: Device Observer UID.
        name: Device Observer Name.
        manufacturer: Device Observer Manufacturer.
        model_name: Device Observer Model Name.
    """

    __slots__ = ("uid", "name", "manufacturer", "model_name")

    def __init__(self, *, uid: str, name: str, manufacturer: str, model_name: str) -> None:
        self.uid = uid
        self.name = name
        self.manufacturer = manufacturer
        self.model_name = model_name


def measurement_report_content(
    *,
    language: Code,
    device: DeviceObserver,
    procedure_reported: Code,
    groups: Sequence[bytes],
    encodings: Sequence[str] = DEFAULT_ENCODINGS,
) -> bytes:
    """Value of the Content Sequence of the TID 1500 Imaging Measurement Report root.

    Language of content (TID 1204), observer context: observer type Device and its
    identifying attributes (TID 1002 / 1004), procedure reported, then the Imaging
    Measurements container holding ``groups`` (bodies from :func:`measurement_group_item`).
    """
    items = [
        _code_value_item("HAS CONCEPT MOD", _LANGUAGE, language),
        _code_value_item("HAS OBS CONTEXT", _OBSERVER_TYPE, _DEVICE),
        _uidref_item("HAS OBS CONTEXT", _DEVICE_OBSERVER_UID, device.uid),
        _text_item("HAS OBS CONTEXT", _DEVICE_OBSERVER_NAME, device.name, encodings),
        _text_item("HAS OBS CONTEXT", _DEVICE_OBSERVER_MANUFACTURER, device.manufacturer, encodings),
        _text_item("HAS OBS CONTEXT", _DEVICE_OBSERVER_MODEL_NAME, device.model_name, encodings),
        _code_value_item("HAS CONCEPT MOD", _PROCEDURE_REPORTED, procedure_reported),
        content_item(
            "CONTAINS",
            "CONTAINER",
            _IMAGING_MEASUREMENTS,
            [(_CONTINUITY_OF_CONTENT, _text(_CONTINUITY_OF_CONTENT, "CS", "CONTINUOUS"))],
            groups,
        ),
    ]
    return sequence_value(items)


def root_elements(title: Code, template_identifier: str, content: bytes) -> list[RawDataElement]:
    """The root CONTAINER's elements, which an SR document holds at its top level.

    Value Type, Concept Name Code Sequence (the document title), Continuity Of Content,
    Content Template Sequence (DCMR ``template_identifier``) and the Content Sequence
    (``content``, e.g. from :func:`measurement_report_content`), as raw elements.
    """
    return [
        _raw(_VALUE_TYPE, "CS", _padded("CONTAINER")),
        raw_sequence(_CONCEPT_NAME_CODE_SEQUENCE, sequence_value([code_item(title)])),
        _raw(_CONTINUITY_OF_CONTENT, "CS", _padded("CONTINUOUS")),
        raw_sequence(_CONTENT_TEMPLATE_SEQUENCE, sequence_value([_template_item(template_identifier)])),
        raw_sequence(_CONTENT_SEQUENCE, content),
    ]


def _padded(value: str) -> bytes:
    raw = value.encode("ascii")
    return raw + b" " if len(raw) % 2 else raw


def _raw(tag: int, vr: str, value: bytes) -> RawDataElement:
    """A pydicom raw element: explicit VR, little endian, value already encoded."""
    return RawDataElement(Tag(tag), vr, len(value), value, 0, False, True)


def evidence_sequence_value(
    study_instance_uid: str, series_instance_uid: str, sop_class_uid: str, sop_instance_uids: Sequence[str]
) -> bytes:
    """Value of the Current Requested Procedure Evidence Sequence for one series.

    One study item holding one series item whose Referenced SOP Sequence lists every
    instance in the given order (duplicates already removed by the caller).
    """
    class_element = _uid(_REFERENCED_SOP_CLASS_UID, sop_class_uid)
    instances = [class_element + _uid(_REFERENCED_SOP_INSTANCE_UID, uid) for uid in sop_instance_uids]
    series = _sequence(_REFERENCED_SOP_SEQUENCE, instances) + _uid(_SERIES_INSTANCE_UID, series_instance_uid)
    study = _sequence(_REFERENCED_SERIES_SEQUENCE, [series]) + _uid(_STUDY_INSTANCE_UID, study_instance_uid)
    return sequence_value([study])


def raw_sequence(keyword_tag: int, value: bytes) -> RawDataElement:
    """A sequence element holding already encoded items (explicit VR little endian)."""
    return _raw(keyword_tag, "SQ", value)
