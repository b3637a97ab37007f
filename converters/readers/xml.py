"""Read XML export files one document at a time, hardened against entity attacks.

Perinatal XML exports come as one document per file (an HL7v3 message, a CDA document, an ADA
instance, a PeriHub peri22x resource, an Astraia export) or as batch files holding many:

* concatenated documents, ``<?xml ...?><export>..</export><?xml ...?><export>..</export>``, which
  is not well-formed as a whole (XML 1.0 section 2.1 allows one root element per document);
* one container element whose children are documents, ``<Batch><REPC_IN004014NL>..`` (the HL7v3
  batch wrapper) or any other wrapper name.

A byte-level splitter finds the documents without building a tree: it reads the file in chunks
into a buffer that holds at most the current document, and tracks only the markup that changes
the element depth. Each document is then parsed on its own by lxml, so memory stays flat however
long the file is, and one broken document does not stop the next.

Security (OWASP XML External Entity Prevention): a document whose DOCTYPE declares entities or
names an external DTD is refused by the splitter, before lxml sees a byte of it, so neither an
external entity (XXE) nor an entity expansion (billion laughs) is ever resolved. The parser is
also configured never to resolve entities, load a DTD or touch the network, and keeps libxml2's
size limits (``huge_tree=False``).

A document that cannot be read becomes a record with ``payload=None`` and a :class:`SourceError`
naming its byte offset and line in the file, never its content. Reading goes on with the next one.
"""

from __future__ import annotations

import codecs
import copy
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from lxml import etree

from converters.errors import SourceError
from converters.records import SourceRecord

log = logging.getLogger(__name__)

FORMAT = "xml"
CHUNK_SIZE = 1 << 20
# A document larger than this is refused rather than buffered; libxml2 itself refuses text
# nodes over 10 MB without huge_tree, so real documents with attachments stay far below it.
MAX_DOCUMENT_BYTES = 100 << 20

HL7V3_NS = "urn:hl7-org:v3"
UNREADABLE_KIND = "xml:unreadable"
FHIR_NAMESPACE = "http://hl7.org/fhir"

# HL7v3 interaction ids: four-letter domain, "_IN", six digits, optional realm (NL).
_INTERACTION = re.compile(r"[A-Z]{4}_IN\d{6}(?:[A-Z]{2})?")
# Root element names that make a document on their own, wherever they appear.
_DOCUMENT_ROOTS = frozenset({"ClinicalDocument", "adaxml", "resource", "export"})

