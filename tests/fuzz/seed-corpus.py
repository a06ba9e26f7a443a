#!/usr/bin/python3
# seed-corpus: writes the seed inputs of every fuzz target into tests/fuzz/corpus/<target>/,
# from the smp-protocol.md §15 vectors, the Zephyr 4.1 recordings and the MCUboot images in
# tests/data. Files are named by the SHA-1 of their content, as libFuzzer names them, so
# running this again only adds what is missing; it never deletes (crashes stay forever).
#
# usage: tests/fuzz/seed-corpus.py [top_srcdir]

import base64
import hashlib
import json
import os
import struct
import sys

TOP = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "..")
CORPUS = os.path.join(TOP, "tests", "fuzz", "corpus")

# smp-protocol.md §15.1 (header | payload).
SPEC = {
    "V1": "0a000009 00000100 a161646568656c6c6f",
    "V2": "0b00000a 00000100 bf61726568656c6c6fff",
    "V3": "08000001 00000206 a0",
    "V4": "09000019 00000206 bf686275665f73697a65190180696275665f636f756e7404ff",
    "V5": "0800000b 00000307 a166666f726d6174627376",
    "V6": "09000016 00000307 bf666f75747075746c5a657068797220332e372e30ff",
    "V7": "0800000c 00000408 a1657175657279646d6f6465",
    "V8": "09000008 00000408 bf646d6f646503ff",
    "V9": "0a000001 00000505 a0",
    "V10": "0a000008 00000605 a165666f726365f5",
    "V11": "0b000002 00000505 bfff",
    "V12": "08000001 00011000 a0",
    "V13": "0a000089 00011101 a665696d61676500636c656e1888636f666600637368615820a678ce1ed77e9580a875"
           "bc1f228c15d8438965e671921c6b31d494f69057c7ce646461746158403db8f396000000002000000040000000"
           "00000000010100000000000000000000000102030405060708090a0b0c0d0e0f000102030405060708090a0b0c"
           "0d0e0f6775706772616465f4",
    "V14": "0b000008 00011101 bf636f66661840ff",
    "V15": "0a000056 00011201 a2636f6666184064646174615848000102030405060708090a0b0c0d0e0f00010203040506"
           "0708090a0b0c0d0e0f0769280010002000c39a0f220a6d7ff5e659124e4b3557466d1a0fdd17cb6fe30d863ad0"
           "17bd12f0",
    "V16": "0b00000f 00011201 bf636f66661888656d61746368f5ff",
    "V17": "0a000031 00011300 a264686173685820c39a0f220a6d7ff5e659124e4b3557466d1a0fdd17cb6fe30d863ad0"
           "17bd12f067636f6e6669726df4",
    "V18": "0a00000a 00011400 a167636f6e6669726df5",
    "V19": "0b000013 00011101 bf63657272bf6567726f75700162726309ffff",
    "V20": "01000006 00402000 bf62726308ff",
    "V21": "0a000016 00093000 a1646172677682666b65726e656c6776657273696f6e",
    "V22": "0b00001e 00093000 bf616f745a65706879722076657273696f6e20332e372e306372657400ff",
    "V23": "0800000e 00033100 a1646e616d65676170702f636e74",
    "V24": "0900000b 00033100 bf6376616c442a000000ff",
    "V25": "0a000017 00033200 a2646e616d65676170702f636e746376616c442b000000",
    "V26": "0800001a 00084000 a2636f666600646e616d656e2f6c66732f68656c6c6f2e747874",
    "V27": "0900001e 00084000 bf636f66660064646174614c48656c6c6f2c20534d50210a636c656e0cff",
    "V28": "08000001 000a5001 a0",
    "V29": "09000014 000a5001 bf6667726f7570739f0001020308090a183fffff",
    "V30": "08000014 00025100 a1646e616d656d736d705f7376725f7374617473",
    "V31": "0a000001 003f5200 a0",
    "V32": "090000f4 00011000 bf66696d616765739fbf64736c6f74006776657273696f6e65312e302e30646861736858"
           "20644d69c5f2f82ee9a6195ddadf5272cd4aa80ea3205e9824b79a6facf2d4734f68626f6f7461626c65f56770"
           "656e64696e67f469636f6e6669726d6564f566616374697665f5697065726d616e656e74f4ffbf64736c6f7401"
           "6776657273696f6e65312e312e3064686173685820c39a0f220a6d7ff5e659124e4b3557466d1a0fdd17cb6fe3"
           "0d863ad017bd12f068626f6f7461626c65f56770656e64696e67f469636f6e6669726d6564f466616374697665"
           "f4697065726d616e656e74f4ffff6b73706c697453746174757300ff",
}

