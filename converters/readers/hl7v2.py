"""Read HL7 v2 export files into :class:`SourceRecord` objects carrying a lazy message model.

hl7apy's full parser builds and validates an object tree per message (~26 messages/s), far too
slow for the pipeline's throughput target, so this module tokenises itself and only as far as
asked: a file is searched for the starts of MSH and envelope segments, a message is decoded and
split into segments when it is yielded, a segment is split into fields on the first ``get``, and
a field into repetitions and components when one of them is read. Structure knowledge (field
names, datatypes) stays with hl7apy, see :mod:`converters.readers.hl7v2_structure`.

What a file may look like (HL7 v2.5 chapter 2 "Control", and what exports really contain):

* one or many messages, split at every segment that starts with ``MSH``;
* batch envelopes FHS/BHS ... BTS/FTS (section "HL7 batch protocol"); BHS-11 names the batch;
* MLLP framing ``\\x0b ... \\x1c\\x0d`` (the "minimal lower layer protocol") around each
  message, and a UTF-8 byte-order mark at the start of the file;
* CR, LF or CRLF segment separators, mixed within one file;
* any encoding characters declared in MSH-1 and MSH-2;
* the character set of MSH-18 (HL7 table 0211); Dutch senders often declare ``8859/1`` and send
  UTF-8 bytes, which is read as UTF-8 and noted in ``meta["charset_note"]``.

A message that cannot be read becomes a record with ``payload=None`` and a :class:`SourceError`
that names the field, never the value; so do bytes outside any message. The rest of the file goes
on: nothing read from a file is silently dropped.
"""

from __future__ import annotations

import logging
import mmap
import re
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path

from converters.errors import SourceError
from converters.records import SourceRecord

log = logging.getLogger(__name__)

FORMAT = "hl7v2"

_NULL = '""'  # HL7 v2.5 chapter 2.5.3: an explicit null, "delete the value the receiver holds"
_SEGMENT_NAME = re.compile(r"[A-Z][A-Z0-9]{2}\Z")
_NAMES_SEEN: set[str] = set()  # valid names met so far: at most 26 * 36 * 36 entries
_NO_SEGMENT_NAME = "the line does not start with a valid segment name"
_LINE = re.compile(rb"[^\r\n]*")
_FIRST_LINE = re.compile(rb"[^\r\n]+")
# Segments that start a message or belong to a batch envelope (HL7 v2.5 batch protocol).
_BOUNDARY_NAMES = (b"MSH", b"FHS", b"BHS", b"BTS", b"FTS")
_LINE_STARTERS = frozenset(b"\r\n\x0b\x1c")  # a segment starts after a line end or MLLP byte
# MLLP framing, line ends, spaces, tabs and a DOS end-of-file mark carry no segment.
_TRIM = b"\r\n\x0b\x1c\x1a\t "
_BOM = b"\xef\xbb\xbf"

# HL7 table 0211 (MSH-18) to Python codecs. The last four are not HL7 codes but are sent anyway.
_CHARSETS = {
    "ASCII": "ascii",
    "8859/1": "latin-1",
    "8859/2": "iso8859-2",
    "8859/3": "iso8859-3",
    "8859/4": "iso8859-4",
    "8859/5": "iso8859-5",
    "8859/6": "iso8859-6",
    "8859/7": "iso8859-7",
    "8859/8": "iso8859-8",
    "8859/9": "iso8859-9",
    "8859/15": "iso8859-15",
    "UNICODE UTF-8": "utf-8",
    "UTF-8": "utf-8",
    "ISO-8859-1": "latin-1",
    "ISO-8859-15": "iso8859-15",
    "WINDOWS-1252": "cp1252",
}
_SINGLE_BYTE = frozenset(c for c in _CHARSETS.values() if c not in ("utf-8", "ascii"))
_C1_BYTES = re.compile(rb"[\x80-\x9f]")


class Hl7FormatError(Exception):
    """A message breaks HL7 v2 syntax; ``field`` is where (``MSH-9``, ``segment 4``)."""

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}")


# --------------------------------------------------------------------------------------------
# The message model