_WHITESPACE = b" \t\r\n"
_BOM_CODECS = (  # UTF-32 first: its little-endian mark begins with UTF-16's
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
_BOMS_WIDE = tuple(bom for bom, _ in _BOM_CODECS[1:])
_XML_START = re.compile(rb"<(?:\?xml[\s?]|!--|!DOCTYPE|[A-Za-z_])")

# Markup, as far as depth tracking needs it (XML 1.0 productions STag, ETag, EmptyElemTag,
# doctypedecl). Quoted attribute values may hold ">" and "/"; a quote running to the end of the
# buffer ends the match there, which tells "read more" from "broken".
_START_TAG = re.compile(
    rb"<([^\s/<>\"'=]+)((?:[^\"'<>]++|\"[^\"]*+\"|'[^']*+'|\"[^\"]*+\Z|'[^']*+\Z)*+)(>)?"
)
_END_TAG = re.compile(rb"</([^\s<>]*)[^<>]*+(>)?")
_END_TAIL = re.compile(rb"\s*+>")
_BLANK_TAIL = re.compile(rb"\s*+\Z")
_XML_DECL = re.compile(rb"<\?xml[\s?]")
_DOCTYPE = re.compile(
    rb"<!DOCTYPE(?P<head>(?:[^\"'\[>]++|\"[^\"]*+\"|'[^']*+')*+)"
    rb"(?:\[(?P<subset>(?:[^\"'\]]++|\"[^\"]*+\"|'[^']*+')*+)\]\s*+)?>"
)
_EXTERNAL_ID = re.compile(rb"\s(?:SYSTEM|PUBLIC)[\s\"']")
_MAX_DOCTYPE = 1 << 20

# The act an HL7v3 message is about: ControlActProcess/subject/<act>, or one level further
# down in the Perined Kernset (.../registrationProcess/subject2/CareProvisionEvent).
_FOCAL_ACT = etree.XPath(
    "hl7:ControlActProcess/hl7:subject/*[hl7:templateId]"
    " | hl7:ControlActProcess/hl7:subject/*/hl7:subject2/*[hl7:templateId]",
    namespaces={"hl7": HL7V3_NS},
)

# libxml2 messages may quote the offending bytes ("Bytes: 0xE9 0x20"): a piece of a name, so cut.
# libxml2's own positions count from the document's start, not the file's: the location we add
# replaces them ("tag mismatch: a line 57 and b" becomes "tag mismatch: a and b").
_MESSAGE_NOISE = re.compile(
    r",? ?Bytes: (?:0x[0-9A-Fa-f]{2} ?)+|, line \d+, column \d+| line \d+(?= and )")


@dataclass(slots=True)
class _Span:
    """A document's bytes as cut by the splitter, before any parsing."""

    offset: int
    line: int
    raw: bytes
    prefix: bytes = b""  # a container child: the XML declaration and container start tag
    suffix: bytes = b""  # a container child: the container end tag
    unsafe: str = ""
    error: str = ""
    root: str = ""
    element: etree._Element | None = None  # parsed already by the splitter's fast path


def read_xml(
    path: Path, *, chunk_size: int = CHUNK_SIZE, max_document_bytes: int = MAX_DOCUMENT_BYTES
) -> Iterator[SourceRecord]:
    """Yield one record per XML document in ``path``, error records included."""
    path = Path(path)
    parser = safe_parser()
    count = errors = 0
    with path.open("rb") as stream:
        if _starts_wide(stream.read(4)):
            stream.seek(0)
            spans: Iterator[_Span] = _whole_file(stream, max_document_bytes)
        else:
            stream.seek(0)
            spans = _Splitter(stream, parser, chunk_size, max_document_bytes).spans()
        for count, span in enumerate(spans, start=1):
            record = _record(span, count, str(path), parser)
            errors += record.error is not None
            yield record
    log.info("read %d XML documents from %s, %d unreadable", count, path.name, errors)


def detect_xml(path: Path) -> bool:
    """Tell whether ``path`` looks like XML from its first bytes."""
    with Path(path).open("rb") as stream:
        head = stream.read(512)
    for bom, codec in _BOM_CODECS:
        if head.startswith(bom):
            head = head[len(bom) :].decode(codec, errors="ignore").encode("utf-8")
            break
    return _XML_START.match(head.lstrip(_WHITESPACE)) is not None


def safe_parser() -> etree.XMLParser:
    """Build the one parser configuration documents are read with."""
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        attribute_defaults=False,
        huge_tree=False,
        remove_comments=False,
    )


def _starts_wide(head: bytes) -> bool:
    """Tell whether a file is UTF-16 or UTF-32, which the byte splitter cannot scan."""
    return head.startswith(_BOMS_WIDE) or head[:2] in (b"<\x00", b"\x00<")


def _whole_file(stream: BinaryIO, limit: int) -> Iterator[_Span]:
    """Read a UTF-16/32 file as one document: the byte splitter scans ASCII-compatible bytes."""
    raw = stream.read(limit + 1)
    if len(raw) > limit:
        yield _Span(0, 1, b"", error=f"UTF-16/32 document larger than {limit} bytes")
        return
    # Any DOCTYPE is refused here: without the splitter there is no finer check.
    span = _Span(0, 1, raw)
    if any("<!DOCTYPE".encode(codec) in raw for codec in ("utf-16-le", "utf-16-be")):
        span.unsafe = "DOCTYPE in a UTF-16/32 document; refused unparsed"
    yield span


