#!/usr/bin/env python3
"""Derive policies/default.yaml, consent-proxy's built-in policy, from the Open Cookie Database.

Usage:
    python3 scripts/derive-default-policy.py            # (re)write policies/default.yaml
    python3 scripts/derive-default-policy.py --check    # exit 1 if the committed file is stale

Input:  third_party/open-cookie-database/open-cookie-database.csv (Apache-2.0, see the LICENSE
        beside it and NOTICE at the repository root).
Output: policies/default.yaml. Paths are relative to the repository root, found from this
        script's own location, so the script can be run from any directory.

Python 3.11, standard library only. The output is deterministic: the same CSV gives the same
bytes.

The Open Cookie Database (OCD) is a good catalogue but its categories cannot be used as they
are. Its "Functional" category mixes strictly necessary cookies (PHPSESSID, consent state) with
trackers (it lists Hotjar's `_hjSession_`, LinkedIn's `li_fat_id` and DoubleClick's
`test_cookie` as Functional), and its framework coverage has gaps and typos (`ASP.NET_Sessio`,
`JSESSIO`). Every correction is made here, in the explicit tables below; never edit
policies/default.yaml by hand. The pipeline is:

  1. read the CSV; normalise vendor spellings (VENDOR_ALIASES) and re-attribute rows that OCD
     files under the wrong platform (VENDOR_BY_ROW);
  2. turn each name into a pattern (name / prefix / glob), applying PATTERN_OVERRIDES; drop
     names that are not valid cookie names, truncated (TRUNCATED_NAMES) or too generic to
     attribute to a vendor (SHORT_NAME_MAX, GENERIC_NAMES);
  3. map the OCD category (CATEGORY_MAP), promote consent-manager state to necessary
     (CONSENT_MANAGER_PLATFORMS) and raise every row of a known tracker vendor to at least its
     floor (TRACKER_VENDORS): analytics for measurement / session replay, marketing for ads;
  4. merge duplicates: one rule per (kind, pattern), the most restrictive category wins
     (marketing > analytics > preferences > necessary);
  5. apply the curated rules (CURATED_RULES: framework sessions and CSRF, infrastructure,
     consent managers, Google Analytics forms OCD lacks), which win over everything above;
  6. self-check the invariants (self_check) and render the YAML.
"""

from __future__ import annotations

import argparse
import csv
import difflib
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import trackers  # scripts/trackers.py: the tag catalogue

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_INPUT = REPO_ROOT / "third_party" / "open-cookie-database" / "open-cookie-database.csv"
DEFAULT_OUTPUT = REPO_ROOT / "policies" / "default.yaml"
FRAMEWORK_COOKIES = REPO_ROOT / "scripts" / "data" / "framework-cookies.csv"

NECESSARY, PREFERENCES, ANALYTICS, MARKETING = "necessary", "preferences", "analytics", "marketing"
# Restrictiveness order, used to merge duplicates and to apply vendor floors.
RANK = {NECESSARY: 0, PREFERENCES: 1, ANALYTICS: 2, MARKETING: 3}
CATEGORIES = tuple(RANK)

KINDS = ("name", "prefix", "glob")  # output order within one pattern text

# ---------------------------------------------------------------------------------------------
# 1. Category mapping: every category that occurs in the CSV must be listed (an unknown one is
#    an error, so a new OCD category cannot slip through silently).
# ---------------------------------------------------------------------------------------------
CATEGORY_MAP = {
    "Necessary": NECESSARY,  # used by a handful of recent entries (Supabase, Clerk, Rails, ...)
    "Security": NECESSARY,  # CSRF tokens, bot protection
    "Functional": PREFERENCES,  # a mix: curated below, trackers raised by TRACKER_VENDORS
    "Personalization": PREFERENCES,  # UI state (Salesforce sidebar, list views)
    "Analytics": ANALYTICS,
    "Marketing": MARKETING,
}

# ---------------------------------------------------------------------------------------------
# 2. Vendor names
# ---------------------------------------------------------------------------------------------
# OCD spells some platforms two ways; one spelling per vendor in the output.
VENDOR_ALIASES = {
    "CloudFlare": "Cloudflare",
    "Hubspot": "HubSpot",
    "Mediamath": "MediaMath",
    "ComScore": "comScore",
    "Wordpress": "WordPress",
    "Livechat": "LiveChat",
    "Tawk.to Chat": "Tawk.to",
    "PowerLinks Media Limited": "PowerLinks",
    "betweendigital.com": "BetweenDigital",
    "Next": "Next.js",
    "NGINX Ingresss": "NGINX Ingress",  # typo in OCD
    "": None,  # XSRF-TOKEN has no platform; the curated rule gives it one
}

# Rows that OCD files under a platform that did not set them. Keyed by (OCD platform, name).
VENDOR_BY_ROW = {
    # Microsoft Clarity (session replay) is filed under the catch-all "Microsoft" platform,
    # next to ASP.NET framework cookies; split it out so the tracker floor applies to it only.
    ("Microsoft", "_clck"): "Microsoft Clarity",
    ("Microsoft", "_clsk"): "Microsoft Clarity",
    ("Microsoft", "CLID"): "Microsoft Clarity",
    ("Microsoft", "SM"): "Microsoft Clarity",
    # Segment's analytics.js cookies, listed because Trustpilot's site uses Segment.
    ("Trustpilot", "ajs_anonymous_id"): "Segment",
    ("Trustpilot", "ajs_user_id"): "Segment",
    ("Trustpilot", "ajs_group_id"): "Segment",
    ("Trustpilot", "amplitude_id"): "Amplitude",
    # `_gat_<tracker name>` is Google Analytics' throttle cookie for a named tracker; OCD lists
    # `_gat_pro` under Snapwidget (a site that happens to use a tracker named "pro").
    ("Snapwidget", "_gat_pro"): "Google Analytics",
    # Marketo's tracking cookie, listed because onetrust.com uses Marketo.
    ("OneTrust", "_mkto_trk"): "Marketo",
    # The Google Cloud HTTP(S) load balancer's affinity cookie, set on the site's own domain;
    # it is infrastructure, not a google.com advertising cookie (see CURATED_RULES).
    ("Google", "GCLB"): "Google Cloud Load Balancing",
    # TSxxxxxxxx cookies are F5 BIG-IP ASM (WAF) cookies, not Wix's.
    ("Wix.com", "TS01"): "F5 BIG-IP",
}