class Encoding:
    """The delimiters of one message (MSH-1, MSH-2) and the character set its bytes were in."""

    __slots__ = (
        "field",
        "component",
        "repetition",
        "escape",
        "subcomponent",
        "truncation",
        "codec",
        "_escapes",
        "_replacements",
    )

    def __init__(self, field: str, characters: str, codec: str) -> None:
        self.field = field
        self.component = characters[0]
        self.repetition = characters[1]
        self.escape = characters[2]
        self.subcomponent = characters[3]
        # HL7 v2.7 added a fifth encoding character, the truncation character.
        self.truncation = characters[4] if len(characters) > 4 else ""
        self.codec = codec
        esc = re.escape(self.escape)
        self._escapes = re.compile(f"{esc}([^{esc}]*){esc}")
        self._replacements = {
            "F": field,
            "S": self.component,
            "T": self.subcomponent,
            "R": self.repetition,
            "E": self.escape,
            "H": "",
            "N": "",
            ".br": "\n",
            ".sp": "\n",
        }
        if self.truncation:
            self._replacements["P"] = self.truncation

    def unescape(self, value: str) -> str:
        """Resolve the escape sequences of HL7 v2.5 chapter 2 in one primitive value."""
        if self.escape not in value:
            return value
        return self._escapes.sub(self._resolve, value)

    def _resolve(self, match: re.Match[str]) -> str:
        code = match.group(1)
        known = self._replacements.get(code)
        if known is not None:
            return known
        if code[:1] == "X":
            return self._hex(code[1:], match.group(0))
        if code.startswith(".sp"):
            return "\n"
        if code[:1] in ("C", "M", "."):
            # Character-set switches (ISO 2022, the C and M sequences) and formatting commands
            # other than line breaks carry no text of their own.
            return ""
        return match.group(0)  # \Zxx\ and unknown sequences are local: keep them as sent

    def _hex(self, digits: str, literal: str) -> str:
        try:
            return bytes.fromhex(digits).decode(self.codec, errors="replace")
        except ValueError:
            return literal


@lru_cache(maxsize=32)
def _encoding(field: str, characters: str, codec: str) -> Encoding:
    return Encoding(field, characters, codec)


