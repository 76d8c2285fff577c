"""A relative applies on a phone-sized screen with a real ID photo; three
officers accept, approve and schedule in the console; the relative's status
page then shows the visit link and the 会见码, and the link admits them.
Screenshots of each key page land in test-artifacts/e2e/."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from playwright.async_api import Browser, Page, ViewportSize, expect

from server.demo import DEMO_PASSWORD
from tests.e2e.conftest import LiveServer
from tests.support.domain import id_number
from tests.support.testdata import face

PHONE: ViewportSize = {"width": 390, "height": 844}
APPLICANT_ID = id_number(sequence="731")


async def officer_page(browser: Browser, server: LiveServer, username: str) -> Page:
    page = await browser.new_page(locale="zh-CN")
    await page.goto(f"{server.base_url}/console/login")
    await page.fill('input[name="username"]', username)
    await page.fill('input[name="password"]', DEMO_PASSWORD)
    await page.click('form[action="/console/login"] button[type="submit"]')
    await expect(page).to_have_url(f"{server.base_url}/console/")
    return page


async def test_a_relative_applies_and_officers_take_it_to_a_scheduled_visit(
    live_server: LiveServer, browser: Browser, artifacts: Path
) -> None:
    base = live_server.base_url
    relative = await browser.new_page(viewport=PHONE, locale="zh-CN")

    # 1. The application form, on a phone-sized screen, with a real ID-card photo.
    await relative.goto(f"{base}/apply")
    await expect(relative.locator("h1")).to_contain_text("申请")
    await relative.select_option('select[name="facility_id"]', label="演示市看守所")
    await relative.fill('input[name="detainee_name"]', "张伟")
    await relative.fill('input[name="visitors.0.name"]', "王芳")
    await relative.fill('input[name="visitors.0.id_number"]', APPLICANT_ID)
    await relative.fill('input[name="visitors.0.phone"]', "13900139000")
    await relative.select_option('select[name="visitors.0.relationship"]', "spouse")
    await relative.set_input_files('input[name="visitors.0.id_photo"]', str(face("biden_1.jpg")))
    await relative.check('input[name="reason"][value="distance_hardship"]')
    await relative.screenshot(path=str(artifacts / "1-apply-form.png"), full_page=True)
    await relative.click('form button[type="submit"]')
    await relative.wait_for_url(f"{base}/apply/done/**")
    number = relative.url.rsplit("/", 1)[-1]
    await expect(relative.locator("body")).to_contain_text(number)
    await relative.screenshot(path=str(artifacts / "2-apply-done.png"), full_page=True)

    # 2. 受理岗 accepts, 审核岗 approves, 值班岗 schedules tomorrow at 10:00.
    intake = await officer_page(browser, live_server, "shouli")
    await intake.screenshot(path=str(artifacts / "3-console-dashboard.png"), full_page=True)
    await intake.click(f"text={number}")
    await expect(intake.locator("body")).to_contain_text("王芳")
    await expect(intake.locator("img").first).to_be_visible()
    await intake.click('form[action$="/accept"] button')
    await expect(intake.locator("body")).to_contain_text("已受理")
    application_url = intake.url

    reviewer = await officer_page(browser, live_server, "shenhe")
    await reviewer.goto(application_url)
    await reviewer.click('form[action$="/approve"] button')
    await expect(reviewer.locator("body")).to_contain_text("审核通过")

    duty = await officer_page(browser, live_server, "zhiban")
    await duty.goto(application_url)
    tomorrow = (datetime.now(live_server.demo.starts_at.tzinfo) + timedelta(days=1)).date()
    await duty.fill('form[action$="/schedule"] input[name="date"]', tomorrow.isoformat())
    await duty.fill('form[action$="/schedule"] input[name="time"]', "10:00")
    await duty.click('form[action$="/schedule"] button')
    await expect(duty.locator("body")).to_contain_text("已预约")
    await duty.screenshot(path=str(artifacts / "4-console-scheduled.png"), full_page=True)

    # 3. The relative looks the application up and finds the link and the code.
    await relative.goto(f"{base}/status")
    await relative.fill('input[name="number"]', number)
    await relative.fill('input[name="id_number"]', APPLICANT_ID)
    await relative.click('form button[type="submit"]')
    body = relative.locator("body")
    await expect(body).to_contain_text("已预约")
    await expect(body).to_contain_text(f"{tomorrow.isoformat()} 10:00")
    link = await relative.locator('a[href*="/v/"]').first.get_attribute("href")
    assert link and "/v/" in link
    code_text = await body.inner_text()
    codes = [w for w in code_text.split() if w.isdigit() and len(w) == 8]
    assert codes, "the 会见码 is not on the status page"
    await relative.screenshot(path=str(artifacts / "5-status-scheduled.png"), full_page=True)

    # 4. The link opens the code page (joining itself opens 15 minutes before the slot).
    await relative.goto(link)
    await expect(relative.locator("body")).to_contain_text("请输入短信中的8位会见码")
    await relative.screenshot(path=str(artifacts / "6-visit-link.png"), full_page=True)