# §15.2 serial frames, exactly as printed there.
S1 = b"\x06\x09ABMKAAAJAAABAKFhZGVoZWxsb3o2\n"
S2 = (b"\x06\x09AP4JAAD0AAEQAL9maW1hZ2Vzn79kc2xvdABndmVyc2lvbmUxLjAuMGRoYXNoWCBkTWnF8vgu6aYZXdrfUnLNSqgOoy"
      b"BemCS3mm+s8tRzT2hib290YWJsZfVncGVu\n"
      b"\x04\x14ZGluZ/RpY29uZmlybWVk9WZhY3RpdmX1aXBlcm1hbmVudPT/v2RzbG90AWd2ZXJzaW9uZTEuMS4wZGhhc2hYIMOa"
      b"DyIKbX/15lkSTks1V0ZtGg/dF8tv4w2GOtAX\n"
      b"\x04\x14vRLwaGJvb3RhYmxl9WdwZW5kaW5n9Gljb25maXJtZWT0ZmFjdGl2ZfRpcGVybWFuZW509P//a3NwbGl0U3RhdHVz"
      b"AP9Qjw==\n")
S3 = (b"\x06\x09AJMKAACJAAERAaZlaW1hZ2UAY2xlbhiIY29mZgBjc2hhWCCmeM4e136VgKh1vB8ijBXYQ4ll5nGSHGsx1JT2kFfH"
      b"zmRkYXRhWEA9uPOWAAAAACAAAABAAAAAAAAA\n"
      b"\x04\x14AAEBAAAAAAAAAAAAAAABAgMEBQYHCAkKCwwNDg8AAQIDBAUGBwgJCgsMDQ4PZ3VwZ3JhZGX0FJ4=\n")

# §15.3 tiny images.
TINY = bytes.fromhex(
    "3db8f396000000002000000040000000" "00000000010100000000000000000000" +
    "000102030405060708090a0b0c0d0e0f" * 4 +
    "0769280010002000c39a0f220a6d7ff5" "e659124e4b3557466d1a0fdd17cb6fe3" "0d863ad017bd12f0")
TINY_SECCNT = bytes.fromhex(
    "3db8f396000000002000" "0c00" "40000000" "00000000010100000000000000000000" +
    "000102030405060708090a0b0c0d0e0f" * 4 +
    "08690c0050000400050000000769280010002000e012cfb3db02672e23539cae0eb8c031f8ce39feb491f8cc8d"
    "407ec98ffb1fb8")


def unhex(s):
    return bytes.fromhex(s.replace(" ", "").replace("|", ""))


def put(target, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, hashlib.sha1(data).hexdigest())
    if not os.path.exists(path):
        with open(path, "wb") as f:
            f.write(data)


def crc16_xmodem(data):
    crc = 0
    for b in data:
        crc ^= b << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def serial_frame(pkt, raw_per_line=93):
    raw = struct.pack(">H", len(pkt) + 2) + pkt + struct.pack(">H", crc16_xmodem(pkt))
    out = b""
    for i in range(0, len(raw), raw_per_line):
        out += (b"\x06\x09" if i == 0 else b"\x04\x14") + base64.b64encode(raw[i:i + raw_per_line]) + b"\n"
    return out


def ble_records(pkt, piece):
    return b"".join(bytes([len(pkt[i:i + piece])]) + pkt[i:i + piece] for i in range(0, len(pkt), piece))


def trimmed_image(img, keep=64):
    """The image's header and TLVs around only `keep` payload bytes, with the SHA-256 TLV
    recomputed: a real imgtool layout (header padding, ECDSA TLVs) in under 1 KiB."""
    magic, load, hdr_size, prot_size, img_size, flags = struct.unpack_from("<IIHHII", img, 0)
    hdr = bytearray(img[:hdr_size])
    struct.pack_into("<I", hdr, 12, keep)
    payload = img[hdr_size:hdr_size + keep]
    prot = img[hdr_size + img_size:hdr_size + img_size + prot_size]
    off = hdr_size + img_size + prot_size
    magic2, tot = struct.unpack_from("<HH", img, off)
    tlvs = bytearray(img[off:off + tot])
    digest = hashlib.sha256(bytes(hdr) + payload + prot).digest()
    p = 4
    while p + 4 <= len(tlvs):
        t, n = struct.unpack_from("<HH", tlvs, p)
        if t == 0x10 and n == 32:
            tlvs[p + 4:p + 36] = digest
        p += 4 + n
    return bytes(hdr) + payload + prot + bytes(tlvs)