class Segment:
    """One segment, split into fields on first access and into components when asked.

    Numbering follows HL7: fields and components from 1, repetitions from 0. In MSH, MSH-1 is the
    field separator and MSH-2 the encoding characters, so ``msh.get(3)`` is the sending
    application. Values come back unescaped; absent values and the explicit null ``""`` come back
    as ``""`` (ask :meth:`is_null` to tell them apart). ``repr`` shows no values, only the place.
    """

    __slots__ = ("name", "index", "_line", "_enc", "_fields", "_parsed", "_offset")

    def __init__(self, name: str, index: int, line: str, encoding: Encoding) -> None:
        self.name = name
        self.index = index
        self._line = line
        self._enc = encoding
        self._fields: list[str] | None = None
        self._parsed: dict[int, list[list[str]]] = {}
        # In MSH the separator itself is field 1, so the n-th split part is MSH-(n+1).
        self._offset = 1 if name in ("MSH", "FHS", "BHS") else 0

    def __repr__(self) -> str:
        return f"Segment({self.name}, index={self.index})"

    def get(
        self, field: int, component: int = 1, subcomponent: int = 1, repetition: int = 0
    ) -> str:
        """Return the unescaped value at ``field.component.subcomponent``; "" when absent."""
        if self._offset and field <= 2:
            return self._header_value(field, component, subcomponent, repetition)
        reps = self._parsed.get(field)
        if reps is None:
            reps = self._parse(field)
        if repetition >= len(reps):
            return ""
        components = reps[repetition]
        if not 0 < component <= len(components):
            return ""
        value = components[component - 1]
        sub = self._enc.subcomponent
        if sub in value:
            parts = value.split(sub)
            value = parts[subcomponent - 1] if 0 < subcomponent <= len(parts) else ""
        elif subcomponent != 1:
            return ""
        if value == _NULL:
            return ""
        return self._enc.unescape(value)

    def repetitions(self, field: int) -> int:
        """Return how many times ``field`` occurs; 0 when the field is empty."""
        return len(self._reps(field))

    def component_count(self, field: int, repetition: int = 0) -> int:
        """Return how many components the repetition holds, counting empty ones between."""
        reps = self._reps(field)
        if repetition >= len(reps) or reps[repetition] == [""]:
            return 0
        return len(reps[repetition])

    def subcomponent_count(self, field: int, component: int, repetition: int = 0) -> int:
        """Return how many sub-components the component holds; 0 when it is empty."""
        value = self._component(field, component, repetition)
        return value.count(self._enc.subcomponent) + 1 if value else 0

    def field_count(self) -> int:
        """Return the highest field number that holds a value."""
        fields = self._split()
        last = len(fields) - 1
        while last > 0 and not fields[last]:
            last -= 1
        return last + self._offset

    def has(self, field: int, component: int | None = None, repetition: int = 0) -> bool:
        """Tell whether a value (not the explicit null) is present at the place given."""
        if component is None:
            reps = self._reps(field)
            if repetition >= len(reps):
                return False
            value = self._enc.component.join(reps[repetition])
        else:
            value = self._component(field, component, repetition)
        return bool(value) and value != _NULL and value.strip(self._separators()) != ""

    def is_null(self, field: int) -> bool:
        """Tell whether the field holds the HL7 explicit null ``""`` (chapter 2.5.3)."""
        return self._raw(field) == _NULL

    # -- tokenising, lazily and cached -------------------------------------------------------

    def _split(self) -> list[str]:
        fields = self._fields
        if fields is None:
            fields = self._fields = self._line.split(self._enc.field)
        return fields

    def _raw(self, field: int) -> str:
        if field < 1:
            raise ValueError("HL7 field numbers start at 1")
        if self._offset and field == 1:
            return self._enc.field
        fields = self._split()
        position = field - self._offset
        return fields[position] if position < len(fields) else ""

    def _reps(self, field: int) -> list[list[str]]:
        reps = self._parsed.get(field)
        return self._parse(field) if reps is None else reps

    def _parse(self, field: int) -> list[list[str]]:
        raw = self._raw(field)
        if not raw:
            reps: list[list[str]] = []
        elif self._offset and field <= 2:
            reps = [[raw]]  # the delimiters themselves: never split or unescaped
        elif self._enc.repetition in raw:
            component = self._enc.component
            reps = [rep.split(component) for rep in raw.split(self._enc.repetition)]
        else:
            reps = [raw.split(self._enc.component)]
        self._parsed[field] = reps
        return reps

    def _component(self, field: int, component: int, repetition: int) -> str:
        reps = self._reps(field)
        if repetition >= len(reps):
            return ""
        components = reps[repetition]
        if not 1 <= component <= len(components):
            return ""
        return components[component - 1]

    def _header_value(self, field: int, component: int, subcomponent: int, repetition: int) -> str:
        if component != 1 or subcomponent != 1 or repetition != 0:
            return ""
        return self._raw(field)

    def _separators(self) -> str:
        enc = self._enc
        return enc.component + enc.subcomponent + enc.repetition


class Hl7Message:
    """One decoded message: its segments in order and the header facts every mapping needs."""

    __slots__ = (
        "segments",
        "control_id",
        "message_type",
        "trigger",
        "structure",
        "version",
        "charset",
        "encoding",
        "_by_name",
    )

    def __init__(self, segments: list[Segment], encoding: Encoding) -> None:
        self.segments = segments
        self.encoding = encoding
        self.charset = encoding.codec
        msh = segments[0]
        self.control_id = msh.get(10)
        self.trigger = msh.get(9, 2)
        code = msh.get(9, 1)
        self.message_type = f"{code}^{self.trigger}" if self.trigger else code
        self.structure = msh.get(9, 3)
        self.version = msh.get(12, 1)
        self._by_name: dict[str, list[Segment]] | None = None

    def __repr__(self) -> str:
        return f"Hl7Message({self.message_type}, {len(self.segments)} segments)"

    def first(self, name: str) -> Segment | None:
        """Return the first segment called ``name``, or None."""
        found = self._index().get(name)
        return found[0] if found else None

    def all(self, name: str) -> list[Segment]:
        """Return every segment called ``name``, in message order."""
        return list(self._index().get(name, ()))

    def preceding(self, segment: Segment, name: str) -> Segment | None:
        """Return the nearest segment called ``name`` before ``segment`` (OBR before an OBX)."""
        for index in range(segment.index - 1, -1, -1):
            if self.segments[index].name == name:
                return self.segments[index]
        return None

    def _index(self) -> dict[str, list[Segment]]:
        if self._by_name is None:
            index: dict[str, list[Segment]] = {}
            for segment in self.segments:
                index.setdefault(segment.name, []).append(segment)
            self._by_name = index
        return self._by_name