class _Splitter:
    """Cut a byte stream into document spans with a buffer bounded by the largest document.

    Two ways to find where a document ends. The fast one, for a root (or container child) whose
    name marks a document: take the first end tag of that name and let lxml parse up to it. If
    it parses, the cut is right, because a well-formed prefix ending in an end tag ends with the
    root's own end tag. If not (a nested namesake, a truncated or broken document), the careful
    way takes over from the start tag: every tag is tracked, so the broken document is cut
    where it really ends and the next one is read.
    """

    def __init__(
        self, stream: BinaryIO, parser: etree.XMLParser, chunk_size: int, limit: int
    ) -> None:
        self.stream = stream
        self.parser = parser
        self.chunk_size = chunk_size
        self.limit = limit
        self.buf = bytearray()
        self.base = 0  # file offset of buf[0]
        self.eof = False
        self.mark = 0  # buffer index up to which newlines are counted in mark_line
        self.mark_line = 0
        self._reset()

    def _reset(self) -> None:
        """Forget the open document: a new one may start at the next markup."""
        self.stack: list[bytes] = []
        self.doc_start: int | None = None
        self.decl = b""
        self.root_tag = b""
        self.deciding = False
        self.container = False
        self.child_start = 0
        self.child_name = b""
        self.unsafe = ""
        self.fast: bytes | None = None  # the end tag the fast path looks for
        self.fast_start = 0
        self.fast_from = 0

    def spans(self) -> Iterator[_Span]:
        """Yield the spans of the documents in file order."""
        pos = 0
        while True:
            if self.fast is not None:
                span = self._fast_span()
                if span is not None:
                    yield span
                    pos = self._fast_done(span)
                    continue
                if self.fast is not None:  # the end tag is not in the buffer yet
                    pos = self._read_more(pos)
                    if pos < 0:
                        pos = yield from self._oversized()
                continue
            lt = self.buf.find(b"<", pos)
            if lt < 0 or (token := self._token(lt)) is None:
                if self.eof:
                    yield from self._finish(pos)
                    return
                pos = self._read_more(pos)
                if pos < 0:  # a document outgrew the limit
                    pos = yield from self._oversized()
                continue
            kind, end, name = token
            if not self.stack and not self.container:
                stray = kind == "text" or kind == "end"
                yield from self._gap_text(pos, end if stray else lt)
                if stray:
                    pos = end
                    continue
            yield from self._handle(kind, lt, end, name)
            pos = end

    # -- tokens ----------------------------------------------------------------------------

    def _token(self, lt: int) -> tuple[str, int, bytes] | None:
        """Classify the markup at ``lt``; None when the buffer ends inside it."""
        buf = self.buf
        if lt + 1 >= len(buf):
            return None if not self.eof else ("text", lt + 1, b"")
        nxt = buf[lt + 1]
        if nxt == 0x2F:  # "/"
            return self._complete(_END_TAG.match(buf, lt), "end", 2)
        if nxt == 0x3F:  # "?"
            return self._until(lt, b"?>", "decl" if _XML_DECL.match(buf, lt) else "pi")
        if nxt == 0x21:  # "!"
            return self._bang(lt)
        if nxt in _WHITESPACE or nxt in b"<>=\"'":
            return ("text", lt + 1, b"")  # a stray "<": lxml names the error when parsing
        m = _START_TAG.match(buf, lt)
        token = self._complete(m, "start", 3)
        if token and token[0] == "start" and m.group(2).endswith(b"/"):
            return ("empty", token[1], token[2])
        return token

    def _complete(self, m: re.Match[bytes], kind: str, close: int) -> tuple[str, int, bytes] | None:
        """Return a tag token, or None when it may continue past the buffer."""
        if m.group(close) is not None:
            return (kind, m.end(), m.group(1))
        if m.end() >= len(self.buf) and not self.eof:
            return None
        return ("text", max(m.end(), m.start() + 1), b"")

    def _until(self, lt: int, closer: bytes, kind: str) -> tuple[str, int, bytes] | None:
        """Return a token that runs to ``closer`` (comment, CDATA section, PI)."""
        end = self.buf.find(closer, lt + 2)
        if end < 0:
            return None if not self.eof else ("text", len(self.buf), b"")
        return (kind, end + len(closer), b"")

    def _bang(self, lt: int) -> tuple[str, int, bytes] | None:
        """Classify ``<!``: comment, CDATA section, DOCTYPE or a stray declaration."""
        buf = self.buf
        if len(buf) - lt < 9 and not self.eof:
            return None
        if buf.startswith(b"<!--", lt):
            return self._until(lt, b"-->", "comment")
        if buf.startswith(b"<![CDATA[", lt):
            return self._until(lt, b"]]>", "cdata")
        if not buf.startswith(b"<!DOCTYPE", lt):
            return self._until(lt, b">", "text")
        m = _DOCTYPE.match(buf, lt)
        if m is None:
            if not self.eof and len(buf) - lt < _MAX_DOCTYPE:
                return None
            self.unsafe = "DOCTYPE could not be delimited; refused unparsed"
            return ("doctype", lt + 9, b"")
        subset, head = m.group("subset") or b"", m.group("head") + b" "
        if b"<!ENTITY" in subset or _EXTERNAL_ID.search(head):
            # OWASP XXE prevention: entities and external DTDs are refused, never expanded.
            self.unsafe = "DOCTYPE declares entities or names an external DTD; refused unparsed"
        return ("doctype", m.end(), b"")

    # -- depth tracking ----------------------------------------------------------------------

    def _handle(self, kind: str, lt: int, end: int, name: bytes) -> Iterator[_Span]:
        """Update the depth for one token and yield a span when a document closes."""
        if kind == "decl":
            yield from self._declaration(lt, end)
        elif kind == "start" or kind == "empty":
            yield from self._start(kind, lt, end, name)
        elif kind == "end":
            yield from self._end(name, lt, end)
        elif not self.stack and self.doc_start is None and kind != "text":
            self.doc_start = lt  # a comment, PI or DOCTYPE opens the next document's prolog

    def _declaration(self, lt: int, end: int) -> Iterator[_Span]:
        """Start a document at an XML declaration; one inside a document means it was cut.

        XML 1.0 section 2.8 allows the declaration only at the very start of a document, so it
        is the one landmark a splitter can trust after a truncated document.
        """
        if self.stack or self.container:
            yield from self._abort(lt)
        self._reset()
        self.doc_start = lt
        self.decl = bytes(self.buf[lt:end])

    def _start(self, kind: str, lt: int, end: int, name: bytes) -> Iterator[_Span]:
        """Open an element: a root, a container's child, or anything deeper."""
        depth = len(self.stack)
        if depth == 0:
            if self.doc_start is None:
                self.doc_start = lt
            self.root_tag = bytes(self.buf[lt:end])
            self.deciding = not _is_document_root(name, self.root_tag)
        elif depth == 1 and self.deciding:
            # A wrapper is recognised by its first child being a document of its own.
            self.deciding = False
            self.container = _is_document_root(name, self.buf[lt:end])
        if depth == 1 and self.container:
            self.child_start, self.child_name = lt, name
        if kind == "empty":
            yield from self._closed(end)
        elif not self.unsafe and ((depth == 1 and self.container) if depth else not self.deciding):
            self.fast, self.fast_from = b"</" + name, end
            self.fast_start = lt if depth else self.doc_start
        else:
            self.stack.append(name)

    # -- fast path -----------------------------------------------------------------------------

    def _fast_span(self) -> _Span | None:
        """Cut at the next end tag of the root's name if that parses; None to read or scan on."""
        buf, closer = self.buf, self.fast
        while True:
            at = buf.find(closer, self.fast_from)
            if at < 0:
                self.fast_from = max(self.fast_from, len(buf) - len(closer))
                return self._fast_give_up() if self.eof else None
            m = _END_TAIL.match(buf, at + len(closer))
            if m is not None:
                break
            if _BLANK_TAIL.match(buf, at + len(closer)):  # the ">" may be in the next chunk
                return self._fast_give_up() if self.eof else None
            self.fast_from = at + 1  # a longer name with the same beginning
        child = bool(self.stack)
        if child:
            span = self._span(self.fast_start, m.end(), child=True)
        else:
            span = self._span(self.fast_start, m.end())
        try:
            span.element = _parse(span, self.parser)
        except etree.XMLSyntaxError:
            return self._fast_give_up()
        return span

    def _fast_give_up(self) -> None:
        """Hand the open element to the careful scan, which resumes after its start tag."""
        self.stack.append(self.fast[2:])
        self.fast = None
        return None

    def _fast_done(self, span: _Span) -> int:
        """Close the document the fast path cut; return where scanning goes on."""
        end = span.offset - self.base + len(span.raw)
        self.fast = None
        if not self.stack:
            self._reset()
        return end

    def _end(self, name: bytes, lt: int, end: int) -> Iterator[_Span]:
        """Close an element, resynchronising on a misnested end tag as an HTML parser would."""
        stack = self.stack
        child_open = self.container and len(stack) > 1
        if stack and stack[-1] == name:
            stack.pop()
        elif name in stack:
            del stack[len(stack) - 1 - stack[::-1].index(name) :]
        else:
            return  # a stray end tag inside a document: lxml reports it when parsing
        if child_open and not stack:
            yield self._span(self.child_start, lt, child=True)  # the container closed first
        yield from self._closed(end)

    def _closed(self, end: int) -> Iterator[_Span]:
        """Yield the document that an element closing at ``end`` completes, if any."""
        depth = len(self.stack)
        if self.container and depth == 1:
            yield self._span(self.child_start, end, child=True)
        elif depth == 0 and not self.container and self.doc_start is not None:
            yield self._span(self.doc_start, end)
            self._reset()
        elif depth == 0:
            self._reset()

    def _span(self, start: int, end: int, child: bool = False) -> _Span:
        """Cut the bytes ``start:end`` of the buffer into a span."""
        span = _Span(self.base + start, self._line_at(start), bytes(self.buf[start:end]))
        span.unsafe = self.unsafe
        span.root = _tag_name(self.child_name if child else self.root_tag)
        if child:
            span.prefix = self.decl + self.root_tag
            span.suffix = b"</" + _tag_name(self.root_tag).encode() + b">"
        return span

    def _abort(self, at: int) -> Iterator[_Span]:
        """Yield what is open when the file, or the document, ends too early."""
        if self.container and len(self.stack) > 1:
            yield self._span(self.child_start, at, child=True)
        elif self.container:
            yield _Span(self.base + at, self._line_at(at), b"", root=_tag_name(self.root_tag),
                        error="batch container is not closed: the file is cut off")
        elif self.doc_start is not None:
            yield self._span(self.doc_start, at)
        self._reset()

    def _finish(self, pos: int) -> Iterator[_Span]:
        """Yield what the end of the file leaves open or unaccounted for."""
        if self.stack or self.container:
            yield from self._abort(len(self.buf))
        elif self.decl:
            yield _Span(self.base + self.doc_start, self._line_at(self.doc_start), self.decl,
                        error="XML declaration without a root element: the file is cut off")
        else:
            yield from self._gap_text(pos, len(self.buf))

    def _gap_text(self, start: int, end: int) -> Iterator[_Span]:
        """Yield an error span for bytes outside any document (not whitespace or a BOM)."""
        text = bytes(self.buf[start:end])
        if text.replace(codecs.BOM_UTF8, b"").strip(_WHITESPACE):
            yield _Span(self.base + start, self._line_at(start), text,
                        error="text or markup outside any document")

    # -- buffer --------------------------------------------------------------------------------

    def _read_more(self, pos: int) -> int:
        """Drop what no open document needs, append a chunk; return the new ``pos`` or -1."""
        if self.fast is not None:
            keep = self.fast_start
        elif self.container:
            keep = self.child_start if len(self.stack) > 1 else pos
        else:
            keep = pos if self.doc_start is None else self.doc_start
        self._drop(keep)
        if len(self.buf) > self.limit:
            return -1
        chunk = self.stream.read(self.chunk_size)
        self.eof = not chunk
        self.buf += chunk
        return pos - keep

    def _drop(self, keep: int) -> None:
        """Forget the first ``keep`` bytes of the buffer."""
        if keep <= 0:
            return
        self._line_at(keep)
        self.mark -= keep
        self.base += keep
        del self.buf[:keep]
        if self.doc_start is not None:
            self.doc_start -= keep  # negative for a container: only its children are kept
        self.child_start -= keep
        self.fast_start -= keep
        self.fast_from -= keep

    def _line_at(self, index: int) -> int:
        """Return the 1-based file line of buffer ``index``."""
        if index >= self.mark:
            self.mark_line += self.buf.count(b"\n", self.mark, index)
            self.mark = index
            return self.mark_line + 1
        return self.mark_line + 1 - self.buf.count(b"\n", index, self.mark)

    def _oversized(self) -> Iterator[_Span]:
        """Refuse a document that outgrew the limit; return where reading resumes."""
        if self.fast is not None:
            start = self.fast_start
        else:
            start = self.child_start if self.container else self.doc_start or 0
        start = max(start, 0)
        yield _Span(self.base + start, self._line_at(start), b"",
                    error=f"document larger than {self.limit} bytes: skipped to the next XML "
                    "declaration")
        return self._skip_to_declaration(start + 1)

    def _skip_to_declaration(self, start: int) -> int:
        """Discard bytes up to the next XML declaration, the only safe place to resume."""
        self._reset()
        while True:
            found = _XML_DECL.search(self.buf, start)
            if found or self.eof:
                return found.start() if found else len(self.buf)
            keep = max(start, len(self.buf) - 6)
            self._drop(keep)
            start -= keep
            chunk = self.stream.read(self.chunk_size)
            self.eof = not chunk
            self.buf += chunk


