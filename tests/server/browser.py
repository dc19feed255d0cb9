"""Headless Chromium from Debian (`chromium`, `chromium-driver`) driven by Selenium; nothing
is downloaded at run time. Screenshots are kept as test artifacts."""

from __future__ import annotations

import os
import shutil
import struct
import zlib
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
ARTIFACTS = Path(
    os.environ.get("SAGACTL_TEST_ARTIFACTS")
    or Path(__file__).resolve().parents[2] / "test-artifacts"
)


def available() -> str | None:
    """Why a browser cannot run here, or None."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if not Path(path).exists() and shutil.which(Path(path).name) is None:
            return f"{path} is not installed (scripts/setup installs it)"
    return None


def start_browser():  # type: ignore[no-untyped-def]
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1400,1100",
    ):
        options.add_argument(argument)
    driver_path = CHROMEDRIVER if Path(CHROMEDRIVER).exists() else shutil.which("chromedriver")
    return webdriver.Chrome(options=options, service=Service(executable_path=driver_path))


def png_is_blank(data: bytes) -> bool:
    """Whether a PNG holds (next to) a single colour: decode its pixels and count them."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    at, idat, width, height, channels = 8, bytearray(), 0, 0, 3
    while at < len(data):
        (length,) = struct.unpack(">I", data[at : at + 4])
        kind = data[at + 4 : at + 8]
        body = data[at + 8 : at + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour = struct.unpack(">IIBB", body[:10])
            assert depth == 8, "only 8-bit PNGs"
            channels = {2: 3, 6: 4, 0: 1, 4: 2}[colour]
        elif kind == b"IDAT":
            idat += body
        at += 12 + length
    raw = zlib.decompress(bytes(idat))
    stride = width * channels
    colours: set[bytes] = set()
    previous = bytearray(stride)
    for row in range(height):
        line = raw[row * (stride + 1) : (row + 1) * (stride + 1)]
        kind, pixels = line[0], bytearray(line[1:])
        for i in range(stride):  # undo the PNG filter of this scanline
            left = pixels[i - channels] if i >= channels else 0
            up = previous[i]
            corner = previous[i - channels] if i >= channels else 0
            if kind == 1:
                pixels[i] = (pixels[i] + left) & 0xFF
            elif kind == 2:
                pixels[i] = (pixels[i] + up) & 0xFF
            elif kind == 3:
                pixels[i] = (pixels[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                best = left if pa <= pb and pa <= pc else up if pb <= pc else corner
                pixels[i] = (pixels[i] + best) & 0xFF
        if row % 8 == 0:
            for x in range(0, stride, channels * 4):
                colours.add(bytes(pixels[x : x + 3]))
        previous = pixels
    return len(colours) < 8


def screenshot(driver, name: str) -> Path:  # type: ignore[no-untyped-def]
    """Saves the page as ARTIFACTS/NAME.png; fails when it is blank."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    data = driver.get_screenshot_as_png()
    path.write_bytes(data)
    assert not png_is_blank(data), f"{path} is blank"
    return path
