"""Read FHIR STU3 XML into the FHIR JSON form, generically.

``Model.model_validate_xml`` of ``fhir.resources`` refuses some XML that the FHIR XML rules allow
in practice (an empty ``display=""`` in Nictiz instances), so this reader follows the FHIR XML
representation rules itself (STU3 §2.6.2: primitives in ``@value``, their ``id``/extensions in the
``_name`` shadow property, ``Extension.url`` and element ``id`` as attributes, ``Narrative.div``
as XHTML, resources wrapped in an element named after the property). The STU3 models tell it which
elements repeat and which are primitives.
"""

from __future__ import annotations

from typing import Any

from lxml import etree

from converters.validation import stu3model

FHIR_NS = "http://hl7.org/fhir"
_PARSER = etree.XMLParser(
    resolve_entities=False, no_network=True, remove_comments=True, huge_tree=False
)
_INTEGER_TYPES = frozenset({"integer", "unsignedInt", "positiveInt"})


class FhirXmlError(ValueError):
    """The bytes are not a FHIR XML resource. The message names the place, never a value."""


def xml_to_resource(data: bytes) -> dict[str, Any]:
    """Convert one FHIR STU3 XML resource (or Bundle) to its JSON form."""
    try:
        root = etree.fromstring(data, _PARSER)
    except etree.XMLSyntaxError as exc:
        raise FhirXmlError(f"not well-formed XML (line {exc.lineno})") from None
    return element_to_resource(root)


def element_to_resource(element: Any) -> dict[str, Any]:
    """Convert a parsed resource element to its JSON form."""
    qname = etree.QName(element)
    if qname.namespace != FHIR_NS:
        raise FhirXmlError(f"root element <{qname.localname}> is not in the FHIR namespace")
    if not stu3model.is_known_type(qname.localname):
        raise FhirXmlError(f"<{qname.localname}> is not a FHIR STU3 resource type")
    resource: dict[str, Any] = {"resourceType": qname.localname}
    _fill(resource, element, qname.localname)
    return resource


def _fill(target: dict[str, Any], element: Any, type_name: str) -> None:
    """Copy the attributes and child elements of ``element`` (of FHIR type ``type_name``)."""
    for attribute in ("id", "url"):
        if attribute in element.attrib:
            target[attribute] = element.attrib[attribute]
    known = stu3model.elements(type_name) if stu3model.is_known_type(type_name) else {}
    for child in element:
        if not isinstance(child.tag, str):
            continue
        name = etree.QName(child).localname
        info = known.get(name)
        if info is None:
            # Unknown element: keep it so that structural validation reports it.
            _put(target, name, _generic(child), True)
        elif info.is_primitive:
            _put_primitive(target, name, child, info)
        elif info.type_name == "Resource":
            inner = next((c for c in child if isinstance(c.tag, str)), None)
            value = element_to_resource(inner) if inner is not None else {}
            _put(target, name, value, info.is_list)
        else:
            value: dict[str, Any] = {}
            _fill(value, child, info.type_name)
            _put(target, name, value, info.is_list)


def _put(target: dict[str, Any], name: str, value: Any, is_list: bool) -> None:
    if is_list:
        target.setdefault(name, []).append(value)
    else:
        target[name] = value


def _put_primitive(target: dict[str, Any], name: str, child: Any, info: Any) -> None:
    """Store a primitive's value under ``name`` and its id/extensions under ``_name``."""
    if info.type_name == "xhtml":
        target[name] = etree.tostring(child, encoding="unicode", with_tail=False)
        return
    raw = child.attrib.get("value")
    value = None if raw is None else _typed(raw, info.type_name)
    shadow: dict[str, Any] = {}
    if "id" in child.attrib:
        shadow["id"] = child.attrib["id"]
    extensions = [c for c in child if isinstance(c.tag, str)]
    if extensions:
        _fill(shadow, child, "Element")
        shadow.pop("url", None)
    if info.is_list:
        values = target.setdefault(name, [])
        shadows = target.get("_" + name)
        if shadow and shadows is None:
            shadows = target["_" + name] = [None] * len(values)
        values.append(value)
        if shadows is not None:
            shadows.append(shadow or None)
        return
    if value is not None:
        target[name] = value
    if shadow:
        target["_" + name] = shadow


def _typed(raw: str, type_name: str) -> Any:
    """Turn an XML ``@value`` into the JSON value of its FHIR primitive type."""
    if type_name == "boolean":
        return {"true": True, "false": False}.get(raw, raw)
    try:
        if type_name in _INTEGER_TYPES:
            return int(raw)
        if type_name == "decimal":
            number = float(raw)
            integral = number.is_integer() and "." not in raw and "e" not in raw.lower()
            return int(number) if integral else number
    except ValueError:
        return raw  # structural validation names the bad primitive
    return raw


def _generic(element: Any) -> Any:
    """Convert an element the models do not know, keeping its shape for the error report."""
    children = [c for c in element if isinstance(c.tag, str)]
    if not children:
        return element.attrib.get("value", "")
    value: dict[str, Any] = dict(element.attrib)
    for child in children:
        _put(value, etree.QName(child).localname, _generic(child), True)
    return value