def _tag_name(tag: bytes) -> str:
    """Return the element name of a start tag (``<name ...>``) or of a bare name."""
    name = re.match(rb"<?([^\s/<>]*)", tag)
    return name.group(1).decode("utf-8", "replace") if name else ""


def _is_document_root(name: bytes, tag: bytes | bytearray) -> bool:
    """Tell whether an element of this name (and start tag) is a document of its own."""
    local = name.rsplit(b":", 1)[-1].decode("ascii", "replace")
    return (
        local in _DOCUMENT_ROOTS
        or _INTERACTION.fullmatch(local) is not None
        or b"transactionRef=" in tag
    )


# -- records ---------------------------------------------------------------------------------


def _record(span: _Span, position: int, file: str, parser: etree.XMLParser) -> SourceRecord:
    """Parse one span into a record; an unreadable span into an error record."""
    meta = {"byte_offset": str(span.offset), "line": str(span.line), "root": span.root}
    if span.error or span.unsafe:
        code = "unsafe-xml" if span.unsafe else "malformed-xml"
        where = f"byte {span.offset}, line {span.line}"
        return _error_record(span, position, file, span.unsafe or span.error, code, where, meta)
    try:
        root = span.element if span.element is not None else _parse(span, parser)
    except etree.XMLSyntaxError as exc:
        where = _error_position(span, exc, meta)
        return _error_record(span, position, file, _reason(exc), "malformed-xml", where, meta)
    kind, record_id = identify(root)
    qname = etree.QName(root)
    meta.update(root=qname.localname, namespace=qname.namespace or "")
    meta["templateIds"] = ",".join(_template_ids(root))
    return SourceRecord(
        file=file,
        position=position,
        record_id=record_id or f"document {position}",
        format=FORMAT,
        kind=kind,
        raw=span.raw,
        payload=root,
        meta=meta,
    )