# ---------------------------------------------------------------------------------------------
# 3. Tracker vendors and their floor category. Every OCD row of one of these vendors ends up at
#    least at the floor, whatever OCD says: no tracker can be necessary or preferences. A row
#    OCD already puts higher keeps OCD's category (a Google Analytics campaign cookie that OCD
#    calls Marketing stays marketing). self_check() enforces that no rule of these vendors is
#    necessary or preferences. Vendors absent from the current CSV are listed on purpose: they
#    guard future OCD updates.
# ---------------------------------------------------------------------------------------------
TRACKER_VENDORS = {
    # --- measurement / web and product analytics -------------------------------------------
    "Google Analytics": ANALYTICS,
    "Adobe Analytics": ANALYTICS,
    "AT Internet": ANALYTICS,
    "Ahoy": ANALYTICS,
    "Amplitude": ANALYTICS,
    "Baidu": ANALYTICS,  # Baidu Tongji
    "Bit.ly": ANALYTICS,
    "Chartbeat": ANALYTICS,
    "comScore": ANALYTICS,  # audience measurement (Scorecard Research)
    "Dotmetrics": ANALYTICS,
    "Fathom Analytics": ANALYTICS,
    "Gemius": ANALYTICS,
    "Heap Analytics": ANALYTICS,
    "HubSpot": ANALYTICS,  # visitor tracking (hubspotutk, __hstc); its Marketing rows stay so
    "infOnline": ANALYTICS,  # IVW audience measurement
    "Marfeel": ANALYTICS,
    "Matomo": ANALYTICS,
    "Microsoft Azure App Insights": ANALYTICS,  # ai_user / ai_session usage telemetry
    "Mixpanel": ANALYTICS,
    "Oribi": ANALYTICS,
    "Parse.ly": ANALYTICS,  # OCD lists its visitor/session ids as Functional
    "Piwik": ANALYTICS,
    "Plausible Analytics": ANALYTICS,
    "Rudderstack": ANALYTICS,
    "Segment": ANALYTICS,
    "Siteimprove": ANALYTICS,
    "Snowplow": ANALYTICS,
    "Umami": ANALYTICS,
    "Yandex.Metrica": ANALYTICS,
    "Braze": ANALYTICS,  # device / session ids for engagement analytics
    # --- session replay, heatmaps, feedback, RUM --------------------------------------------
    "Hotjar": ANALYTICS,  # OCD calls _hjSession_, _hjSessionUser_, ... Functional
    "Microsoft Clarity": ANALYTICS,
    "ContentSquare": ANALYTICS,
    "Crazy Egg": ANALYTICS,
    "Dynatrace": ANALYTICS,  # real-user monitoring session ids
    "FullStory": ANALYTICS,
    "Inspectlet": ANALYTICS,
    "Lucky Orange": ANALYTICS,
    "Mopinion.com": ANALYTICS,
    "Mouseflow": ANALYTICS,
    "Qualtrics": ANALYTICS,  # site intercepts with session replay (QSI_ReplaySession_*)
    # --- A/B testing and personalisation (persistent visitor ids, bucketing) -----------------
    "ABlyft": ANALYTICS,
    "ABTasty": ANALYTICS,
    "Convert Insights": ANALYTICS,
    "Dynamic Yield": ANALYTICS,
    "Google Optimize": ANALYTICS,
    "Optimizely": ANALYTICS,
    "Visual Website Optimizer": ANALYTICS,
    # --- Google advertising ------------------------------------------------------------------
    "Google": MARKETING,  # google.com account/ads cookies (NID, SID, ...); GCLB split out above
    "Google Ads": MARKETING,
    "Google AdSense": MARKETING,
    "DoubleClick/Google Marketing": MARKETING,  # test_cookie is Functional in OCD
    "Google Hotel Ads": MARKETING,
    "Google Flights": MARKETING,
    "Youtube": MARKETING,  # embed cookies (YSC, VISITOR_INFO1_LIVE)
    # --- social networks' pixels and embeds ---------------------------------------------------
    "Facebook": MARKETING,
    "Instagram": MARKETING,
    "LinkedIn": MARKETING,  # li_fat_id (conversion tracking) is Functional in OCD
    "Pinterest": MARKETING,
    "Reddit": MARKETING,
    "Snapchat": MARKETING,
    "TikTok": MARKETING,
    "X": MARKETING,  # incl. csrf_same_site, which OCD calls Security but describes as ad tracking
    "Bing / Microsoft": MARKETING,  # Microsoft Advertising (UET: _uetsid, _uetvid, MUID)
    # --- ad tech: exchanges, SSPs, DSPs, DMPs, identity, retargeting, native ------------------
    "1rx.io": MARKETING,
    "33Across": MARKETING,
    "Acuity": MARKETING,
    "Adalyser.com": MARKETING,
    "Adcalls": MARKETING,  # call tracking for ad attribution
    "Adform": MARKETING,
    "Adhese": MARKETING,
    "Adition": MARKETING,
    "Adkernel": MARKETING,
    "Admatic": MARKETING,
    "Admixer": MARKETING,
    "Adobe Advertising": MARKETING,
    "Adobe Audience Manager": MARKETING,
    "Adxcore": MARKETING,
    "Amazon": MARKETING,  # Amazon advertising
    "Aniview": MARKETING,
    "Atlas": MARKETING,
    "Audrte": MARKETING,
    "Awin": MARKETING,
    "Beeswax": MARKETING,
    "BetweenDigital": MARKETING,
    "Bidence": MARKETING,
    "bidswitch.net": MARKETING,
    "Blue": MARKETING,
    "BlueKai": MARKETING,
    "Blueconic.com": MARKETING,
    "Bombora": MARKETING,
    "Bouncex": MARKETING,
    "Casale Media": MARKETING,
    "Claritas": MARKETING,
    "CreativeCDN": MARKETING,  # RTB House
    "Criteo": MARKETING,
    "csync.loopme.me": MARKETING,
    "Datatrics": MARKETING,
    "Digital Audience": MARKETING,
    "Dotomi": MARKETING,
    "E-volution.ai": MARKETING,
    "Emetric": MARKETING,
    "Exponea": MARKETING,
    "Ezoic": MARKETING,  # ad monetisation platform; several ids are Functional in OCD
    "Fastclick": MARKETING,
    "Federated Media Publishing": MARKETING,
    "Fidelity-media.com": MARKETING,
    "FreeWheel": MARKETING,
    "Groovinads": MARKETING,
    "GumGum": MARKETING,
    "ID5": MARKETING,
    "Improve Digital": MARKETING,
    "justpremium.com": MARKETING,
    "Kelkoo": MARKETING,
    "LiveIntent": MARKETING,
    "LiveRamp": MARKETING,
    "Lotame": MARKETING,
    "Magnite": MARKETING,
    "Media.net": MARKETING,
    "MediaMath": MARKETING,
    "MediaVine": MARKETING,
    "Mediaplex": MARKETING,
    "Mediarithmics": MARKETING,
    "Nativo": MARKETING,
    "Neustar": MARKETING,
    "Nexx360": MARKETING,
    "Nielsen": MARKETING,  # eXelate DMP cookies
    "OnAudience": MARKETING,
    "openx.net": MARKETING,
    "Outbrain": MARKETING,
    "Ortec": MARKETING,
    "Pangle": MARKETING,
    "Partnerize": MARKETING,
    "Perfect Audience": MARKETING,
    "Permutive": MARKETING,  # audience DMP; its ids are Functional in OCD
    "Platform161": MARKETING,
    "PowerLinks": MARKETING,
    "Prebid": MARKETING,
    "PubMatic": MARKETING,
    "Pulsepoint": MARKETING,
    "Quantcast": MARKETING,
    "Rapleaf": MARKETING,
    "rekmob.com": MARKETING,
    "richAudience": MARKETING,
    "Roku": MARKETING,
    "Seedtag": MARKETING,
    "semasio.net": MARKETING,
    "ShareThis": MARKETING,  # share widget that sells audience data
    "Sharethrough": MARKETING,
    "Smaato": MARKETING,
    "Smartadserver": MARKETING,
    "Sonobi": MARKETING,
    "SOVRN": MARKETING,
    "SpotX": MARKETING,
    "Springserve": MARKETING,
    "Taboola": MARKETING,
    "Tailtarget": MARKETING,
    "Tapad": MARKETING,
    "Tappx": MARKETING,
    "Teads": MARKETING,
    "The Ozone Project": MARKETING,
    "The Tradedesk": MARKETING,
    "TripleLift": MARKETING,
    "Twiago": MARKETING,
    "Underdog Media": MARKETING,
    "Undertone": MARKETING,
    "Unrulymedia.com": MARKETING,
    "Verve": MARKETING,
    "Vidoomy": MARKETING,
    "Visx.net": MARKETING,
    "vmg.host": MARKETING,
    "Vuble": MARKETING,
    "Weborama": MARKETING,
    "Xandr": MARKETING,
    "Yahoo": MARKETING,
    "Yieldmo": MARKETING,
    "Zeotap": MARKETING,
    "adscale.de": MARKETING,
    # --- marketing automation / lead tracking -------------------------------------------------
    "Active Campaign": MARKETING,
    "Customer.io": MARKETING,
    "Klaviyo": MARKETING,
    "Leadfeeder": MARKETING,
    "Leadinfo": MARKETING,
    "Mailchimp": MARKETING,
    "Marketo": MARKETING,
    "RD Station": MARKETING,
    "Sailthru": MARKETING,
    "Sharpspring": MARKETING,
    "Sleeknote": MARKETING,
    "Squeezely": MARKETING,
}

