"""The viewer in a real browser: Debian's headless Chromium driven by Selenium.

The browser and its driver are the system's (``/usr/bin/chromium``,
``/usr/bin/chromedriver``; ``.ci/run`` installs them), named explicitly so Selenium never
downloads anything. The server is the real uvicorn one, started on a free loopback port
and stopped (and started again) by the test itself.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from synthetic import XSS_PROMPTS, write_traces

from samplerlab.viewer import Catalog, create_app
from samplerlab.viewer.serve import running_server

CHROMIUM = os.environ.get("SAMPLERLAB_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("SAMPLERLAB_CHROMEDRIVER", "/usr/bin/chromedriver")
ARTIFACTS = Path(os.environ.get("SAMPLERLAB_TEST_ARTIFACTS",
                                Path(__file__).resolve().parents[2] / "test-artifacts"))
WAIT_S = 10

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.common.exceptions import NoAlertPresentException  # noqa: E402
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support import expected_conditions as ec  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402


@pytest.fixture(scope="module")
def browser():
    if not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)):
        pytest.skip(f"needs {CHROMIUM} and {CHROMEDRIVER} (apt-get install chromium "
                    "chromium-driver; .ci/run does)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1400,1000", "--no-first-run", "--disable-extensions"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    with pytest.MonkeyPatch.context() as env:
        env.setenv("SE_OFFLINE", "true")  # Selenium Manager must not look for downloads
        driver = webdriver.Chrome(
            service=webdriver.ChromeService(executable_path=CHROMEDRIVER), options=options)
        yield driver
        driver.quit()


def wait(driver):
    return WebDriverWait(driver, WAIT_S)


def assert_no_alert(driver) -> None:
    with pytest.raises(NoAlertPresentException):
        driver.switch_to.alert  # noqa: B018 - raises when no script ran alert()


def page_errors(driver) -> list[str]:
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def test_browse_step_through_samples_rate_five_pairs_and_restart(browser, real_run):
    write_traces(real_run, [("000-greedy", 0, 0)], ["The", " cat", " sat"])
    catalog_paths = [real_run.parents[1]]
    with running_server(create_app(Catalog(catalog_paths))) as url:
        # Runs page -> the run.
        browser.get(url)
        browser.find_element(By.LINK_TEXT, "r1").click()
        wait(browser).until(ec.presence_of_element_located((By.ID, "metric-table")))

        # The metric table sorts by a column, ascending then descending.
        head = browser.find_element(By.XPATH, '//table[@id="metric-table"]//th[.="rep_2"]')
        column = [th.text for th in browser.find_elements(
            By.CSS_SELECTOR, "#metric-table thead th")].index("rep_2")

        def column_values() -> list[float]:
            cells = browser.find_elements(By.CSS_SELECTOR,
                                          f"#metric-table tbody tr > :nth-child({column + 1})")
            return [float(c.get_attribute("data-sort")) for c in cells]

        head.click()
        assert column_values() == sorted(column_values())
        head.click()
        assert column_values() == sorted(column_values(), reverse=True)

        # Samples: step with the keyboard and the link; hostile prompts are text.
        browser.find_element(By.LINK_TEXT, "Samples").click()
        position = (By.ID, "prompt-position")
        wait(browser).until(ec.text_to_be_present_in_element(position, "prompt 1 of 4"))
        browser.find_element(By.TAG_NAME, "body").send_keys(Keys.ARROW_RIGHT)
        wait(browser).until(ec.text_to_be_present_in_element(position, "prompt 2 of 4"))
        browser.find_element(By.ID, "next-prompt").click()
        wait(browser).until(ec.text_to_be_present_in_element(position, "prompt 3 of 4"))
        assert browser.find_element(By.CLASS_NAME, "prompt-text").text == XSS_PROMPTS[0]
        assert_no_alert(browser)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        assert browser.save_screenshot(str(ARTIFACTS / "viewer-samples.png"))
        browser.find_element(By.ID, "next-prompt").click()
        wait(browser).until(ec.text_to_be_present_in_element(position, "prompt 4 of 4"))
        assert browser.find_element(By.CLASS_NAME, "prompt-text").text == XSS_PROMPTS[1]
        assert_no_alert(browser)
        assert not browser.find_elements(By.CSS_SELECTOR, "main img[src='x']")
        cards = browser.find_elements(By.CSS_SELECTOR, "td.card")
        assert len(cards) == 3 * 2  # three cells side by side, two samples each

        # Tokens: a token's alternatives show on hover.
        browser.get(url + "runs/viewer/r1/tokens")
        token = browser.find_elements(By.CSS_SELECTOR, "#tokens .tok")[1]
        tip = token.find_element(By.CLASS_NAME, "tip")
        assert not tip.is_displayed()
        ActionChains(browser).move_to_element(token).perform()
        wait(browser).until(lambda _: tip.is_displayed())
        assert '" cat"' in tip.text and "rank" in tip.text

        # Rate five pairs: keys for three, buttons for two.
        browser.get(url + "runs/viewer/r1/rate")
        name = browser.find_element(By.ID, "rater")
        name.clear()
        name.send_keys("selenium")
        for i, action in enumerate(["a", "b", "t", "choose-a", "choose-tie"]):
            pair = browser.find_element(By.NAME, "pair")
            assert browser.find_element(By.ID, "text-a").text or \
                browser.find_element(By.ID, "text-b").text
            if action.startswith("choose-"):
                browser.find_element(By.ID, action).click()
            else:
                browser.find_element(By.TAG_NAME, "body").send_keys(action)
            wait(browser).until(ec.staleness_of(pair))
            wait(browser).until(ec.text_to_be_present_in_element(
                (By.TAG_NAME, "main"), f"You have judged {i + 1} pair"))
        assert page_errors(browser) == []

    # A new server on the same runs: the five votes are there, with the win-rate table.
    with running_server(create_app(Catalog(catalog_paths))) as url:
        browser.get(url + "runs/viewer/r1/")
        ratings = browser.find_element(By.ID, "ratings")
        assert "5 blind pairwise judgements by 1 rater." in ratings.text
        rows = browser.find_elements(By.CSS_SELECTOR, "#ratings-table tbody tr")
        assert 2 <= len(rows) <= 3
        games = [int(r.find_elements(By.TAG_NAME, "td")[0].text) for r in rows]
        assert sum(games) == 10  # five judgements, two cells each
        assert "win rate" in ratings.text and "Bradley–Terry" in ratings.text
        browser.get(url + "runs/viewer/r1/rate")
        assert "You have judged 5 pairs." in browser.find_element(By.TAG_NAME, "main").text


def test_the_export_works_from_a_file_without_a_server(browser, real_run, tmp_path):
    from samplerlab.viewer.export import export_html

    target = export_html(Catalog([real_run]).sorted_runs()[0], tmp_path / "run.html")
    browser.get(target.resolve().as_uri() + "#samples")
    position = (By.ID, "export-position")
    wait(browser).until(ec.text_to_be_present_in_element(position, "prompt 1 of 4"))
    browser.find_element(By.ID, "export-next").click()
    browser.find_element(By.ID, "export-next").click()
    wait(browser).until(ec.text_to_be_present_in_element(position, "prompt 3 of 4"))
    visible = [p for p in browser.find_elements(By.CLASS_NAME, "prompt-text")
               if p.is_displayed()]
    assert [p.text for p in visible] == [XSS_PROMPTS[0]]
    assert_no_alert(browser)
    search = browser.find_element(By.ID, "export-search")
    search.send_keys("yosemite")
    wait(browser).until(ec.text_to_be_present_in_element(position, "prompt 1 of 1"))
    assert page_errors(browser) == []  # the inlined script and style pass the page's policy
