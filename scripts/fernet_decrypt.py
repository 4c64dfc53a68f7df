#!/usr/bin/env python3
"""Decrypts one Fernet token with Python's cryptography.fernet and prints the plaintext.
Usage: fernet_decrypt.py KEY CIPHERTEXT. The Rust tests use it to prove that tokens the vault
writes can be read by the original Python platform."""
import sys

from cryptography.fernet import Fernet

key, ciphertext = sys.argv[1], sys.argv[2]
sys.stdout.write(Fernet(key.encode()).decrypt(ciphertext.encode()).decode())
