"""SecretBox.decrypt_fast, the RADIUS hot path's decryption: the plaintext Fernet gives for
every token, and whatever it cannot read left to Fernet (errors, a key file re-read)."""

import base64
import random
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from radbill.crypto import SecretBox, SecretError, _TokenReader, write_keys


def texts() -> list[str]:
    rng = random.Random(14)
    alphabet = "abcXYZ019 -_:/+=\"'\\\t\n" + "পাসওয়ার্ড" + "密码" + "😀"
    # every length around the block boundaries (0, 15, 16, 17, 31, 32, ...) and some long ones
    out = ["".join(rng.choices(alphabet, k=n)) for n in range(70)]
    return out + ["".join(rng.choices(alphabet, k=rng.randrange(70, 300))) for _ in range(30)]


def test_the_same_plaintext_as_fernet_for_every_length_and_key() -> None:
    old, new = Fernet.generate_key(), Fernet.generate_key()
    box = SecretBox([new, old])
    for key in (new, old):
        fernet = Fernet(key)
        for text in texts():
            token = fernet.encrypt(text.encode()).decode()
            assert box.decrypt_fast(token) == text == box.decrypt(token)
            # read by the fast path itself, not by a fallback to Fernet
            assert _TokenReader([new, old]).decrypt(token) == text


def flip(token: str, at: int) -> str:
    data = bytearray(base64.urlsafe_b64decode(token))
    data[at] ^= 1
    return base64.urlsafe_b64encode(bytes(data)).decode()


@pytest.mark.parametrize("at", [0, 5, 9, 30, -40, -1])  # version, time, IV, ciphertext, MAC
def test_a_tampered_token_is_refused_as_fernet_refuses_it(at: int) -> None:
    box = SecretBox(Fernet.generate_key())
    token = box.encrypt("secret-password")
    bad = flip(token, at)
    assert _TokenReader(box.keys).decrypt(bad) is None
    with pytest.raises(SecretError):
        box.decrypt_fast(bad)


@pytest.mark.parametrize("token", ["", "not base64 !", "gAAAAA", "৫৫৫", "A" * 200])
def test_junk_is_refused(token: str) -> None:
    box = SecretBox(Fernet.generate_key())
    assert _TokenReader(box.keys).decrypt(token) is None
    with pytest.raises(SecretError):
        box.decrypt_fast(token)


def test_a_token_under_another_key_is_refused() -> None:
    token = Fernet(Fernet.generate_key()).encrypt(b"pw").decode()
    with pytest.raises(SecretError):
        SecretBox(Fernet.generate_key()).decrypt_fast(token)


def test_padding_that_is_not_pkcs7_is_left_to_fernet() -> None:
    # a token with a valid MAC whose plaintext does not end in PKCS#7 padding (no encryptor
    # makes one): the fast path does not guess, Fernet refuses it
    from cryptography.hazmat.primitives import hashes, hmac
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    key = Fernet.generate_key()
    raw = base64.urlsafe_b64decode(key)
    iv = bytes(16)
    enc = Cipher(algorithms.AES(raw[16:]), modes.CBC(iv)).encryptor()
    body = b"\x80" + bytes(8) + iv + enc.update(b"sixteen bytes!\x00\x00") + enc.finalize()
    mac = hmac.HMAC(raw[:16], hashes.SHA256())
    mac.update(body)
    token = base64.urlsafe_b64encode(body + mac.finalize()).decode()
    box = SecretBox(key)
    assert _TokenReader(box.keys).decrypt(token) is None
    with pytest.raises(SecretError):
        box.decrypt_fast(token)


def test_a_key_file_rotated_under_a_running_box_is_followed(tmp_path: Path) -> None:
    path = tmp_path / "secret.key"
    first = Fernet.generate_key()
    write_keys(path, [first])
    box = SecretBox([first], path)
    assert box.decrypt_fast(Fernet(first).encrypt(b"before").decode()) == "before"
    second = Fernet.generate_key()
    write_keys(path, [second, first])
    token = Fernet(second).encrypt(b"after").decode()
    assert box.decrypt_fast(token) == "after"  # the file re-read, as decrypt() does
    assert box.keys == [second, first]
    assert box.decrypt_fast(Fernet(first).encrypt(b"old").decode()) == "old"
