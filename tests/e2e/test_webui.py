"""The web chat page that `gannet serve` serves at / (src/server/webui/), driven in headless
Chromium through selenium on the default model: the page's headers, an answer that streams (its
text grows while it arrives), the stop button, the conversation after a reload, regenerate and
edit, the narrow-screen layout, model output that tries to inject HTML, the markdown renderer,
server errors in the conversation, the settings in the request, and the API-key prompt.

Screenshots go to $GANNET_SCREENSHOT_DIR (default: a pytest temporary directory); their paths
are printed."""
import json
import os
import re
import shutil
import time
from pathlib import Path

import httpx
import pytest

from test_server import MODEL, MODEL_ID, Server

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
if not CHROMIUM or not CHROMEDRIVER:
    pytest.skip("chromium and chromedriver are not installed (scripts/install_deps.sh --dev installs "
                "Debian's chromium and chromium-driver)", allow_module_level=True)
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed "
                                "(tools/requirements.txt)")
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402

STATS = re.compile(r"\d+ tokens · [\d.]+ tok/s · context \d+ / 1024")


def wait_until(predicate, timeout=30.0, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@pytest.fixture(scope="module")
def server(gannet_bin):
    if not MODEL.is_file():
        pytest.fail(f"default model missing: {MODEL}")
    s = Server(gannet_bin)
    yield s
    s.stop()
    assert s.proc.returncode == 0, s.stderr_lines[-20:]


@pytest.fixture(scope="module")
def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1200,900"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    path = os.environ.get("GANNET_SCREENSHOT_DIR")
    directory = Path(path) if path else tmp_path_factory.mktemp("webui-screenshots")
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def screenshot(driver, shots, name, capsys):
    path = shots / f"{name}.png"
    assert driver.save_screenshot(str(path)), path
    with capsys.disabled():
        print(f"\nscreenshot: {path}")


def open_page(driver, url):
    driver.get(url + "/")
    wait_until(lambda: "context 1024" in driver.find_element(By.ID, "model-info").text, 30,
               "the page to read /props")


def by_id(driver, element_id):
    return driver.find_element(By.ID, element_id)


def set_setting(driver, field, value):
    by_id(driver, "toggle-settings").click()
    box = by_id(driver, field)
    box.clear()
    box.send_keys("" if value is None else str(value), Keys.TAB)
    by_id(driver, "close-settings").click()


def set_max_tokens(driver, n):
    set_setting(driver, "max-tokens", n)


def answers(driver):
    return driver.find_elements(By.CSS_SELECTOR, ".message.assistant .content")


def answer_texts(driver):
    """Every answer's text, read in one step (the page re-renders answers while they stream)."""
    return driver.execute_script(
        "return [...document.querySelectorAll('.message.assistant .content')]"
        ".map((a) => a.innerText);")


def last_answer(driver):
    texts = answer_texts(driver)
    return texts[-1] if texts else ""


def generating(driver):
    return by_id(driver, "stop").is_enabled()


def send(driver, text):
    users = len(driver.find_elements(By.CSS_SELECTOR, ".message.user"))
    box = by_id(driver, "prompt")
    box.send_keys(text)
    box.send_keys(Keys.ENTER)  # Enter sends
    wait_until(lambda: len(driver.find_elements(By.CSS_SELECTOR, ".message.user")) > users, 10,
               "the message to be sent")


def watch_stream(driver, timeout=60):
    """The last answer's text length, sampled while it streams, until generation ends."""
    lengths = []
    deadline = time.time() + timeout
    while generating(driver) and time.time() < deadline:
        lengths.append(len(last_answer(driver)))
        time.sleep(0.01)
    assert not generating(driver), "the answer did not finish"
    return lengths


def test_page_headers(server):
    page = httpx.get(server.url + "/", timeout=10)
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    csp = page.headers["content-security-policy"]
    assert "script-src 'self';" in csp and "default-src 'none'" in csp and "unsafe" not in csp
    assert page.headers["x-content-type-options"] == "nosniff"
    for asset in re.findall(r'(?:src|href)="(/webui/[^"]+)"', page.text):
        r = httpx.get(server.url + asset, timeout=10)
        assert r.status_code == 200, asset
        assert r.headers["content-type"].split(";")[0] in (
            "text/javascript", "text/css", "image/svg+xml"), asset
    head = httpx.head(server.url + "/webui/app.js", timeout=10)
    assert head.status_code == 200 and head.content == b""
    assert int(head.headers["content-length"]) > 1000
    again = httpx.get(server.url + "/webui/app.js", headers={"If-None-Match": head.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    assert httpx.post(server.url + "/", timeout=10).status_code == 405
    assert httpx.get(server.url + "/webui/missing.js", timeout=10).status_code == 404


def test_stream_stop_reload_regenerate_edit(server, browser, shots, capsys):
    open_page(browser, server.url)
    set_setting(browser, "temperature", 0)  # greedy: the same answers on every run
    set_max_tokens(browser, 48)
    send(browser, "Tell me about the sea in three sentences.")
    # Streaming: a part of the answer was on the page before the whole of it. (With speculative
    # decoding a step adds several tokens, and the answer may take only a few polls.)
    lengths = [n for n in watch_stream(browser) if n > 0]
    assert len(set(lengths)) >= 2 and lengths[-1] > lengths[0], f"no streaming seen: {lengths}"
    first_answer = last_answer(browser)
    assert first_answer
    stats = browser.find_elements(By.CSS_SELECTOR, ".message.assistant .stats")[-1].text
    assert STATS.search(stats), stats
    screenshot(browser, shots, "answer", capsys)

    # A long answer (no token limit) stopped with the stop button: the text stops growing.
    set_max_tokens(browser, None)
    send(browser, "Count from 1 to 500, one number per line.")
    wait_until(lambda: len(last_answer(browser)) > 20, 30, "the long answer to start")
    by_id(browser, "stop").click()
    wait_until(lambda: not generating(browser), 5, "the stop button to end the generation")
    stopped = last_answer(browser)
    time.sleep(1.0)
    assert last_answer(browser) == stopped
    assert "stopped" in browser.find_elements(By.CSS_SELECTOR, ".message.assistant")[-1].text
    screenshot(browser, shots, "stopped", capsys)

    # Reload: the conversation is still there, whole.
    browser.refresh()
    open_page(browser, server.url)
    titles = [b.text for b in browser.find_elements(By.CSS_SELECTOR, "#conversation-list .conversation")]
    assert titles == ["Tell me about the sea in three sentences."]
    kept = answer_texts(browser)
    assert kept == [first_answer, stopped]
    users = browser.find_elements(By.CSS_SELECTOR, ".message.user .content")
    assert [u.text for u in users] == ["Tell me about the sea in three sentences.",
                                       "Count from 1 to 500, one number per line."]

    # Regenerate the stopped answer; Escape stops it from the keyboard.
    browser.find_element(By.XPATH, "//button[text()='Regenerate']").click()
    wait_until(lambda: generating(browser) and len(last_answer(browser)) > 5, 30,
               "the regenerated answer to start")
    by_id(browser, "prompt").send_keys(Keys.ESCAPE)
    wait_until(lambda: not generating(browser), 5, "Escape to stop the generation")
    assert len(answers(browser)) == 2

    # Edit the first message: the conversation is cut there and answered again.
    set_max_tokens(browser, 16)
    browser.find_elements(By.XPATH, "//button[text()='Edit']")[0].click()
    editor = browser.switch_to.active_element
    assert editor.get_attribute("aria-label") == "Edit message"
    editor.send_keys(Keys.CONTROL, "a")
    editor.send_keys("Name one colour.", Keys.ENTER)
    wait_until(lambda: not generating(browser) and len(answers(browser)) == 1, 60,
               "the edited conversation's answer")
    users = browser.find_elements(By.CSS_SELECTOR, ".message.user .content")
    assert [u.text for u in users] == ["Name one colour."]
    assert [b.text for b in browser.find_elements(By.CSS_SELECTOR, "#conversation-list .conversation")] \
        == ["Name one colour."]
    assert answers(browser)[0].text
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert not errors, errors


def test_narrow_screen(server, browser, shots, capsys):
    browser.set_window_size(390, 844)
    try:
        open_page(browser, server.url)
        toggle = by_id(browser, "toggle-sidebar")
        assert toggle.is_displayed()
        assert not by_id(browser, "sidebar").is_displayed()
        assert by_id(browser, "prompt").is_displayed() and by_id(browser, "send").is_displayed()
        screenshot(browser, shots, "narrow", capsys)
        toggle.click()
        assert by_id(browser, "sidebar").is_displayed()
        assert browser.switch_to.active_element == by_id(browser, "new-chat")
        screenshot(browser, shots, "narrow-conversations", capsys)
        browser.switch_to.active_element.send_keys(Keys.ESCAPE)
        assert not by_id(browser, "sidebar").is_displayed()
        assert browser.switch_to.active_element == toggle
    finally:
        browser.set_window_size(1200, 900)


XSS = ('<img src=x onerror="window.__xss=1"><script>window.__xss=2</script>\n\n'
       '**bold <b>tag</b>** [click](javascript:window.__xss=3) [ok](https://example.org/a_b)\n\n'
       '```html\n<script>window.__xss=4</script>\n```\n'
       '- item `<i>code</i>`\n- [x](data:text/html,<script>alert(1)</script>)')


def test_model_output_cannot_inject_html(server, browser, shots, capsys):
    open_page(browser, server.url)
    conversation = {"id": "xss", "title": "<img src=x onerror=alert(1)>", "updated": 1,
                    "messages": [{"role": "user", "content": "<b>hi</b>"},
                                 {"role": "assistant", "content": XSS}]}
    browser.execute_script(
        "localStorage.setItem('gannet.conversations', arguments[0]);"
        "localStorage.setItem('gannet.current', 'xss');", json.dumps([conversation]))
    browser.refresh()
    open_page(browser, server.url)
    log = by_id(browser, "messages")
    answer = answers(browser)[-1]
    assert log.find_elements(By.CSS_SELECTOR, "img, script, b, i, iframe") == []
    assert browser.execute_script("return window.__xss") is None
    assert "<img src=x onerror=\"window.__xss=1\"><script>window.__xss=2</script>" in answer.text
    assert answer.find_element(By.TAG_NAME, "strong").text == "bold <b>tag</b>"
    links = answer.find_elements(By.TAG_NAME, "a")
    assert [a.get_attribute("href") for a in links] == ["https://example.org/a_b"]
    assert "[click](javascript:window.__xss=3)" in answer.text
    assert "<script>window.__xss=4</script>" in answer.find_element(By.TAG_NAME, "pre").text
    copy = answer.find_element(By.CSS_SELECTOR, ".code-block button.copy")
    copy.click()
    wait_until(lambda: copy.text in ("Copied", "Selected"), 5, "the code to be copied")
    assert answer.find_element(By.CSS_SELECTOR, "li code").text == "<i>code</i>"
    assert browser.find_element(By.CSS_SELECTOR, ".message.user .content").text == "<b>hi</b>"
    assert "<img" in browser.find_element(By.CSS_SELECTOR, "#conversation-list .conversation").text
    screenshot(browser, shots, "markdown-escaped", capsys)


@pytest.fixture(scope="module")
def keyed_server(gannet_bin):
    s = Server(gannet_bin, "--api-key", "s3cret")
    yield s
    s.stop()


def test_api_key_prompt(keyed_server, browser, shots, capsys):
    assert httpx.get(keyed_server.url + "/", timeout=10).status_code == 200  # the page needs no key
    assert httpx.get(keyed_server.url + "/props", timeout=10).status_code == 401
    browser.get(keyed_server.url + "/")
    dialog = by_id(browser, "key-dialog")
    wait_until(lambda: dialog.get_attribute("open") is not None, 10, "the key prompt")
    screenshot(browser, shots, "api-key", capsys)
    by_id(browser, "key-input").send_keys("wrong", Keys.ENTER)
    wait_until(lambda: "refused" in by_id(browser, "key-reason").text, 10, "the refusal")
    by_id(browser, "key-input").send_keys("s3cret", Keys.ENTER)
    wait_until(lambda: MODEL_ID in by_id(browser, "model-info").text, 10, "/props with the key")
    assert browser.execute_script("return localStorage.getItem('gannet.apiKey')") == "s3cret"
    set_max_tokens(browser, 8)
    send(browser, "Hi")
    watch_stream(browser)
    assert last_answer(browser)


# The page's markdown renderer (webui/markdown.js) on each construct it knows, as the browser runs it.
MARKDOWN = [
    ("**a** and *b* and `c` ~~d~~", "<p><strong>a</strong> and <em>b</em> and <code>c</code> <del>d</del></p>"),
    ("snake_case_name and 2 * 3 * 4", "<p>snake_case_name and 2 * 3 * 4</p>"),
    ("a\nb\n\nc", "<p>a<br>b</p><p>c</p>"),
    ("# Title\ntext", "<h1>Title</h1><p>text</p>"),
    ("- a\n- b\n  - c\n\n3. three\n4. four",
     '<ul><li>a</li><li>b<ul><li>c</li></ul></li></ul><ol start="3"><li>three</li><li>four</li></ol>'),
    ("```js\nlet a = 1 < 2;\n```\nafter",
     '<div class="code-block"><span class="code-lang">js</span><pre><code>let a = 1 &lt; 2;'
     '</code></pre></div><p>after</p>'),
    ("```\nstill streaming", "<div class=\"code-block\"><pre><code>still streaming</code></pre></div>"),
    ("> quoted *text*", "<blockquote><p>quoted <em>text</em></p></blockquote>"),
    ("---", "<hr>"),
    ("see https://x.org/a_b.", '<p>see <a href="https://x.org/a_b" rel="noopener noreferrer nofollow" '
     'target="_blank">https://x.org/a_b</a>.</p>'),
    ('[x](https://a.org/?q="1"&r=2)', '<p><a href="https://a.org/?q=&quot;1&quot;&amp;r=2" '
     'rel="noopener noreferrer nofollow" target="_blank">x</a></p>'),
    ("[x](javascript:alert(1)) [y](//evil.org) [z](data:text/html,hi)",
     "<p>[x](javascript:alert(1)) [y](//evil.org) [z](data:text/html,hi)</p>"),
    ("`<b>` \u0001 0\u0002", "<p><code>&lt;b&gt;</code>  0</p>"),
    ('<a href="x" onclick=\'y\'>&amp;', "<p>&lt;a href=&quot;x&quot; onclick=&#39;y&#39;&gt;&amp;amp;</p>"),
]


def test_markdown_renderer(server, browser):
    open_page(browser, server.url)
    rendered = browser.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "import('/webui/markdown.js').then((m) => done(arguments[0].map(m.renderMarkdown)),"
        " (e) => done(String(e)));", [source for source, _ in MARKDOWN])
    assert isinstance(rendered, list), rendered
    for (source, expected), got in zip(MARKDOWN, rendered):
        assert got == expected, source


def test_server_error_shown(server, browser):
    open_page(browser, server.url)
    by_id(browser, "new-chat").click()
    set_max_tokens(browser, 5000)  # more than the 1024-token context: the server answers 400
    send(browser, "Hello")
    error = wait_until(lambda: browser.find_elements(By.CSS_SELECTOR, ".message.error .content"), 10,
                       "the error in the conversation")
    assert error[0].text.startswith("400: ") and "1024" in error[0].text, error[0].text
    assert not generating(browser)
    assert answers(browser) == []


def test_settings_reach_the_request(server, browser):
    open_page(browser, server.url)
    by_id(browser, "new-chat").click()
    set_setting(browser, "system-prompt", "Answer in French.")
    set_setting(browser, "temperature", 0)  # greedy: the same answer on every run
    set_setting(browser, "top-p", 0.9)
    set_max_tokens(browser, 4)
    browser.execute_script(  # records what the page sends
        "window.__sent = []; const fetch0 = window.fetch;"
        "window.fetch = (url, opts) => { window.__sent.push([url, opts && opts.body]);"
        " return fetch0(url, opts); };")
    send(browser, "Hello")
    watch_stream(browser)
    sent = [(url, json.loads(body)) for url, body in browser.execute_script("return window.__sent")
            if url == "/v1/chat/completions"]
    assert len(sent) == 1
    body = sent[0][1]
    assert body["messages"] == [{"role": "system", "content": "Answer in French."},
                                {"role": "user", "content": "Hello"}]
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert (body["temperature"], body["top_p"], body["max_tokens"]) == (0, 0.9, 4)
    stats = browser.find_elements(By.CSS_SELECTOR, ".message.assistant .stats")[-1].text
    assert re.search(r"\b4 tokens\b", stats) and "token limit" in stats, stats
    # Settings survive a reload.
    browser.refresh()
    open_page(browser, server.url)
    assert by_id(browser, "system-prompt").get_attribute("value") == "Answer in French."
    assert by_id(browser, "max-tokens").get_attribute("value") == "4"