# Consent-management platforms: their Functional rows store the visitor's consent decision (or
# the id under which it was recorded), which is strictly necessary to honour it. Their Analytics
# or Marketing rows keep OCD's category.
CONSENT_MANAGER_PLATFORMS = {
    "Axeptio",
    "Borlabs",
    "Complianz",
    "Consentmanager.net",
    "Cookie First",
    "Cookie Law Info",
    "Cookie Script",
    "Cookiebot",
    "CookieConsent.io",
    "CookieYes",
    "Didomi",
    "Digital Factory",  # cookie_notice_accepted
    "Enzuzo",
    "Hu-manity.co",
    "Iubenda",
    "Moove",  # GDPR Cookie Compliance plugin
    "OneTrust",
    "Osano",
    "PrivacyPillar",
    "QookieQloud",
    "Termly",
}
# Rows of those platforms that are not consent state.
CONSENT_MANAGER_EXCEPTIONS = {
    ("Cookiebot", "userlang"),  # the banner's language: a preference
    ("Cookiebot", "cb-currency"),  # cookiebot.com's price display currency
    ("CookieYes", "cookieyes_session"),  # cookieyes.com web-app sessions
    ("CookieYes", "cookieyes_privacy_policy_generator_session"),
    ("OneTrust", "utm_key"),  # campaign parameters on onetrust.com
    ("OneTrust", "__Secure-fgpt"),  # onetrust.com's own site
}

# ---------------------------------------------------------------------------------------------
# 4. Name clean-up
# ---------------------------------------------------------------------------------------------
# Names OCD truncated. The real names are curated below (ASP.NET_SessionId, JSESSIONID,
# ASPSESSIONID*); the truncated forms would never match anything.
TRUNCATED_NAMES = {
    ("Microsoft", "ASP.NET_Sessio"),
    ("Microsoft", "ASP.NET_Sessio_Fallback"),
    ("Oracle", "JSESSIO"),
    ("Azure / Microsoft", "ASPSESSIO"),
}

# Rows that are not cookies at all.
NOT_COOKIES = {
    ("Cookiebot", "1.gif"),  # the pixel Cookiebot requests to log a consent
}

# Pattern corrections, keyed by (OCD platform, OCD name): -> (kind, pattern), or None to drop.
PATTERN_OVERRIDES = {
    # Google Analytics: `_gat` is a cookie of its own (Universal Analytics throttle). OCD flags
    # it as a wildcard, which would make `_gat` a prefix; the `_gat_*` forms are curated below.
    ("Google Analytics", "_gat"): ("name", "_gat"),
    # Placeholders written into the name: NNN is a number.
    ("Google AdSense", "aboutads_sessNNN"): ("prefix", "aboutads_sess"),
    ("Google AdSense", "pm_sess_NNN"): ("prefix", "pm_sess_"),
    ("Magento", "pollN"): None,  # `poll` + id; the prefix `poll` would be far too broad
    # Supabase: the OCD prefix `sb-` would make every `sb-*` cookie necessary. Its cookies are
    # `sb-<project ref>-auth-token` (possibly chunked: `.0`, `.1`, or `-code-verifier`).
    ("Supabase", "sb-"): ("glob", "sb-*-auth-token*"),
    # Wildcard flags on names so short that a prefix would capture unrelated cookies (`_s`
    # would match `_session`, `_ut` would match `_utm_source`). Keep them as exact names, which
    # is how the vendors document them ...
    ("Marfeel", "_s"): ("name", "_s"),
    ("Marfeel", "_ut"): ("name", "_ut"),
    ("Marfeel", "_lv"): ("name", "_lv"),
    ("Groovinads", "NPA"): ("name", "NPA"),
    ("Microsoft", "MSO"): ("name", "MSO"),
    ("Salesforce", "_sid"): ("name", "_sid"),
    # ... or drop them where the exact name would be just as generic (see GENERIC_NAMES).
    ("Adform", "SR"): None,
    ("Adform", "CT"): None,
    ("Tailtarget", "tp"): None,
    ("SurveyMonkey", "P_"): None,
    ("Adhese", "cap"): None,
}
MIN_PREFIX_LEN = 3  # self_check: no emitted prefix may be shorter (guards future OCD rows)

# Exact names that are too generic to attribute to one vendor. OCD lists them because some ad
# server or SaaS sets them on its own domain, but on the proxied site a cookie called `token`,
# `lang` or `uid` is the site's own; claiming it for a tracker would misclassify it. Dropped
# names fall under the policy's `unknown_cookies` rule instead, which by default is stricter
# than any category.
SHORT_NAME_MAX = 2  # letters/digits only, 1-2 characters: `c`, `u`, `ab`, `ts`, `sp`, `hs`, ...
SHORT_NAME_KEEP = {"fr"}  # Facebook's ad cookie, required by the catalogue
GENERIC_NAMES = {
    # identifiers
    "AID", "ID", "PID", "SID", "SSID", "UID", "cid", "did", "gid", "mid", "oid", "pid",
    "ssid", "uid", "uuid",
    # plain words
    "Cart", "LANG", "Secret", "audience", "audit", "autocomplete", "callback", "cmp", "disco",
    "dnt", "europe", "gdpr", "gpp", "hash", "inst", "keep_alive", "lang", "locale", "login",
    "optout", "presence", "previous_step", "recs", "remember_me", "sess", "store", "sync",
    "test", "token", "trk", "version", "viewer", "visitor",
}

# RFC 6265 cookie-name token, the same rule as the Rust loader's `is_cookie_name`.
_SEPARATORS = set('()<>@,;:\\"/[]?={}')


def is_token(s: str) -> bool:
    return bool(s) and all(33 <= ord(c) < 127 and c not in _SEPARATORS for c in s)


def is_glob(s: str) -> bool:
    """A glob of token characters plus `*` and `?` (no classes, braces or escapes)."""
    if not s or ("*" not in s and "?" not in s):
        return False
    return is_token(s.replace("*", "x").replace("?", "x"))


