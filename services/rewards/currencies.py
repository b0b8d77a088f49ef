"""ISO 4217 currencies and their minor units, to turn amounts in minor units into major units.

The table lists the ISO 4217 currency codes in circulation (list one, as maintained by SIX, 2024-25)
with their exponent: how many decimal digits the minor unit has (EUR 2: cents; JPY 0; KWD 3;
CLF 4). Fund and precious-metal codes (XAU, XDR, ...) have no minor unit and are not accepted for
purchases. No library installed here carries this table, and it changes a few times a decade:
when ISO adds or retires a code, edit it here.
"""

from __future__ import annotations

from typing import Final

DEFAULT_EXPONENT: Final = 2

# Codes whose minor unit is not a hundredth.
_EXPONENTS: Final[dict[str, int]] = {
    # no minor unit
    "BIF": 0,
    "CLP": 0,
    "DJF": 0,
    "GNF": 0,
    "ISK": 0,
    "JPY": 0,
    "KMF": 0,
    "KRW": 0,
    "PYG": 0,
    "RWF": 0,
    "UGX": 0,
    "UYI": 0,
    "VND": 0,
    "VUV": 0,
    "XAF": 0,
    "XOF": 0,
    "XPF": 0,
    # thousandths
    "BHD": 3,
    "IQD": 3,
    "JOD": 3,
    "KWD": 3,
    "LYD": 3,
    "OMR": 3,
    "TND": 3,
    # ten-thousandths
    "CLF": 4,
    "UYW": 4,
}

# Every other code in circulation, all with hundredths.
_HUNDREDTHS: Final = frozenset(
    """
    AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BMD BND BOB BOV BRL BSD BTN BWP BYN
    BZD CAD CDF CHE CHF CHW CNY COP COU CRC CUP CVE CZK DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP
    GEL GHS GIP GMD GTQ GYD HKD HNL HTG HUF IDR ILS INR IRR JMD KES KGS KHR KPW KYD KZT LAK LBP
    LKR LRD LSL MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MXV MYR MZN NAD NGN NIO NOK NPR
    NZD PAB PEN PGK PHP PKR PLN QAR RON RSD RUB SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN
    SVC SYP SZL THB TJS TMT TOP TRY TTD TWD TZS UAH USD USN UYU UZS VED VES WST XCD XCG YER ZAR
    ZMW ZWG
    """.split()  # noqa: SIM905 (a table is easier to check by eye than a list literal)
)

ISO_4217: Final[dict[str, int]] = {
    **dict.fromkeys(_HUNDREDTHS, DEFAULT_EXPONENT),
    **_EXPONENTS,
}


def exponent(code: str) -> int | None:
    """The number of decimals of the currency's minor unit; None for a code ISO 4217 lacks."""
    return ISO_4217.get(code)


def format_minor(amount_minor: int, code: str) -> str:
    """An amount in minor units as a major-unit string: 12050 EUR -> "120.50 EUR"."""
    digits = ISO_4217.get(code, DEFAULT_EXPONENT)
    sign = "-" if amount_minor < 0 else ""
    whole, part = divmod(abs(amount_minor), 10**digits)
    text = f"{whole}.{part:0{digits}d}" if digits else str(whole)
    return f"{sign}{text} {code}"
