"""HR011: randomness from the operating system."""

import os
import secrets
import uuid


def tokens() -> list[object]:
    return [
        os.urandom(8),  # expect: HR011
        secrets.token_hex(4),  # expect: HR011
        uuid.uuid4(),  # expect: HR011
        uuid.uuid5(uuid.NAMESPACE_URL, "x"),
    ]