# ---------------------------------------------------------------------------------------------
# 5. Curated rules. They win over anything derived from OCD (category and vendor). Each entry:
#    (kind, pattern, category, vendor).
# ---------------------------------------------------------------------------------------------
CURATED_RULES = [
    # --- framework session cookies: without them no login or cart works ------------------------
    ("name", "PHPSESSID", NECESSARY, "PHP.net"),
    ("name", "__Secure-PHPSESSID", NECESSARY, "PHP.net"),
    ("name", "JSESSIONID", NECESSARY, "J2EE"),
    ("prefix", "JSESSIONID", NECESSARY, "J2EE"),  # OCD's wildcard form (JSESSIONID.<node>)
    ("name", "ASP.NET_SessionId", NECESSARY, "ASP.net"),
    ("prefix", "ASPSESSIONID", NECESSARY, "ASP.net"),  # classic ASP: ASPSESSIONIDxxxxxxxx
    ("name", ".ASPXAUTH", NECESSARY, "ASP.net"),  # forms authentication
    ("name", ".AspNetCore.Session", NECESSARY, "ASP.NET Core"),
    ("name", "connect.sid", NECESSARY, "Express"),  # OCD lists it under Zendesk
    ("name", "laravel_session", NECESSARY, "Laravel"),
    ("name", "sessionid", NECESSARY, "Django"),  # OCD: Instagram, Marketing
    ("name", "CFID", NECESSARY, "Adobe ColdFusion"),
    ("name", "CFTOKEN", NECESSARY, "Adobe ColdFusion"),
    ("name", "cfid", NECESSARY, "Adobe ColdFusion"),  # OCD's lower-case spelling
    ("name", "cftoken", NECESSARY, "Adobe ColdFusion"),
    ("name", "rack.session", NECESSARY, "Rack"),
    ("name", "_session_id", NECESSARY, "Ruby on Rails"),
    ("name", "ci_session", NECESSARY, "CodeIgniter"),
    ("name", "CAKEPHP", NECESSARY, "CakePHP"),
    ("name", "CGISESSID", NECESSARY, "Perl"),
    ("name", "fe_typo_user", NECESSARY, "TYPO3"),
    ("name", "be_typo_user", NECESSARY, "TYPO3"),
    ("name", "CraftSessionId", NECESSARY, "CraftCMS"),
    ("name", "PLESKSESSID", NECESSARY, "Plesk"),
    ("name", "xf_session", NECESSARY, "Xenforo"),
    ("name", "bbsessionhash", NECESSARY, "vBulletin"),
    ("name", "KEYCLOAK_SESSION", NECESSARY, "Keycloak"),
    ("name", "KEYCLOAK_IDENTITY", NECESSARY, "Keycloak"),
    ("name", "AUTH_SESSION_ID", NECESSARY, "Keycloak"),
    ("name", "AUTH_SESSION_ID_LEGACY", NECESSARY, "Keycloak"),
    ("prefix", "__Secure-next-auth.", NECESSARY, "NextAuth.js"),  # session token over HTTPS
    ("name", "__Host-next-auth.csrf-token", NECESSARY, "NextAuth.js"),
    ("name", "__Secure-next-auth.callback-url", NECESSARY, "NextAuth.js"),
    # WordPress: login and the password-protected-post session are necessary; admin UI
    # settings are preferences.
    ("prefix", "wordpress_logged_in_", NECESSARY, "WordPress"),
    ("prefix", "wordpress_sec_", NECESSARY, "WordPress"),
    ("name", "wordpress_test_cookie", NECESSARY, "WordPress"),
    ("prefix", "wp-postpass_", NECESSARY, "WordPress"),
    ("prefix", "wp-settings-", PREFERENCES, "WordPress"),
    ("prefix", "wp-settings-time-", PREFERENCES, "WordPress"),
    # Shops that run on the proxied origin: session, cart and cache-variation cookies.
    ("name", "frontend", NECESSARY, "Magento"),  # the Magento session id
    ("name", "form_key", NECESSARY, "Magento"),  # CSRF
    ("name", "X-Magento-Vary", NECESSARY, "Magento"),
    ("name", "private_content_version", NECESSARY, "Magento"),
    ("prefix", "wp_woocommerce_session_", NECESSARY, "WooCommerce"),
    ("name", "woocommerce_cart_hash", NECESSARY, "WooCommerce"),
    ("name", "woocommerce_items_in_cart", NECESSARY, "WooCommerce"),
    # --- CSRF / anti-forgery tokens ----------------------------------------------------------
    ("prefix", ".AspNetCore.Antiforgery.", NECESSARY, "ASP.NET Core"),
    ("name", "__RequestVerificationToken", NECESSARY, "ASP.net"),
    ("prefix", "__RequestVerificationToken", NECESSARY, "ASP.net"),  # ..._<app path> variants
    ("name", "__AntiXsrfToken", NECESSARY, "ASP.net"),
    ("name", "XSRF-TOKEN", NECESSARY, "Angular / Laravel"),
    ("name", "csrftoken", NECESSARY, "Django"),
    ("name", "_csrf", NECESSARY, "Express"),  # csurf; OCD lists it under Stonly
    ("name", "CRAFT_CSRF_TOKEN", NECESSARY, "CraftCMS"),
    ("name", "xf_csrf", NECESSARY, "Xenforo"),
    # --- infrastructure: load-balancer affinity, bot and DDoS protection, payment fraud ---------
    ("name", "__cf_bm", NECESSARY, "Cloudflare"),  # Bot Management
    ("name", "cf_clearance", NECESSARY, "Cloudflare"),  # solved challenge
    ("name", "cf_chl_2", NECESSARY, "Cloudflare"),
    ("name", "cf_chl_rc_i", NECESSARY, "Cloudflare"),
    ("name", "cf_chl_rc_ni", NECESSARY, "Cloudflare"),
    ("name", "cf_chl_rc_m", NECESSARY, "Cloudflare"),
    ("name", "__cflb", NECESSARY, "Cloudflare"),  # load-balancer affinity
    ("name", "__cfruid", NECESSARY, "Cloudflare"),  # rate limiting
    ("name", "_cfuvid", NECESSARY, "Cloudflare"),  # rate limiting
    ("name", "__cfseq", NECESSARY, "Cloudflare"),  # WAF sequence rules
    ("name", "__cfwaitingroom", NECESSARY, "Cloudflare"),
    ("name", "AWSALB", NECESSARY, "Amazon Web Services"),
    ("name", "AWSALBCORS", NECESSARY, "Amazon Web Services"),
    ("name", "AWSALBTG", NECESSARY, "Amazon Web Services"),
    ("name", "AWSALBTGCORS", NECESSARY, "Amazon Web Services"),
    ("name", "AWSELB", NECESSARY, "Amazon Web Services"),
    ("name", "AWSELBCORS", NECESSARY, "Amazon Web Services"),
    ("name", "ARRAffinity", NECESSARY, "Azure / Microsoft"),
    ("name", "ARRAffinitySameSite", NECESSARY, "Azure / Microsoft"),
    ("name", "ASLBSA", NECESSARY, "Azure / Microsoft"),
    ("name", "ASLBSACORS", NECESSARY, "Azure / Microsoft"),
    ("name", "ApplicationGatewayAffinity", NECESSARY, "Azure / Microsoft"),
    ("name", "ApplicationGatewayAffinityCORS", NECESSARY, "Azure / Microsoft"),
    ("name", "GCLB", NECESSARY, "Google Cloud Load Balancing"),
    ("prefix", "BIGipServer", NECESSARY, "F5 BIG-IP"),
    ("prefix", "TS01", NECESSARY, "F5 BIG-IP"),  # ASM (WAF) cookies
    ("prefix", "NSC_", NECESSARY, "Citrix"),  # NetScaler / ADC
    ("name", "SERVERID", NECESSARY, "HAproxy"),
    ("name", "INGRESSCOOKIE", NECESSARY, "NGINX Ingress"),
    ("name", "AlteonP", NECESSARY, "Alteon"),
    ("name", "_abck", NECESSARY, "Akamai Botmanager"),
    ("name", "bm_sv", NECESSARY, "Akamai"),
    ("name", "ak_bmsc", NECESSARY, "Akamai"),
    ("prefix", "incap_ses_", NECESSARY, "Imperva"),
    ("prefix", "nlbi_", NECESSARY, "Imperva"),
    ("prefix", "visid_incap_", NECESSARY, "Imperva"),
    ("name", "datadome", NECESSARY, "Datadome"),  # OCD spells it `Datadome`; the cookie is lower case
    ("name", "Datadome", NECESSARY, "Datadome"),
    ("name", "_GRECAPTCHA", NECESSARY, "Google reCAPTCHA"),
    ("name", "__stripe_mid", NECESSARY, "Stripe"),  # payment fraud prevention
    ("name", "__stripe_sid", NECESSARY, "Stripe"),
    # --- consent-manager state (besides CONSENT_MANAGER_PLATFORMS) ------------------------------
    ("name", "cookie_consent", NECESSARY, "consent-proxy"),  # this proxy's own default
    ("name", "CookieConsent", NECESSARY, "Cookiebot"),
    ("name", "OptanonConsent", NECESSARY, "OneTrust"),
    ("name", "OptanonAlertBoxClosed", NECESSARY, "OneTrust"),
    ("name", "euconsent-v2", NECESSARY, "IAB TCF"),  # TCF v2 consent string
    ("name", "eupubconsent-v2", NECESSARY, "OneTrust"),  # OneTrust's copy of the TC string
    ("name", "OTAdditionalConsentString", NECESSARY, "OneTrust"),
    ("name", "addtl_consent", NECESSARY, "Google Additional Consent"),  # AC string beside TCF
    ("name", "euconsent", NECESSARY, "IAB TCF"),  # TCF v1; OCD: LiveRamp, Marketing
    ("name", "usprivacy", NECESSARY, "IAB CCPA"),  # US privacy string
    ("name", "cookieyes-consent", NECESSARY, "CookieYes"),
    ("name", "cc_cookie", NECESSARY, "CookieConsent (orestbida)"),
    ("name", "klaro", NECESSARY, "Klaro"),
    ("prefix", "cmplz_", NECESSARY, "Complianz"),
    ("name", "borlabs-cookie", NECESSARY, "Borlabs"),
    ("name", "TC_PRIVACY", NECESSARY, "Command Act"),
    ("name", "TC_PRIVACY_CENTER", NECESSARY, "Command Act"),
    ("name", "CMSCookieLevel", NECESSARY, "Kentico"),
    ("name", "xf_consent", NECESSARY, "Xenforo"),
    ("name", "COOKIELAW", NECESSARY, "Lightspeed"),
    ("name", "COOKIELAW_ADS", NECESSARY, "Lightspeed"),
    ("name", "COOKIELAW_SOCIAL", NECESSARY, "Lightspeed"),
    ("name", "COOKIELAW_STATS", NECESSARY, "Lightspeed"),
    # --- trackers inside platforms that are not trackers as a whole ---------------------------
    # Commanders Act (tag manager + CMP): these keep a copy of its visitor id (CAID) to
    # restore it after Safari's ITP has expired the cookie. OCD: Functional.
    ("name", "tc_caids", MARKETING, "Command Act"),
    ("name", "tc_cj_ss", MARKETING, "Command Act"),
    ("prefix", "tc_ss", MARKETING, "Command Act"),
    # Piano (paywall + analytics): its subscriber-login cookies stay preferences, but the
    # browser id used for reporting and the conversion/segmentation cookie are trackers.
    ("name", "_pcid", ANALYTICS, "Piano"),
    ("name", "__bid", ANALYTICS, "Piano"),
    ("name", "__tbc", MARKETING, "Piano"),
    # --- Google Analytics forms OCD lacks -----------------------------------------------------
    ("prefix", "_gat_", ANALYTICS, "Google Analytics"),  # `_gat_<tracker name>`
    ("glob", "_gat_UA-*", ANALYTICS, "Google Analytics"),  # `_gat_UA-<property>-<n>`
]

