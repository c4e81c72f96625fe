"""Default reprs (``<Foo object at 0x7f...>``): what is no result, and what differs from run to
run only by a memory address.

Both sides of a run use it: the capture in every kernel (:mod:`ploomber_like.capture.kernel`)
drops such values and addresses, and the driver compares stored values the same way
(:mod:`ploomber_like.comparing`). Standard library only: every kernel imports it.
"""

from __future__ import annotations

import re
from typing import Any

#: An object's default repr (``<module.Class object at 0x7f...>``), and an address in any repr:
#: NumPy's ``Generator(PCG64) at 0x7F...`` (also inside an estimator's repr) is no default one.
_DEFAULT_REPR = re.compile(r"<[^<>\n]*? at 0x[0-9a-fA-F]+>")
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+\b")


def only_default_reprs(text: str) -> bool:
    """True when ``text`` is only default reprs, or a list of them: no result."""
    rest = _DEFAULT_REPR.sub("", text)
    return rest != text and not rest.strip("[](), \n")


def without_addresses(text: Any) -> Any:
    """``text`` with every address dropped: ``<Foo object at 0x7f..>`` becomes ``<Foo object>``,
    ``Generator(PCG64) at 0x7F..`` ``Generator(PCG64)``, the same in every run. Anything but a
    string is returned as is."""
    return _ADDRESS.sub("", text) if isinstance(text, str) and " at 0x" in text else text
