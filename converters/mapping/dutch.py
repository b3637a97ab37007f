"""Dutch name handling, the most common defect in converted Dutch data (DOMAIN.md section 6).

HL7v2 FN sub-components (v2.5+): FN.1 surname as used, FN.2 own prefix, FN.3 own surname,
FN.4 partner prefix, FN.5 partner surname. The name-usage codes NL1..NL4 come from the Nictiz
PN.NL template (2.16.840.1.113883.2.4.3.11.60.3.10.1.100) and go to the FHIR extension
``humanname-assembly-order``: NL1 own name, NL2 partner name, NL3 partner then own, NL4 own then
partner.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def _joined(prefix: str, name: str) -> str:
    return " ".join(p for p in (prefix.strip(), name.strip()) if p)


def _parts(parts: list[str]) -> tuple[str, str, str]:
    padded = (parts + [""] * 5)[:5]
    surname, own_prefix, own_name, partner_prefix, partner_name = padded
    return surname.strip(), _joined(own_prefix, own_name), _joined(partner_prefix, partner_name)


def _normal(text: str) -> str:
    return " ".join(text.replace("-", " ").split()).lower()


def assembly_order(parts: list[str]) -> str | None:
    """Infer NL1..NL4 from how FN.1 is composed of the own and the partner's name."""
    surname, own, partner = _parts(parts)
    if not own and not partner:
        return None
    if not partner:
        return "NL1"
    if not own:
        return "NL2"
    whole, own_n, partner_n = _normal(surname), _normal(own), _normal(partner)
    if not whole:
        return "NL1"
    if whole == own_n:
        return "NL1"
    if whole == partner_n:
        return "NL2"
    if whole.startswith(partner_n) and whole.endswith(own_n):
        return "NL3"
    if whole.startswith(own_n) and whole.endswith(partner_n):
        return "NL4"
    return None


def family_name(parts: list[str]) -> str | None:
    """FN.1 when given; otherwise the own and partner names joined in NL4 order."""
    surname, own, partner = _parts(parts)
    if surname:
        return surname
    if own and partner:
        return f"{own}-{partner}"
    return own or partner or None


NODE_TRANSFORM_FUNCTIONS: dict[str, Callable[[list[str]], Any]] = {
    "dutch-assembly-order": assembly_order,
    "dutch-family": family_name,
}