# ---------------------------------------------------------------------------------------------
# 6. Invariants checked by self_check() before anything is written.
# ---------------------------------------------------------------------------------------------
REQUIRED_NECESSARY = [
    ("name", "PHPSESSID"), ("name", "JSESSIONID"), ("name", "ASP.NET_SessionId"),
    ("prefix", "ASPSESSIONID"), ("name", ".AspNetCore.Session"),
    ("prefix", ".AspNetCore.Antiforgery."), ("name", "__RequestVerificationToken"),
    ("name", "connect.sid"), ("name", "laravel_session"), ("name", "XSRF-TOKEN"),
    ("name", "csrftoken"), ("name", "sessionid"), ("name", "_csrf"),
    ("name", "CFID"), ("name", "CFTOKEN"), ("name", "rack.session"), ("name", "_session_id"),
    ("prefix", "wordpress_logged_in_"), ("prefix", "wordpress_sec_"), ("name", "__cf_bm"),
    ("name", "cf_clearance"), ("name", "AWSALB"), ("name", "AWSALBCORS"),
    # consent managers
    ("name", "CookieConsent"), ("name", "OptanonConsent"), ("name", "OptanonAlertBoxClosed"),
    ("name", "euconsent-v2"), ("name", "cookieyes-consent"), ("name", "cc_cookie"),
    ("name", "klaro"), ("prefix", "cmplz_"), ("name", "borlabs-cookie"),
    ("name", "cookie_consent"), ("name", "eupubconsent-v2"), ("name", "addtl_consent"),
    ("name", "OTAdditionalConsentString"),
]
REQUIRED_PREFERENCES_OR_NECESSARY = [("prefix", "wp-settings-")]

_A, _M, _AM = {ANALYTICS}, {MARKETING}, {ANALYTICS, MARKETING}
REQUIRED_TRACKERS = [
    ("name", "_ga", _A), ("prefix", "_ga_", _A), ("name", "_gid", _A), ("name", "_gat", _A),
    ("glob", "_gat_UA-*", _A), ("prefix", "_gat_gtag_", _A), ("name", "_gcl_au", _M),
    ("name", "_fbp", _M), ("name", "_fbc", _M), ("name", "fr", _M),
    ("prefix", "_hjSessionUser_", _A), ("prefix", "_hjSession_", _A), ("name", "_clck", _A),
    ("name", "_clsk", _A), ("name", "IDE", _M), ("name", "test_cookie", _M),
    ("name", "_uetsid", _M), ("name", "_uetvid", _M), ("name", "_ttp", _M),
    ("name", "li_fat_id", _M), ("prefix", "_pk_id.", _A), ("prefix", "_pk_ses.", _A),
    ("name", "hubspotutk", _AM), ("name", "__hstc", _AM), ("name", "__hssc", _AM),
    ("name", "__hssrc", _AM), ("name", "_ym_uid", _A), ("prefix", "mp_", _A),
    ("name", "ajs_anonymous_id", _A), ("name", "ajs_user_id", _A),
]