# --------------------------------------------------------------------------------------------
# Decoding one message


class _Header:
    """What can be read from the MSH bytes before the message's character set is known."""

    __slots__ = ("field", "characters", "fields", "charset")

    def __init__(self, line: bytes) -> None:
        text = line.decode("latin-1")  # byte for byte: delimiters and codes are ASCII
        if len(text) < 8:
            raise Hl7FormatError("MSH", "the MSH segment is too short to hold its delimiters")
        self.field = text[3]
        self.fields = text.split(self.field)
        self.characters = self.fields[1]
        _check_delimiters(self.field, self.characters)
        self.charset = self.value(18).strip().upper()

    def value(self, field: int) -> str:
        """Return component 1 of the first repetition of MSH-``field``, still escaped."""
        position = field - 1
        raw = self.fields[position] if position < len(self.fields) else ""
        return raw.split(self.characters[1])[0].split(self.characters[0])[0]

    def kind(self) -> str:
        """Return the MSH-9 message code and trigger as a record kind (``ADT^A01``)."""
        position = 8
        raw = self.fields[position] if position < len(self.fields) else ""
        parts = raw.split(self.characters[1])[0].split(self.characters[0])
        return "^".join(p for p in parts[:2] if p)


def _check_delimiters(field: str, characters: str) -> None:
    # HL7 v2.5 "message delimiters": MSH-2 holds component, repetition, escape and sub-component
    # characters in that order (v2.7 adds truncation); all distinct, none alphanumeric.
    delimiters = field + characters
    if not 4 <= len(characters) <= 5 or len(set(delimiters)) != len(delimiters):
        raise Hl7FormatError("MSH-2", "the encoding characters are missing or repeated")
    if any(c.isalnum() or c.isspace() for c in delimiters):
        raise Hl7FormatError("MSH-2", "the encoding characters include a letter, digit or space")


def _decode(raw: bytes, declared: str) -> tuple[str, str, str]:
    """Decode one message into its text, the codec used and a note if MSH-18 said otherwise."""
    if raw.isascii():
        return raw.decode("ascii"), _CHARSETS.get(declared, "utf-8"), ""
    if declared in ("", "ASCII"):
        # HL7 v2.5 MSH-18: absent means ASCII; UTF-8 is the superset senders mean.
        reason = "the bytes are neither ASCII nor UTF-8, as MSH-18 implies"
        note = "MSH-18 declares ASCII; read as UTF-8" if declared else ""
        return _strict(raw, "utf-8", reason), "utf-8", note
    codec = _CHARSETS.get(declared)
    if codec is None:
        raise Hl7FormatError("MSH-18", "the character set is not one this reader supports")
    if codec in _SINGLE_BYTE:
        return _single_byte(raw, codec, declared)
    return _strict(raw, codec, "the bytes do not match the character set declared"), codec, ""


def _single_byte(raw: bytes, codec: str, declared: str) -> tuple[str, str, str]:
    # Dutch senders commonly declare 8859/1 (or /15) and write UTF-8. Bytes that decode as UTF-8
    # and hold non-ASCII characters are almost never meant as Latin-1, so UTF-8 wins.
    try:
        return raw.decode("utf-8"), "utf-8", f"MSH-18 declares {declared}; read as UTF-8"
    except UnicodeDecodeError:
        pass
    if codec == "latin-1" and _C1_BYTES.search(raw):
        # Latin-1 has only control codes in 0x80-0x9F; Windows senders put e.g. the euro sign there.
        try:
            note = f"MSH-18 declares {declared}; read as windows-1252"
            return raw.decode("cp1252"), "cp1252", note
        except UnicodeDecodeError:
            pass
    return raw.decode(codec), codec, ""


def _strict(raw: bytes, codec: str, reason: str) -> str:
    try:
        return raw.decode(codec)
    except UnicodeDecodeError:
        raise Hl7FormatError("MSH-18", reason) from None