def _error_record(
    span: _Span, position: int, file: str, reason: str, code: str, where: str, meta: dict[str, str]
) -> SourceRecord:
    """Build the record of a document that cannot be read."""
    record_id = f"document {position}"
    error = SourceError(reason, file=file, record_id=record_id, field=where, code=code)
    log.warning("XML document %d of %s unreadable at %s (%s)", position, Path(file).name, where,
                code)
    return SourceRecord(file=file, position=position, record_id=record_id, format=FORMAT,
                        kind=UNREADABLE_KIND, raw=span.raw, error=error, meta=meta)


def _parse(span: _Span, parser: etree.XMLParser) -> etree._Element:
    """Parse a span; a container child is parsed inside its container for its namespaces."""
    if not span.prefix:
        return etree.fromstring(span.raw, parser)
    container = etree.fromstring(span.prefix + span.raw + span.suffix, parser)
    # The copy carries the namespace declarations in scope, so the child stands on its own.
    return copy.deepcopy(next(container.iterchildren(tag=etree.Element)))


def _reason(exc: etree.XMLSyntaxError) -> str:
    """Word a parser error without the bytes it may quote."""
    message = _MESSAGE_NOISE.sub("", (exc.msg or str(exc)).splitlines()[0]).strip()
    return f"not well-formed XML: {message}"


