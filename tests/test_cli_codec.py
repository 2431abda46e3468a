"""The codec CLI on real files: keygen, encode (with groups and encryption), info, decode."""

import json
import subprocess
import sys

import cv2
import numpy as np

from codec import paths


def _run(*args: str) -> dict:
    out = subprocess.run([sys.executable, "-m", "roistream.cli", *args], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return out


def test_encode_info_decode_with_groups_and_encryption(tmp_path):
    src = tmp_path / "img.png"
    image = cv2.imread(str(paths.kodak_dir() / "kodim05.png"))[:192, :256]
    cv2.imwrite(str(src), image)
    mask = np.zeros(image.shape[:2], np.uint8)
    mask[40:100, 60:140] = 1
    mask[120:180, 150:250] = 2
    cv2.imwrite(str(tmp_path / "mask.png"), mask)
    key = tmp_path / "key.json"
    key_id = json.loads(_run("keygen", "-o", str(key)).stdout)["key_id"]

    enc = json.loads(_run("encode", str(src), "-o", str(tmp_path / "f.rst"), "--groups", str(tmp_path / "mask.png"),
                          "--quality", "0.2", "--roi-quality", "0.9", "--encrypt", "2", "--key", str(key),
                          "--bg-scale", "2").stdout)
    assert enc["groups"] == 3 and enc["encrypted"] == [2] and enc["bpp"] > 0

    info = json.loads(_run("info", str(tmp_path / "f.rst")).stdout)
    groups = {g["group_id"]: g for g in info["groups"]}
    assert set(groups) == {0, 1, 2}
    assert groups[2]["encrypted"] and groups[2]["key_id"] == key_id and not groups[1]["encrypted"]
    assert groups[1]["quality"] > groups[0]["quality"]
    assert groups[0]["scale"] == 2 and groups[1]["scale"] == 1
    assert groups[1]["bbox"] == [48, 32, 96, 80]  # the blocks holding mask 1, 16-px aligned

    # without the key: group 2 is skipped with a warning, the rest decodes
    out = subprocess.run([sys.executable, "-m", "roistream.cli", "decode", str(tmp_path / "f.rst"), "-o",
                          str(tmp_path / "nokey.png")], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and "group 2 not decoded" in out.stderr
    nokey = cv2.imread(str(tmp_path / "nokey.png"))
    assert nokey.shape == image.shape and (nokey[130:170, 160:240] == 0).all()

    # with the key, only group 1: everything else black
    dec = json.loads(_run("decode", str(tmp_path / "f.rst"), "-o", str(tmp_path / "g1.png"), "--groups", "1",
                          "--key", str(key)).stdout)
    assert dec["decoded"] == [1]
    g1 = cv2.imread(str(tmp_path / "g1.png"))
    assert g1[:32].max() == 0 and g1[40:100, 60:140].mean() > 10


def test_decode_of_a_corrupt_file_fails_cleanly(tmp_path):
    bad = tmp_path / "bad.rst"
    bad.write_bytes(b"\x00garbage" * 50)
    out = subprocess.run([sys.executable, "-m", "roistream.cli", "decode", str(bad), "-o", str(tmp_path / "x.png")],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode != 0
    assert "error:" in out.stderr and "Traceback" not in out.stderr


def test_encode_with_detected_people(tmp_path):
    """--detect runs the offline YOLO-seg detector and makes one group per person."""
    image = paths.coco_dir() / "images" / "train2017" / "000000000061.jpg"  # people on elephants
    _run("keygen", "-o", str(tmp_path / "k.json"))
    enc = json.loads(_run("encode", str(image), "-o", str(tmp_path / "f.rst"), "--detect", "people",
                          "--encrypt", "person", "--key", str(tmp_path / "k.json")).stdout)
    people = sorted(int(g) for g, label in enc["labels"].items() if label == "person")
    assert people and people == enc["encrypted"]
    out = subprocess.run([sys.executable, "-m", "roistream.cli", "encode", str(image), "-o", str(tmp_path / "g.rst"),
                          "--detect", "unicorns"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 2 and "unicorn" in out.stderr and "person" in out.stderr