def _segments(text: str, encoding: Encoding) -> list[Segment]:
    separator = encoding.field
    segments: list[Segment] = []
    for line in text.replace("\r\n", "\r").replace("\n", "\r").split("\r"):
        name = line[:3]
        if name not in _NAMES_SEEN or line[-1:] == "\x1c":
            line = line.lstrip("\x0b\x1c\ufeff").rstrip("\x1c")
            if not line.strip(" \t\x1a"):
                continue  # blank lines and MLLP framing carry no segment
            name = line[:3]
            if not _SEGMENT_NAME.match(name):
                raise Hl7FormatError(f"segment {len(segments) + 1}", _NO_SEGMENT_NAME)
            _NAMES_SEEN.add(name)
        if len(line) > 3 and line[3] != separator:
            raise Hl7FormatError(f"segment {len(segments) + 1}", _NO_SEGMENT_NAME)
        segments.append(Segment(name, len(segments), line, encoding))
    return segments


def parse_message(raw: bytes) -> tuple[Hl7Message, str]:
    """Parse the bytes of one message (MLLP framing already removed).

    Return the message and a note on its character set ("" when the declared one was used).
    Raise :class:`Hl7FormatError` naming the field at fault when the bytes are not a message.
    """
    first_line = _FIRST_LINE.search(raw)
    if first_line is None or not first_line.group().startswith(b"MSH"):
        raise Hl7FormatError("MSH", "the message does not start with an MSH segment")
    header = _Header(first_line.group())
    text, codec, note = _decode(raw, header.charset)
    encoding = _encoding(header.field, header.characters, codec)
    message = Hl7Message(_segments(text, encoding), encoding)
    if not message.segments[0].get(9, 1):
        raise Hl7FormatError("MSH-9", "the message type is missing")
    if not message.control_id:
        raise Hl7FormatError("MSH-10", "the message control id is missing")
    return message, note


# --------------------------------------------------------------------------------------------
# Reading a file


def read_hl7v2(path: Path) -> Iterator[SourceRecord]:
    """Yield one record per message in the file at ``path``, lazily, in file order."""
    with open(path, "rb") as handle:
        try:
            data = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
        except ValueError:  # an empty file cannot be mapped, and holds no messages
            log.info("read %s: empty file", path)
            return
        with data:
            yield from iter_hl7v2(data, str(path))


def iter_hl7v2(data: bytes | mmap.mmap, file: str) -> Iterator[SourceRecord]:
    """Yield one record per message in ``data``; ``file`` names the source in records and logs."""
    reader = _FileReader(data, file)
    yield from reader.records()
    log.info("read %s: %d records, %d malformed", file, reader.position, reader.malformed)