# Concrete cookie names and the category the compiled policy must give them, evaluated with the
# Rust matcher's precedence (exact name, then longest prefix, then first matching glob).
SAMPLE_VERDICTS = [
    ("_ga", ANALYTICS), ("_ga_ABCDEF1234", ANALYTICS), ("_gat", ANALYTICS),
    ("_gat_UA-12345-1", ANALYTICS), ("_gat_gtag_UA_12345_1", ANALYTICS),
    ("_hjSession_123456", ANALYTICS), ("_hjSessionUser_123456", ANALYTICS),
    ("_pk_id.1.1fff", ANALYTICS), ("_pk_ses.1.1fff", ANALYTICS),
    ("mp_0123abcd_mixpanel", ANALYTICS), ("_clck", ANALYTICS), ("_fbp", MARKETING),
    ("IDE", MARKETING), ("test_cookie", MARKETING), ("li_fat_id", MARKETING),
    ("PHPSESSID", NECESSARY), ("JSESSIONID", NECESSARY), ("ASPSESSIONIDQQGDDCRB", NECESSARY),
    (".AspNetCore.Antiforgery.Xyz123", NECESSARY), ("__RequestVerificationToken", NECESSARY),
    ("wordpress_logged_in_0123abcd", NECESSARY), ("wordpress_sec_0123abcd", NECESSARY),
    ("wp-settings-1", PREFERENCES), ("cmplz_marketing", NECESSARY),
    ("sb-abcdefgh-auth-token", NECESSARY), ("sb-abcdefgh-auth-token.0", NECESSARY),
    ("sessionid", NECESSARY), ("euconsent-v2", NECESSARY), ("__cf_bm", NECESSARY),
    # Framework cookies (scripts/data/framework-cookies.csv), and trackers their globs must
    # not capture: an exact name beats a glob.
    ("session", NECESSARY), ("remember_token", NECESSARY), ("messages", NECESSARY),
    ("csrftoken", NECESSARY), ("_myshop_session", NECESSARY), ("PLAY_SESSION", NECESSARY),
    ("laravel_session", NECESSARY), ("connect.sid", NECESSARY), ("cart", NECESSARY),
    ("SESS0123456789abcdef0123456789abcdef", NECESSARY),
    ("_parsely_session", ANALYTICS), ("ai_session", ANALYTICS), ("sbjs_session", ANALYTICS),
    ("rl_session", ANALYTICS),
]

# ---------------------------------------------------------------------------------------------
# 7. Tracking endpoints. Only paths a site serves on its own origin when it proxies a tracker
#    first-party (server-side Tag Manager, a reverse-proxied Meta pixel, self-hosted Matomo);
#    third-party hosts never reach this proxy. Kept short: a false positive breaks a site.
# ---------------------------------------------------------------------------------------------
ENDPOINTS = [
    # Google Analytics hits through a first-party / server-side Tag Manager endpoint:
    # Universal Analytics (/collect, /j/collect, /r/collect), GA4 (/g/collect) and the
    # Measurement Protocol (/mp/collect).
    ("path", "/collect", ANALYTICS),
    ("path", "/g/collect", ANALYTICS),
    ("path", "/j/collect", ANALYTICS),
    ("path", "/r/collect", ANALYTICS),
    ("path", "/mp/collect", ANALYTICS),
    # Meta (Facebook) pixel events when the pixel is proxied first-party. Only the bare path:
    # a prefix `/tr/` would swallow a Turkish locale (`/tr/...`). A site whose own page is `/tr`
    # exempts it with `{ path: /tr, category: necessary }` in its policy.
    ("path", "/tr", MARKETING),
    # Self-hosted Matomo / Piwik tracker and Piwik PRO.
    ("path", "/matomo.php", ANALYTICS),
    ("path", "/piwik.php", ANALYTICS),
    ("path", "/ppms.php", ANALYTICS),
    # Google Ads conversion tracking through server-side Tag Manager.
    ("path", "/pagead/conversion_async.js", MARKETING),
    ("prefix", "/pagead/conversion/", MARKETING),
    ("prefix", "/pagead/1p-conversion/", MARKETING),
    ("prefix", "/pagead/viewthroughconversion/", MARKETING),
]

# ---------------------------------------------------------------------------------------------
# 8. Tags that the HTML rewriter holds back when their category is denied: scripts/trackers.py
#    derives them from third-party-web and its own curated rules.
# ---------------------------------------------------------------------------------------------

# ---------------------------------------------------------------------------------------------
# Pipeline
# ---------------------------------------------------------------------------------------------


@dataclass
class Rule:
    kind: str  # name | prefix | glob
    pattern: str
    category: str
    vendor: str | None
    origin: str  # "ocd" or "curated", for the report only


@dataclass
class Stats:
    rows: int = 0
    dropped_invalid: int = 0
    dropped_truncated: int = 0  # truncated names and non-cookies
    dropped_generic: int = 0
    dropped_override: int = 0
    raised_by_vendor: int = 0
    promoted_consent: int = 0
    merged_duplicates: int = 0
    curated_new: int = 0
    curated_changed: int = 0


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        expected = [
            "ID", "Platform", "Category", "Cookie / Data Key name", "Domain", "Description",
            "Retention period", "Data Controller", "User Privacy & GDPR Rights Portals",
            "Wildcard match",
        ]
        if reader.fieldnames != expected:
            raise SystemExit(f"{path}: unexpected columns {reader.fieldnames}")
        return list(reader)


def to_pattern(name: str, wildcard: bool) -> tuple[str, str]:
    """OCD name + wildcard flag -> (kind, pattern). A `*` inside the name means a glob; a single
    trailing `*` (OCD writes `SCM*` without setting the flag) is a plain prefix."""
    if "*" in name:
        head = name[:-1] if name.endswith("*") else name
        if "*" not in head:
            return ("prefix", head)
        return ("glob", name if name.endswith("*") or not wildcard else name + "*")
    return ("prefix", name) if wildcard else ("name", name)


def pattern_is_valid(kind: str, pattern: str) -> bool:
    return is_glob(pattern) if kind == "glob" else is_token(pattern)


