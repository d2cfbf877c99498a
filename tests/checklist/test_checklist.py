"""Behavioural checklist (CheckList-style) against the trained champion — a separate, marked suite.

Run it with ``make checklist`` (or ``pytest -m checklist``) after ``make run``; it loads
``FRONTLINE_MODEL_URI`` (default ``models:/frontline@champion`` in the local store). Each case is one test,
so pytest's pass count is the checklist pass rate. These are hand-written posts, none from the data set.
"""

from __future__ import annotations

import os

import pytest

pytestmark = pytest.mark.checklist

URI = os.environ.get("FRONTLINE_MODEL_URI", "models:/frontline@champion")


@pytest.fixture(scope="module")
def predictor():
    from mlflow.exceptions import MlflowException

    from training import tracking

    tracking.configure()
    try:
        return tracking.load(URI).predictor
    except MlflowException as exc:
        pytest.fail(f"no trained model at {URI}: run `make run` first ({exc})")


def one(predictor, text):
    return predictor.classify([text])[0]


# Invariance: handles, links and a trailing emoji or hashtag do not change any head.
INVARIANCE = [
    ("@Delta on hold for 3 hours and my flight is cancelled", "@united on hold for 3 hours and my flight is cancelled https://t.co/aB12"),
    ("@AmazonHelp my package never arrived, order placed 2 weeks ago", "@UPSHelp my package never arrived, order placed 2 weeks ago http://bit.ly/x"),
    ("@comcast internet has been down all day in my area", "@Ask_Spectrum internet has been down all day in my area"),
    ("@AppleSupport my phone keeps restarting after the update", "@AppleSupport my phone keeps restarting after the update 😤"),
    ("@VirginTrains the wifi on this train is useless", "@VirginTrains the wifi on this train is useless #fail"),
    ("@sprintcare I was charged twice for my bill this month", "@TMobileHelp I was charged twice for my bill this month"),
]


@pytest.mark.parametrize("a, b", INVARIANCE)
def test_invariance(predictor, a, b):
    ra, rb = one(predictor, a), one(predictor, b)
    assert (ra["urgency"]["label"], ra["issue_type"]["label"], ra["prior_channels"]["channels"]) == \
           (rb["urgency"]["label"], rb["issue_type"]["label"], rb["prior_channels"]["channels"])


CHANNEL = [
    ("@comcast I have called three times about this outage and nobody fixes it", "phone"),
    ("@AmericanAir been on hold for 2 hours, nobody picks up the phone", "phone"),
    ("@sprintcare spoke to 4 different reps on the phone and still no refund", "phone"),
    ("@AmazonHelp still no reply to my DM from yesterday", "direct_message"),
    ("@Uber_Support I sent you a DM three days ago and heard nothing", "direct_message"),
    ("@AppleSupport I emailed support twice last week and got no answer", "email"),
    ("@hulu_support sent an email on Monday, still waiting for a response", "email"),
    ("@VerizonSupport the live chat agent disconnected me after 40 minutes", "chat"),
    ("@BestBuySupport went to the store twice and they couldn't help me", "in_person"),
    ("@Tesco the staff in your shop told me to complain online", "in_person"),
    ("@ATT your website keeps giving an error when I try to pay, tried the app too", "web_or_app"),
]


@pytest.mark.parametrize("text, channel", CHANNEL)
def test_prior_channel_is_detected(predictor, text, channel):
    r = one(predictor, text)
    assert channel in r["prior_channels"]["channels"]
    assert r["prior_channels"]["tried_other_channel"]


NO_CHANNEL = [
    "@Starbucks thanks for the free coffee today, made my morning!",
    "@SpotifyCares is there a student discount in Canada?",
    "@Delta the new seats are really comfortable",
]


@pytest.mark.parametrize("text", NO_CHANNEL)
def test_no_channel_when_none_mentioned(predictor, text):
    assert not one(predictor, text)["prior_channels"]["tried_other_channel"]


PRAISE = [
    "@SouthwestAir thank you so much, the crew was amazing today!",
    "@AppleSupport you guys are awesome, fixed in 5 minutes. Thanks!",
    "@Starbucks thanks for the free coffee today, made my morning!",
    "@JetBlue best flight ever, great service and snacks",
]


@pytest.mark.parametrize("text", PRAISE)
def test_praise_is_low_urgency(predictor, text):
    assert one(predictor, text)["urgency"]["label"] == "low"


ISSUE = [
    ("@sprintcare I was charged twice for my bill this month, I want a refund", "billing"),
    ("@AmazonHelp my package says delivered but it never arrived", "delivery"),
    ("@comcast internet has been down all day in my whole neighbourhood", "service_disruption"),
    ("@Uber_Support I can't log in to my account, password reset link never comes", "account_access"),
    ("@AppleSupport my iPhone battery dies at 50% since the update", "product_defect"),
    ("@SpotifyCares is there a student discount in Canada?", "information_request"),
    ("@AmazonHelp how do I change the delivery address on an order I placed today?", "order_change"),
    ("@VirginAmerica the agent at the gate was so rude to me", "support_experience"),
]


@pytest.mark.parametrize("text, issue", ISSUE)
def test_issue_type(predictor, text, issue):
    assert one(predictor, text)["issue_type"]["label"] == issue


URGENT = [
    "@united flight cancelled, stranded at the airport overnight with my two kids and no hotel",
    "@Delta I will miss my father's funeral, rebooked on a flight 2 days later, on hold for 3 hours",
    "@comcast internet down for 4 days, I work from home and I'm losing my job over this",
]


@pytest.mark.parametrize("text", URGENT)
def test_urgent_posts_are_high_or_critical(predictor, text):
    assert one(predictor, text)["urgency"]["label"] in ("high", "critical")
