"""Checksums that outputs and runs record."""

from __future__ import annotations

import hashlib

from kmervae.provenance import file_sha256, sampled_sha256


def test_sampled_sha256_against_a_naive_twin(tmp_path):
    path = tmp_path / "features.npy"
    data = bytes(range(256)) * 7  # 1792 bytes
    path.write_bytes(data)
    # small enough: the whole file
    assert sampled_sha256(path, blocks=4, block_bytes=1024) == file_sha256(path)
    # else the size and blocks at 0, 1/3, 2/3 and the end
    offsets = [round(i * (len(data) - 100) / 3) for i in range(4)]
    naive = hashlib.sha256(f"size {len(data)}\n".encode())
    for offset in offsets:
        naive.update(data[offset : offset + 100])
    assert sampled_sha256(path, blocks=4, block_bytes=100) == naive.hexdigest()
    # a rewrite inside a sampled block, or of the size, is seen
    changed = bytearray(data)
    changed[offsets[2] + 5] ^= 1
    path.write_bytes(bytes(changed))
    assert sampled_sha256(path, blocks=4, block_bytes=100) != naive.hexdigest()
    path.write_bytes(data + b"x")
    assert sampled_sha256(path, blocks=4, block_bytes=100) != naive.hexdigest()
