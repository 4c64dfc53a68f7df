#!/usr/bin/env python3
"""Makes tests/fixtures/python_fernet.json: a bot token encrypted by Python's cryptography.fernet,
exactly as the original Nezuko dashboard stored tokens (Fernet(ENCRYPTION_KEY).encrypt(token.encode())).
The Rust test suite checks that the vault decrypts it. Run once; the output is committed."""
import json
import sys

from cryptography.fernet import Fernet

key = Fernet.generate_key()
token = "7012345678:AAFq3ZtE8f0x-Python_Made_Token_0123456"
json.dump(
    {
        "made_by": f"python cryptography {__import__('cryptography').__version__}",
        "key": key.decode(),
        "plaintext": token,
        "ciphertext": Fernet(key).encrypt(token.encode()).decode(),
    },
    sys.stdout,
    indent=2,
)
print()