def derive(rows: list[dict[str, str]]) -> tuple[list[Rule], Stats]:
    stats = Stats(rows=len(rows))
    unknown_categories = sorted({r["Category"] for r in rows} - set(CATEGORY_MAP))
    if unknown_categories:
        raise SystemExit(f"OCD categories without a mapping: {unknown_categories}")

    candidates: dict[tuple[str, str], list[Rule]] = {}
    for r in rows:
        platform = r["Platform"]
        # Surrounding whitespace is a data-entry slip (`ce_need_secure_cookie<TAB>`); inner
        # whitespace makes the name invalid below.
        name = r["Cookie / Data Key name"].strip()
        if (platform, name) in TRUNCATED_NAMES or (platform, name) in NOT_COOKIES:
            stats.dropped_truncated += 1
            continue
        vendor = VENDOR_BY_ROW.get((platform, name), VENDOR_ALIASES.get(platform, platform))

        if (platform, name) in PATTERN_OVERRIDES:
            override = PATTERN_OVERRIDES[(platform, name)]
            if override is None:
                stats.dropped_override += 1
                continue
            kind, pattern = override
        else:
            kind, pattern = to_pattern(name, r["Wildcard match"].strip() == "1")

        if not pattern_is_valid(kind, pattern):
            stats.dropped_invalid += 1
            continue
        if kind == "name" and (
            (len(pattern) <= SHORT_NAME_MAX and pattern.isalnum()
             and pattern not in SHORT_NAME_KEEP)
            or pattern in GENERIC_NAMES
        ):
            stats.dropped_generic += 1
            continue

        category = CATEGORY_MAP[r["Category"]]
        if (
            platform in CONSENT_MANAGER_PLATFORMS
            and (platform, name) not in CONSENT_MANAGER_EXCEPTIONS
            and category == PREFERENCES
        ):
            category = NECESSARY
            stats.promoted_consent += 1
        floor = TRACKER_VENDORS.get(vendor) if vendor else None
        if floor and RANK[category] < RANK[floor]:
            category = floor
            stats.raised_by_vendor += 1
        candidates.setdefault((kind, pattern), []).append(
            Rule(kind, pattern, category, vendor, "ocd")
        )

    # One rule per (kind, pattern): the most restrictive category; among the rows giving it, the
    # alphabetically first vendor (deterministic).
    rules: dict[tuple[str, str], Rule] = {}
    for key, group in candidates.items():
        stats.merged_duplicates += len(group) - 1
        top = max(RANK[g.category] for g in group)
        best = sorted(
            (g for g in group if RANK[g.category] == top), key=lambda g: (g.vendor or "")
        )[0]
        rules[key] = best

    # Curated rules win.
    seen_curated: set[tuple[str, str]] = set()
    for kind, pattern, category, vendor in CURATED_RULES:
        key = (kind, pattern)
        if key in seen_curated:
            raise SystemExit(f"CURATED_RULES lists {kind} {pattern!r} twice")
        seen_curated.add(key)
        if not pattern_is_valid(kind, pattern):
            raise SystemExit(f"CURATED_RULES: invalid {kind} {pattern!r}")
        old = rules.get(key)
        if old is None:
            stats.curated_new += 1
        elif (old.category, old.vendor) != (category, vendor):
            stats.curated_changed += 1
        rules[key] = Rule(kind, pattern, category, vendor, "curated")

    # Framework cookies (scripts/data/framework-cookies.csv) win too; one that CURATED_RULES
    # also lists must agree with it on the category.
    for kind, pattern, category, vendor in read_framework_cookies():
        key = (kind, pattern)
        if not pattern_is_valid(kind, pattern):
            raise SystemExit(f"{FRAMEWORK_COOKIES.name}: invalid {kind} {pattern!r}")
        if key in seen_curated:
            if rules[key].category != category:
                raise SystemExit(f"{FRAMEWORK_COOKIES.name}: {kind} {pattern!r} is {category}, "
                                 f"CURATED_RULES says {rules[key].category}")
            continue
        seen_curated.add(key)
        old = rules.get(key)
        if old is None:
            stats.curated_new += 1
        elif (old.category, old.vendor) != (category, vendor):
            stats.curated_changed += 1
        rules[key] = Rule(kind, pattern, category, vendor, "framework")

    return sort_rules(rules.values()), stats


def read_framework_cookies() -> list[tuple[str, str, str, str]]:
    """The session, CSRF, flash and cart cookies of web frameworks and applications, each with
    the documentation or source it was taken from (scripts/data/framework-cookies.md explains
    the judgement calls)."""
    with FRAMEWORK_COOKIES.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames != ["kind", "pattern", "category", "vendor", "source"]:
            raise SystemExit(f"{FRAMEWORK_COOKIES}: unexpected columns {reader.fieldnames}")
        out, seen = [], set()
        for row in reader:
            key = (row["kind"], row["pattern"])
            if row["kind"] not in KINDS or row["category"] not in (NECESSARY, PREFERENCES):
                raise SystemExit(f"{FRAMEWORK_COOKIES.name}: bad row {row}")
            if key in seen:
                raise SystemExit(f"{FRAMEWORK_COOKIES.name}: {key} listed twice")
            if not row["source"].startswith("https://"):
                raise SystemExit(f"{FRAMEWORK_COOKIES.name}: {key} has no source")
            seen.add(key)
            out.append((row["kind"], row["pattern"], row["category"], row["vendor"]))
        return out


def sort_rules(rules) -> list[Rule]:
    return sorted(rules, key=lambda r: (RANK[r.category], r.pattern, KINDS.index(r.kind)))


# ---------------------------------------------------------------------------------------------
# Self-check
# ---------------------------------------------------------------------------------------------


def glob_match(glob: str, s: str) -> bool:
    """`*` = any run of characters, `?` = one character, everything else literal."""
    gi = si = 0
    star_gi, star_si = -1, 0
    while si < len(s):
        if gi < len(glob) and (glob[gi] == "?" or glob[gi] == s[si]):
            gi += 1
            si += 1
        elif gi < len(glob) and glob[gi] == "*":
            star_gi, star_si = gi, si
            gi += 1
        elif star_gi >= 0:
            gi = star_gi + 1
            star_si += 1
            si = star_si
        else:
            return False
    while gi < len(glob) and glob[gi] == "*":
        gi += 1
    return gi == len(glob)


def classify(rules: list[Rule], name: str) -> Rule | None:
    """The Rust matcher's precedence: exact, then the longest prefix, then the first glob in
    file order."""
    for r in rules:
        if r.kind == "name" and r.pattern == name:
            return r
    prefixes = [r for r in rules if r.kind == "prefix" and name.startswith(r.pattern)]
    if prefixes:
        return max(prefixes, key=lambda r: len(r.pattern))
    for r in rules:
        if r.kind == "glob" and glob_match(r.pattern, name):
            return r
    return None


def self_check(rules: list[Rule]) -> None:
    errors: list[str] = []
    by_key: dict[tuple[str, str], Rule] = {}
    for r in rules:
        key = (r.kind, r.pattern)
        if key in by_key:
            errors.append(f"duplicate rule {r.kind} {r.pattern!r}")
        by_key[key] = r
        if r.kind not in KINDS:
            errors.append(f"bad kind {r.kind!r}")
        if r.category not in RANK:
            errors.append(f"bad category {r.category!r} for {r.pattern!r}")
        if not pattern_is_valid(r.kind, r.pattern):
            errors.append(f"invalid {r.kind} {r.pattern!r}")
        if r.kind == "prefix" and len(r.pattern) < MIN_PREFIX_LEN:
            errors.append(f"prefix {r.pattern!r} is too broad (< {MIN_PREFIX_LEN} chars)")
        if r.vendor in TRACKER_VENDORS and r.category in (NECESSARY, PREFERENCES):
            errors.append(f"tracker vendor {r.vendor!r} has {r.category} rule {r.pattern!r}")

    for key in REQUIRED_NECESSARY:
        r = by_key.get(key)
        if r is None or r.category != NECESSARY:
            errors.append(f"{key} must be necessary, is {r and r.category}")
    for key in REQUIRED_PREFERENCES_OR_NECESSARY:
        r = by_key.get(key)
        if r is None or r.category not in (NECESSARY, PREFERENCES):
            errors.append(f"{key} must be preferences or necessary, is {r and r.category}")
    for kind, pattern, allowed in REQUIRED_TRACKERS:
        r = by_key.get((kind, pattern))
        if r is None or r.category not in allowed:
            errors.append(f"{(kind, pattern)} must be {sorted(allowed)}, is {r and r.category}")
    for name, expected in SAMPLE_VERDICTS:
        r = classify(rules, name)
        got = r.category if r else None
        if got != expected:
            errors.append(f"cookie {name!r} classifies as {got} (via {r and r.pattern!r}), "
                          f"expected {expected}")

    for kind, pattern, category in ENDPOINTS:
        if category == NECESSARY or not pattern.startswith("/"):
            errors.append(f"bad endpoint {kind} {pattern!r}")
    if len({(k, p) for k, p, _ in ENDPOINTS}) != len(ENDPOINTS):
        errors.append("duplicate endpoint")

    if errors:
        raise SystemExit("self-check failed:\n  " + "\n  ".join(errors))