def _error_position(span: _Span, exc: etree.XMLSyntaxError, meta: dict[str, str]) -> str:
    """Place a parser error in the file, fill ``meta`` and return it as a location."""
    line, column = exc.position if exc.position else (1, 1)
    line, column = max(line, 1), max(column, 1)
    if span.prefix:  # the parser saw the container's start tag in front of the child
        prefix_lines = span.prefix.count(b"\n")
        if line == prefix_lines + 1:
            column = max(column - len(span.prefix.rsplit(b"\n", 1)[-1]), 1)
        line = max(line - prefix_lines, 1)
    offset = span.offset + _offset_in(span.raw, line, column)
    file_line = span.line + line - 1
    meta.update(error_byte_offset=str(offset), error_line=str(file_line), error_column=str(column))
    return f"byte {offset}, line {file_line}, column {column}"


def _offset_in(raw: bytes, line: int, column: int) -> int:
    """Return the byte index of a (line, column) pair in ``raw``, clamped to its length."""
    index = 0
    for _ in range(line - 1):
        index = raw.find(b"\n", index) + 1
        if index == 0:
            return len(raw)
    return min(index + column - 1, len(raw))


# -- document types ---------------------------------------------------------------------------


def identify(root: etree._Element) -> tuple[str, str]:
    """Return the kind of a document and its id ("" when it has none) from its root."""
    qname = etree.QName(root)
    local, namespace = qname.localname, qname.namespace
    if local == "ClinicalDocument":
        templates = _child_template_ids(root)
        return f"cda:{templates[0] if templates else local}", _instance_id(root)
    if _INTERACTION.fullmatch(local):
        return f"hl7v3:{local}", _instance_id(root)
    if local == "adaxml" and namespace is None:
        transaction = _ada_transaction(root)
        if transaction is None:
            return "ada:adaxml", ""
        return f"ada:{etree.QName(transaction).localname}", _ada_id(transaction)
    if namespace is None and _is_ada_transaction(root):
        return f"ada:{local}", _ada_id(root)
    if local == "resource" and root.get("type"):
        return f"peri22x:{root.get('type')}", root.get("id") or root.get("uuid") or ""
    if local == "export":
        return "astraia:export", ""
    if namespace == FHIR_NAMESPACE:  # the target format itself, e.g. a reference output
        found = root.find(f"{{{FHIR_NAMESPACE}}}id")
        return f"fhir:{local}", (found.get("value", "") if found is not None else "")
    return f"xml:{local}", ""