class _FileReader:
    """Splits one file at segment starts into messages, envelope segments and junk.

    Only the starts of MSH, FHS, BHS, BTS and FTS segments are searched for (one regular
    expression over the whole file); the lines in between are left to :func:`parse_message`.
    """

    def __init__(self, data: bytes | mmap.mmap, file: str) -> None:
        self.data = data
        self.file = file
        self.position = 0
        self.malformed = 0
        self.batch = ""

    def records(self) -> Iterator[SourceRecord]:
        """Yield the records of the file in order."""
        region_start, region_kind = 0, b""  # b"" marks bytes before any segment start
        for start, kind in self._boundaries():
            yield from self._region(region_kind, region_start, start)
            region_start, region_kind = start, kind
        yield from self._region(region_kind, region_start, len(self.data))

    def _boundaries(self) -> Iterator[tuple[int, bytes]]:
        """Yield where each MSH, FHS, BHS, BTS and FTS segment starts, in file order.

        ``find`` runs at memory speed where a regular expression would step byte by byte, so
        each name is searched for on its own and the nearest hit taken.
        """
        data = self.data
        next_at = {name: data.find(name) for name in _BOUNDARY_NAMES}
        while True:
            hits = [(at, name) for name, at in next_at.items() if at >= 0]
            if not hits:
                return
            at, name = min(hits)
            next_at[name] = data.find(name, at + 1)
            if self._starts_segment(at, name):
                yield at, name

    def _starts_segment(self, at: int, name: bytes) -> bool:
        data = self.data
        if not (at == 0 or data[at - 1] in _LINE_STARTERS or (at == 3 and data[:3] == _BOM)):
            return False
        # "BTSX..." is no envelope segment; a line starting "MSH" always starts a message.
        return name == b"MSH" or not data[at + 3 : at + 4].isalnum()

    def _region(self, kind: bytes, start: int, end: int) -> Iterator[SourceRecord]:
        if kind == b"MSH":
            yield self._message(self._span(start, end))
            return
        if kind:  # an envelope segment: one line, then perhaps junk up to the next start
            line_end = _LINE.match(self.data, start).end()  # type: ignore[union-attr]
            self._envelope(self.data[start:line_end])
            start = line_end
        span = self._span(start, end)
        if span[0] < span[1]:
            yield self._junk(span)

    def _span(self, start: int, end: int) -> tuple[int, int]:
        """Trim framing and blank lines off both ends; keep the last segment's terminator."""
        region = self.data[start:end]
        if start == 0 and region.startswith(_BOM):
            region, start = region[len(_BOM) :], len(_BOM)
        content = region.strip(_TRIM)
        if not content:
            return end, end
        first = start + len(region) - len(region.lstrip(_TRIM))
        last = first + len(content)
        following = self.data[last : last + 2]
        if following == b"\r\n":
            last += 2
        elif following[:1] in (b"\r", b"\n"):
            last += 1
        return first, last

    def _envelope(self, line: bytes) -> None:
        # BHS-11 is the batch control id (HL7 v2.5 BHS segment); BTS closes the batch.
        name = line[:3]
        if name == b"BHS":
            text = line.rstrip(_TRIM).decode("latin-1")
            fields = text.split(text[3:4]) if len(text) > 3 else []
            self.batch = fields[10].split("^")[0] if len(fields) > 10 else ""
        elif name == b"BTS":
            self.batch = ""

    def _junk(self, span: tuple[int, int]) -> SourceRecord:
        self.position += 1
        raw = bytes(self.data[span[0] : span[1]])
        error = Hl7FormatError("MSH", "bytes outside any message (no MSH segment)")
        record_id = f"bytes at offset {span[0]}"
        return self._failed(raw, "", record_id, error, {"batch": self.batch})

    def _message(self, span: tuple[int, int]) -> SourceRecord:
        self.position += 1
        raw = bytes(self.data[span[0] : span[1]])
        try:
            message, note = parse_message(raw)
        except Hl7FormatError as error:
            kind, record_id, meta = _best_effort_header(raw)
            return self._failed(
                raw,
                kind,
                record_id or f"message {self.position}",
                error,
                {**meta, "batch": self.batch},
            )
        return SourceRecord(
            file=self.file,
            position=self.position,
            record_id=message.control_id,
            format=FORMAT,
            kind=message.message_type,
            raw=raw,
            payload=message,
            meta=self._meta(message, note),
        )

    def _meta(self, message: Hl7Message, note: str) -> dict[str, str]:
        msh = message.segments[0]
        meta = {
            "version": message.version,
            "charset": message.charset,
            "sending_application": msh.get(3, 1),
            "sending_facility": msh.get(4, 1),
            "message_datetime": msh.get(7, 1),
            "batch": self.batch,
        }
        if note:
            meta["charset_note"] = note
        return meta

    def _failed(
        self, raw: bytes, kind: str, record_id: str, error: Hl7FormatError, meta: dict[str, str]
    ) -> SourceRecord:
        self.malformed += 1
        log.warning("%s record %d: %s at %s", self.file, self.position, error.reason, error.field)
        source_error = SourceError(
            error.reason, file=self.file, record_id=record_id, field=error.field, code="malformed"
        )
        return SourceRecord(
            file=self.file,
            position=self.position,
            record_id=record_id,
            format=FORMAT,
            kind=kind,
            raw=raw,
            error=source_error,
            meta=meta,
        )


def _best_effort_header(raw: bytes) -> tuple[str, str, dict[str, str]]:
    """Read the kind, MSH-10 and version of a broken message, for the quarantine record."""
    first_line = _FIRST_LINE.search(raw)
    try:
        header = _Header(first_line.group()) if first_line else None
    except Hl7FormatError:
        header = None
    if header is None:
        return "", "", {}
    return header.kind(), header.value(10), {"version": header.value(12)}
