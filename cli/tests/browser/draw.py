"""Drive the `serve` page in headless Chromium over WebDriver: draw three digits with mouse,
pen and touch pointer events, check #prediction for each, then Clear and the test-digit button.

    python3 tests/browser/draw.py http://127.0.0.1:PORT/ [SCREENSHOT.png]

Exits non-zero with a message on the first failed check. Needs Debian's chromium and
chromium-driver and Python's selenium.
"""
import math
import sys
import time

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.actions.action_builder import ActionBuilder
from selenium.webdriver.common.actions.pointer_input import PointerInput
from selenium.webdriver.common.actions import interaction
from selenium.webdriver.common.by import By

url = sys.argv[1]
screenshot = sys.argv[2] if len(sys.argv) > 2 else None

options = webdriver.ChromeOptions()
options.binary_location = "/usr/bin/chromium"
options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
for arg in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1100,720",
            "--disable-gpu"]:
    options.add_argument(arg)
driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)


def check(condition, message):
    if not condition:
        print("FAILED:", message, file=sys.stderr)
        driver.quit()
        sys.exit(1)


def text(element_id):
    return driver.find_element(By.ID, element_id).text.strip()


def wait_for(predicate, what, timeout=10.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    check(False, f"timed out waiting for {what}")


def bars():
    rows = driver.find_elements(By.CSS_SELECTOR, "#probabilities > *")
    return [(row.get_attribute("data-class"), float(row.get_attribute("data-p"))) for row in rows]


def draw(strokes, kind):
    """Each stroke is a list of (x, y) on the 280×280 pad; `kind` is mouse, pen or touch."""
    pad = driver.find_element(By.ID, "pad")
    pointer = PointerInput(kind, kind)
    actions = ActionBuilder(driver, mouse=pointer, duration=10)
    for stroke in strokes:
        # Offsets from the pad's centre, in CSS pixels (the pad is 280×280).
        x0, y0 = stroke[0]
        actions.pointer_action.move_to(pad, int(x0 - 140), int(y0 - 140))
        actions.pointer_action.pointer_down()
        for x, y in stroke[1:]:
            actions.pointer_action.move_to(pad, int(x - 140), int(y - 140))
        actions.pointer_action.pointer_up()
    actions.perform()


def line(a, b, n=12):
    return [(a[0] + (b[0] - a[0]) * i / n, a[1] + (b[1] - a[1]) * i / n) for i in range(n + 1)]


def ellipse(cx, cy, rx, ry, n=40):
    return [(cx + rx * math.sin(2 * math.pi * i / n), cy - ry * math.cos(2 * math.pi * i / n))
            for i in range(n + 1)]


driver.get(url)
wait_for(lambda: len(bars()) == 10, "ten probability bars")
check(text("prediction") == "", "no prediction before drawing")

digits = [
    ("1", "mouse", [line((150, 40), (135, 240))]),
    ("0", "pen", [ellipse(140, 140, 62, 95)]),
    ("7", "touch", [line((65, 55), (215, 55)) + line((215, 55), (115, 245))[1:]]),
]
for expected, kind, strokes in digits:
    driver.find_element(By.ID, "clear").click()
    wait_for(lambda: text("prediction") == "", "Clear to empty the prediction")
    draw(strokes, kind)
    got = wait_for(lambda: text("prediction"), f"a prediction for the {kind}-drawn {expected}")
    time.sleep(0.4)  # the last debounced request
    got = text("prediction")
    p = bars()
    print(f"drew {expected} with {kind}: #prediction = {got}, p = {max(v for _, v in p):.4f}, "
          f"#warnings = {text('warnings')!r}")
    check(got == expected, f"drew {expected} with {kind}, the page says {got}")
    check(abs(sum(v for _, v in p) - 1) < 1e-3, f"probabilities sum to {sum(v for _, v in p)}")
    check([c for c, _ in p] == [str(c) for c in range(10)], "bars carry data-class 0..9")
    best = driver.execute_script(
        "const f = document.querySelector('#probabilities .best .bar-fill');"
        "return f ? f.getBoundingClientRect().width : 0;")
    check(best > 0.5 * max(v for _, v in p) * 200, f"the winning bar is drawn ({best:.0f} px wide)")
    prepared = driver.execute_script(
        "const c = document.getElementById('prepared').getContext('2d');"
        "return Array.from(c.getImageData(0, 0, 28, 28).data).filter((v, i) => i % 4 == 0 && v > 0).length;")
    check(prepared > 20, f"#prepared shows the 28×28 input ({prepared} lit pixels)")
    if screenshot and expected == "7":
        driver.save_screenshot(screenshot)

driver.find_element(By.ID, "clear").click()
wait_for(lambda: text("prediction") == "", "Clear to empty the prediction")
check(all(v == 0 for _, v in bars()), "Clear resets the bars")

driver.find_element(By.ID, "test-digit").click()
info = wait_for(lambda: text("test-info"), "the test digit's label")
check(info.startswith("test image "), f"test-info says {info}")
label = info.split("label ")[1].split(",")[0]
model = info.split("model ")[1].split(" ")[0]
check(text("prediction") == model, f"#prediction {text('prediction')} is the model's answer {model}")
print(f"test digit: {info}")
# Nothing failed to load (a missing favicon shows here as a 404) and no script error.
errors = [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]
check(errors == [], f"the browser reported {errors}")
driver.quit()
print("browser checks passed")