def _instance_id(root: etree._Element) -> str:
    """Return an HL7v3 message or CDA document id (``id``, an II) as ``extension@root``."""
    element = root.find(_in_ns(root, "id"))
    if element is None:
        return ""
    extension, oid = element.get("extension", ""), element.get("root", "")
    return f"{extension}@{oid}" if extension and oid else extension or oid


def _ada_transaction(root: etree._Element) -> etree._Element | None:
    """Return the transaction element under ``adaxml/data``."""
    data = root.find("data")
    return None if data is None else next(data.iterchildren(tag=etree.Element), None)


def _is_ada_transaction(root: etree._Element) -> bool:
    """Tell an ADA transaction written without the ``adaxml`` wrapper: concepts below it."""
    if root.get("transactionRef"):
        return True
    first = next(root.iterchildren(tag=etree.Element), None)
    return first is not None and first.get("conceptId") is not None


def _ada_id(transaction: etree._Element) -> str:
    """Return an ADA transaction's id. Never its title: that is free text, which in real data
    can hold a name, and a record id goes into logs and reports."""
    return transaction.get("id") or ""


def _template_ids(root: etree._Element) -> list[str]:
    """Return the templateId roots of the header: the root's, and an HL7v3 focal act's."""
    ids = _child_template_ids(root)
    if etree.QName(root).namespace == HL7V3_NS and root.tag != f"{{{HL7V3_NS}}}ClinicalDocument":
        # HL7v3 Kernset messages carry their template on the act under the control act
        # (ControlActProcess/subject/registrationProcess/subject2/CareProvisionEvent).
        for act in _FOCAL_ACT(root)[:1]:
            ids += [t for t in _child_template_ids(act) if t not in ids]
    return ids


def _child_template_ids(element: etree._Element) -> list[str]:
    """Return the ``templateId/@root`` values directly under ``element``."""
    found = element.findall(_in_ns(element, "templateId"))
    return [t.get("root") for t in found if t.get("root")]


def _in_ns(element: etree._Element, local: str) -> str:
    """Return the Clark name of ``local`` in ``element``'s namespace."""
    namespace = etree.QName(element).namespace
    return f"{{{namespace}}}{local}" if namespace else local