def main():
    responses, requests = [], []
    for pkt in (unhex(v) for v in SPEC.values()):
        (responses if pkt[0] & 1 else requests).append(pkt)
    for name in ("udp-v1.json", "udp-v2.json"):
        with open(os.path.join(TOP, "tests", "data", "zephyr-4.1", name)) as f:
            for pair in json.load(f)["pairs"]:
                requests.append(unhex(pair["request_hex"]))
                responses.append(unhex(pair["response_hex"]))

    # response: whole response packets; plus a user group answering a non-map.
    for pkt in responses:
        put("response", pkt)
    put("response", unhex("09000003 00400000 820102"))
    put("response", unhex("01000000 00400000"))

    # json: every payload as CBOR, edge items, and JSON text with every tagged form.
    for pkt in requests + responses:
        if len(pkt) > 8:
            put("json", pkt[8:])
    for h in ("1bffffffffffffffff", "3bffffffffffffffff", "fb7ff8000000000000", "f97c00",
              "a2616101616102", "a10102", "c11a5f5e1000", "db800000000000000000", "7f61616162ff",
              "5f41014102ff", "f7", "a162246201", "63610062", "81" * 31 + "80"):
        put("json", unhex(h))
    for text in ('{"$bytes": "AQID"}', '{"$int": "-18446744073709551616"}', '{"$text": "/w=="}',
                 '{"$float": "nan"}', '{"$simple": 23}', '{"$map": [[1, {"$bytes": ""}]]}',
                 '{"$tag": {"$int": "9223372036854775808"}, "value": [1.5, null, true]}',
                 '{"a": "b\\u0000c", "d": -0.0}'):
        put("json", text.encode())

    # serial: byte 0 picks the piece sizes, byte 1 the re-encoding line length.
    for i, frames in enumerate((S1, S2, S3)):
        put("serial", bytes([0, 0]) + frames)
        put("serial", bytes([7 * i + 3, 120]) + b"uart:~$ \r\n" + frames.replace(b"\n", b"\r\n"))
    for i, pkt in enumerate(responses + requests):
        put("serial", bytes([(i * 37) % 256, (i * 11) % 256]) + serial_frame(pkt, 3 + 3 * (i % 31)))
    put("serial", bytes([1, 0]) + b"\x04\x14AAAA\n" + S1[:20] + b"\n" + S1)  # orphan, cut frame, good one
    put("serial", bytes([5, 1]) + S1.replace(b"o2\n", b"o3\n"))  # bad CRC
    put("serial", bytes([9, 2]) + b"\x06\x09" + b"A" * 5000 + b"\n" + S1)  # overlong line

    # ble: byte 0 picks the MTU for re-splitting; then [len][fragment] records.
    for i, pkt in enumerate(responses):
        put("ble", bytes([20]) + ble_records(pkt, 20))
        put("ble", bytes([(i * 13) % 256]) + ble_records(pkt, 1 + (i * 29) % 255))
    put("ble", bytes([0]) + ble_records(unhex(SPEC["V2"]), 3) + ble_records(unhex(SPEC["V32"]), 244))
    put("ble", bytes([0]) + b"\x00" + ble_records(unhex(SPEC["V32"]) + b"\x00", 100))  # one byte too many

    # image: the §15.3 images, trimmed imgtool images, and version strings.
    put("image", TINY)
    put("image", TINY_SECCNT)
    put("image", TINY[:32])
    for name in ("hash-only-1.2.3+4.bin", "ecdsa-p256-2.0.0.bin"):
        with open(os.path.join(TOP, "tests", "data", "images", name), "rb") as f:
            put("image", trimmed_image(f.read()))
    for v in (b"1.2.3+4", b"1.2.3.4", b"255.255.65535.4294967295", b"2"):
        put("image", v)


main()