# ---------------------------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------------------------

HEADER = """\
# consent-proxy built-in policy: a catalogue of well-known cookies and first-party tracking
# endpoints, with the defaults the proxy uses when no site policy overrides them.
#
# GENERATED FILE - DO NOT EDIT. Produced by scripts/derive-default-policy.py from the Open
# Cookie Database (https://github.com/jkwakman/Open-Cookie-Database), Apache License 2.0,
# (c) its authors, and third-party-web (https://github.com/patrickhulce/third-party-web), MIT,
# (c) Patrick Hulce; see third_party/*/LICENSE and NOTICE. Corrections go into the curation
# tables of scripts/derive-default-policy.py and scripts/trackers.py; regenerate with
# `python3 scripts/derive-default-policy.py` and verify with `--check`.
# docs/cookie-catalogue.md and docs/tag-catalogue.md explain the derivation.
"""

SETTINGS = """\
mode: enforce              # enforce | report-only
consent_cookie: cookie_consent
default: opt-in            # opt-in | opt-out
signals:
  dnt:
    enabled: true
    deny: [analytics, marketing]
  gpc:
    enabled: true
    deny: [marketing]
  precedence: signal       # signal | cookie
unknown_cookies: strip     # strip | allow | necessary | preferences | analytics | marketing
"""


def q(s: str) -> str:
    """JSON string literal: a valid YAML double-quoted scalar that cannot be misread."""
    return json.dumps(s, ensure_ascii=True)


def render(rules: list[Rule], tags: list[dict]) -> str:
    counts = {c: sum(1 for r in rules if r.category == c) for c in CATEGORIES}
    out = [HEADER, "\n", SETTINGS, "\n"]
    out.append("# Requests to these paths on the proxied site are answered locally when their\n")
    out.append("# category is not granted. Only trackers proxied first-party are listed.\n")
    out.append("endpoints:\n")
    for kind, pattern, category in ENDPOINTS:
        out.append(f"  - {{ {kind}: {q(pattern)}, category: {category} }}\n")
    out.append("\n")
    out.append("# Tags the HTML rewriter neutralizes when their category is denied. The first rule\n")
    out.append("# that matches a URL decides. Curated rules first, then the hosts of third-party-web\n")
    out.append("# (third_party/third-party-web, MIT); docs/tag-catalogue.md explains the derivation.\n")
    out.append("# `pages: true`: the domain also serves pages (share links, profiles), so a URL on it\n")
    out.append("# in an inline script counts only as something the script loads.\n")
    out.append("tag_action: neutralize      # neutralize | remove\n")
    out.append("tags:\n")
    for r in tags:
        fields = [f"host: {q(r['host'])}"]
        if r.get("path") is not None:
            fields.append(f"path: {q(r['path'])}")
        if r.get("query"):
            fields.append(f"query: {q(r['query'])}")
        fields += [f"category: {r['category']}", f"vendor: {q(r['vendor'])}"]
        if r.get("consent_mode"):
            fields.append("consent_mode: true")
        if r.get("pages"):
            fields.append("pages: true")
        out.append("  - { " + ", ".join(fields) + " }\n")
    out.append("inline_tags:\n")
    for signature, category, vendor in trackers.INLINE_TAGS:
        flag = ", consent_mode: true" if signature in trackers.CONSENT_MODE_SIGNATURES else ""
        out.append(f"  - {{ signature: {q(signature)}, category: {category}, vendor: {q(vendor)}{flag} }}\n")
    out.append("\n")
    summary = ", ".join(f"{c} {counts[c]}" for c in CATEGORIES)
    out.append(f"# {len(rules)} cookie rules: {summary}.\n")
    out.append("# Sorted by category, then pattern. Precedence when several match: exact name,\n")
    out.append("# then the longest prefix, then the first matching glob.\n")
    out.append("cookies:\n")
    current = None
    for r in rules:
        if r.category != current:
            current = r.category
            out.append(f"  # --- {current} ({counts[current]}) ---\n")
        fields = [f"{r.kind}: {q(r.pattern)}", f"category: {r.category}"]
        if r.vendor:
            fields.append(f"vendor: {q(r.vendor)}")
        out.append("  - { " + ", ".join(fields) + " }\n")
    return "".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true",
                    help="regenerate in memory; exit 1 if the output file differs")
    ap.add_argument("--input", type=Path, default=DEFAULT_INPUT)
    ap.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    ap.add_argument("--stats", action="store_true", help="print derivation statistics")
    args = ap.parse_args(argv)

    rules, stats = derive(read_rows(args.input))
    self_check(rules)
    tags, tag_stats = trackers.tag_rules()
    text = render(rules, tags)

    if args.stats:
        for field, value in vars(stats).items():
            print(f"{field}: {value}", file=sys.stderr)
        for c in CATEGORIES:
            print(f"{c}: {sum(1 for r in rules if r.category == c)}", file=sys.stderr)
        for field, value in tag_stats.items():
            print(f"tags {field}: {value}", file=sys.stderr)

    if args.check:
        try:
            current = args.output.read_text(encoding="utf-8")
        except FileNotFoundError:
            print(f"{args.output}: missing; run scripts/derive-default-policy.py", file=sys.stderr)
            return 1
        if current != text:
            diff = list(difflib.unified_diff(
                current.splitlines(), text.splitlines(),
                fromfile=f"{args.output} (committed)", tofile="regenerated", lineterm="", n=0,
            ))
            changed = sum(1 for d in diff if d[:1] in "+-" and d[:3] not in ("+++", "---"))
            print(f"{args.output} is out of date ({changed} changed lines); "
                  "run: python3 scripts/derive-default-policy.py", file=sys.stderr)
            for line in diff[:20]:
                print(line, file=sys.stderr)
            if len(diff) > 20:
                print(f"... ({len(diff) - 20} more diff lines)", file=sys.stderr)
            return 1
        print(f"{args.output} is up to date ({len(rules)} cookie rules, {len(tags)} tag rules)")
        return 0

    args.output.parent.mkdir(parents=True, exist_ok=True)
    with args.output.open("w", encoding="utf-8", newline="\n") as f:
        f.write(text)
    print(f"wrote {args.output} ({len(rules)} cookie rules, {len(ENDPOINTS)} endpoints, "
          f"{len(tags)} tag rules)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
