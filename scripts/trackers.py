"""The tag catalogue of the built-in policy: which URLs the HTML rewriter holds back.

Imported by derive-default-policy.py, which renders its rules into policies/default.yaml.

Input:  third_party/third-party-web/entities.json (MIT, see the LICENSE beside it and NOTICE),
        the third-party entities of the web with their category and domains.
Output: `tags:` (URL rules) and `inline_tags:` (inline script signatures).

The rules, in the order the rewriter tries them (the first that matches a URL decides):

  1. CURATED_TAGS: hand-written rules that say more than a host does: a path (Meta's `/tr`
     pixel on facebook.com, Google Maps embeds on google.com), a query (the Google tag loading
     Google Ads for an `AW-` id), Consent Mode, or a host that serves first-party paths on
     any domain (self-hosted Matomo);
  2. exceptions: hosts of never-held entities (consent managers, CDNs, payment, ...) that lie
     under a held domain, with category `necessary`, so they stay untouched;
  3. one rule per domain of every held entity of third-party-web, longest domain first.

docs/tag-catalogue.md explains the category mapping and every judgement call below.
"""

from __future__ import annotations

import fnmatch
import json
from pathlib import Path
from urllib.parse import urlsplit

NECESSARY, PREFERENCES, ANALYTICS, MARKETING = "necessary", "preferences", "analytics", "marketing"
RANK = {NECESSARY: 0, PREFERENCES: 1, ANALYTICS: 2, MARKETING: 3}

REPO_ROOT = Path(__file__).resolve().parent.parent
ENTITIES = REPO_ROOT / "third_party" / "third-party-web" / "entities.json"

# ---------------------------------------------------------------------------------------------
# 1. Categories. third-party-web's category of an entity, mapped to consent-proxy's. None: never
#    held back (consent managers, CDNs and fonts, hosting, payment and security utilities,
#    content publishers).
# ---------------------------------------------------------------------------------------------
CATEGORY_MAP = {
    "ad": MARKETING,
    "marketing": MARKETING,
    # Social plugins and share buttons identify the visitor to the network on every page.
    "social": MARKETING,
    # Embedded players (YouTube, Vimeo, Wistia, ...) set their vendors' advertising cookies.
    "video": MARKETING,
    "analytics": ANALYTICS,
    # A tag manager loads whatever tags its container holds.
    "tag-manager": ANALYTICS,
    # Chat and help widgets: a functional service the visitor may want, but one that identifies
    # the visitor to a third party. Held back until `preferences` is granted.
    "customer-success": PREFERENCES,
    "consent-provider": None,
    "cdn": None,
    "hosting": None,
    "utility": None,
    "content": None,
    "other": None,
}

# Entities whose third-party-web category does not say what they do on a page.
ENTITY_CATEGORY = {
    # Microsoft Clarity is session recording, filed under "utility".
    "Clarity": ANALYTICS,
    # Content recommendation widgets are ad networks ("content" in third-party-web).
    "Revcontent": MARKETING,
    "ZergNet": MARKETING,
    # A video player like YouTube's.
    "Dailymotion": MARKETING,
    # TV ad measurement.
    "Samba TV": MARKETING,
    # Ad pixels filed under "analytics": the Snap Pixel, and Quantcast's tag, which feeds its
    # ad audiences.
    "Snapchat": MARKETING,
    "Quantcast": MARKETING,
}

# Shared hosting and CDN domains: many unrelated sites serve from their subdomains. Only a full
# host listed under an entity is taken (`d31j93rd8oukbv.cloudfront.net` is Yandex Metrica's),
# never the whole domain.
SHARED_DOMAINS = {
    "akamaihd.net", "akamaized.net", "edgekey.net", "edgesuite.net", "azureedge.net",
    "azurewebsites.net", "windows.net", "blob.core.windows.net", "msecnd.net", "llnwd.net",
    "fastly.net", "b-cdn.net", "cdn77.org", "cloudfront.net", "amazonaws.com", "herokuapp.com",
    "github.io", "googleapis.com", "appspot.com", "googleusercontent.com", "hwcdn.net",
    "kxcdn.com", "footprint.net", "netlify.app", "vercel.app", "firebaseapp.com", "wpengine.com",
    "wordpress.com", "wp.com", "shopify.com", "myshopify.com", "squarespace.com", "wixstatic.com",
}

# Domains of held entities that are not held back, with why.
DROPPED_DOMAINS = {
    # Bing Ads lists all of Microsoft's and MSN's domains; its tag is bat.bing.com (curated).
    "microsoft.com": "Microsoft's whole site, not only Bing Ads",
    "msn.com": "MSN's whole site, not only Bing Ads",
    "s-msft.com": "Microsoft's static content",
    "s-msn.com": "MSN's static content",
    # Yahoo! lists yahooapis.com, whose yui.yahooapis.com serves the YUI library sites run on.
    "yahooapis.com": "the YUI library's CDN",
}

# Domains that also serve pages a visitor goes to (profiles, share dialogs): in an inline
# script a URL on them counts as a load only when a rule with a path matches it, its path ends
# in `.js`, or the script gives it to a `src`. A share link (`facebook.com/sharer/...`,
# `pinterest.com/pin/create/...`, `linkedin.com/shareArticle`) is not a tracker. Besides these,
# every held domain that is its entity's own homepage is one.
PAGE_DOMAINS = {
    "facebook.com", "instagram.com", "linkedin.com", "twitter.com", "x.com", "pinterest.com",
    "tumblr.com", "vk.com", "reddit.com", "youtube.com", "vimeo.com", "tiktok.com", "twitch.tv",
    "quora.com", "yahoo.com", "bing.com", "snapchat.com", "disqus.com", "gravatar.com",
    "dailymotion.com", "ok.ru", "telegram.org", "whatsapp.com", "xing.com", "weibo.com",
}

# ---------------------------------------------------------------------------------------------
# 2. Curated URL rules: (host, path, category, vendor) or (host, path, category, vendor, query).
#    Host: the domain and its subdomains, or "*" for any host (and relative URLs). Path: a glob
#    over the URL path (`*` crosses `/`); None = any path. They come before the hosts of
#    third-party-web, so a rule narrowed by a query precedes the general rule for its path: the
#    Google tag (gtag.js) loads Google Ads for an `AW-` id and Floodlight for a `DC-` id, and
#    Google Analytics otherwise.
# ---------------------------------------------------------------------------------------------
CURATED_TAGS = [
    ("googletagmanager.com", "/gtag/js", MARKETING, "Google Ads", "*id=AW-*"),
    ("googletagmanager.com", "/gtag/js", MARKETING, "Google Ads", "*id=DC-*"),
    ("googletagmanager.com", "/gtag/js", ANALYTICS, "Google Analytics"),
    ("googletagmanager.com", "/gtm.js", ANALYTICS, "Google Tag Manager"),
    ("googletagmanager.com", "/ns.html", ANALYTICS, "Google Tag Manager"),
    ("google-analytics.com", "/analytics.js", ANALYTICS, "Google Analytics"),
    ("google-analytics.com", "/ga.js", ANALYTICS, "Google Analytics"),
    ("google-analytics.com", None, ANALYTICS, "Google Analytics"),
    ("googleadservices.com", None, MARKETING, "Google Ads"),
    ("doubleclick.net", None, MARKETING, "Google Ads"),
    # Google's ad tags on hosts that third-party-web files elsewhere or not at all: AdSense and
    # the Google Publisher Tag.
    ("googlesyndication.com", None, MARKETING, "Google Ads"),
    ("googletagservices.com", None, MARKETING, "Google Ads"),
    ("adservice.google.com", None, MARKETING, "Google Ads"),
    # Google Maps embeds (www.google.com is otherwise Google's APIs, never held back). The Maps
    # JavaScript API on maps.googleapis.com is left to run: store locators depend on it.
    ("google.com", "/maps/embed*", MARKETING, "Google Maps"),
    ("maps.google.com", None, MARKETING, "Google Maps"),
    ("connect.facebook.net", "/*/fbevents.js", MARKETING, "Meta Pixel"),
    ("facebook.com", "/tr", MARKETING, "Meta Pixel"),
    ("facebook.com", "/tr/", MARKETING, "Meta Pixel"),
    # Social plugins (like buttons, embedded posts, comments) are frames of facebook.com.
    ("facebook.com", "/plugins/*", MARKETING, "Facebook"),
    ("facebook.com", "/v*/plugins/*", MARKETING, "Facebook"),
    # YouTube's player frames and iframe API, on a domain that is otherwise a site.
    ("youtube.com", "/embed/*", MARKETING, "YouTube"),
    ("youtube.com", "/iframe_api", MARKETING, "YouTube"),
    ("youtube.com", "/player_api", MARKETING, "YouTube"),
    ("youtube-nocookie.com", "/embed/*", MARKETING, "YouTube"),
    ("player.vimeo.com", None, MARKETING, "Vimeo"),
    ("twitter.com", "/i/adsct", MARKETING, "X (Twitter) Ads"),
    ("x.com", "/i/adsct", MARKETING, "X (Twitter) Ads"),
    ("linkedin.com", "/embed/*", MARKETING, "LinkedIn"),
    ("instagram.com", "/embed.js", MARKETING, "Instagram"),
    ("instagram.com", "/p/*/embed*", MARKETING, "Instagram"),
    ("static.hotjar.com", None, ANALYTICS, "Hotjar"),
    ("clarity.ms", "/tag/*", ANALYTICS, "Microsoft Clarity"),
    ("snap.licdn.com", None, MARKETING, "LinkedIn Insight"),
    ("px.ads.linkedin.com", None, MARKETING, "LinkedIn Insight"),
    ("analytics.tiktok.com", None, MARKETING, "TikTok Pixel"),
    ("js.hs-scripts.com", None, ANALYTICS, "HubSpot"),
    ("bat.bing.com", "/bat.js", MARKETING, "Microsoft Advertising"),
    ("bat.bing.com", "/action/*", MARKETING, "Microsoft Advertising"),
    ("mc.yandex.ru", "/metrika/*", ANALYTICS, "Yandex Metrica"),
    ("mc.yandex.ru", "/watch/*", ANALYTICS, "Yandex Metrica"),
    ("cdn.segment.com", None, ANALYTICS, "Segment"),
    ("cdn.mxpnl.com", None, ANALYTICS, "Mixpanel"),
    ("*", "*/matomo.js", ANALYTICS, "Matomo"),
    ("*", "*/piwik.js", ANALYTICS, "Matomo"),
    ("*", "*/matomo.php", ANALYTICS, "Matomo"),
    ("*", "*/piwik.php", ANALYTICS, "Matomo"),
]

# Google tags that honour Consent Mode: with `google_consent_mode: true` in a policy they are left
# to run, told the decision by a gtag('consent', 'default', …) block. Only the Google tag
# (gtag.js) and its inline calls: a Google Tag Manager container loads whatever tags it holds,
# Custom HTML for other vendors included, which Consent Mode does not govern, so GTM stays
# neutralized; so do Universal Analytics (analytics.js, ga.js) and the Ads/DoubleClick pixels.
CONSENT_MODE_TAGS = {("googletagmanager.com", "/gtag/js")}
CONSENT_MODE_SIGNATURES = {"gtag(", "googletagmanager.com/gtag/js", "'AW-", '"AW-'}

# ---------------------------------------------------------------------------------------------
# 3. Inline <script> signatures: the vendors' documented calls, for scripts that call a tracker
#    without naming its host (the rewriter also reads every URL an inline script names, so a
#    loader is caught by its URL). A signature that starts with an identifier character matches
#    only where an identifier starts, so `ym(` does not match `anonym(`. Each must be specific
#    enough never to occur in a site's own code.
# ---------------------------------------------------------------------------------------------
INLINE_TAGS = [
    # (signature, category, vendor)
    ("gtag(", ANALYTICS, "Google Analytics"),
    ("googletagmanager.com/gtag/js", ANALYTICS, "Google Analytics"),
    # A Google Ads id configured through gtag (`gtag('config', 'AW-123')`).
    ("'AW-", MARKETING, "Google Ads"),
    ('"AW-', MARKETING, "Google Ads"),
    ("ga('create'", ANALYTICS, "Google Analytics"),
    ('ga("create"', ANALYTICS, "Google Analytics"),
    ("google-analytics.com/analytics.js", ANALYTICS, "Google Analytics"),
    ("google-analytics.com/ga.js", ANALYTICS, "Google Analytics"),
    ("_gaq.push", ANALYTICS, "Google Analytics"),
    ("'gtm.start'", ANALYTICS, "Google Tag Manager"),
    ('"gtm.start"', ANALYTICS, "Google Tag Manager"),
    ("googletagmanager.com/gtm.js", ANALYTICS, "Google Tag Manager"),
    ("adsbygoogle", MARKETING, "Google Ads"),
    ("googletag.cmd", MARKETING, "Google Ads"),
    ("googletag.pubads", MARKETING, "Google Ads"),
    ("fbq(", MARKETING, "Meta Pixel"),
    # The older Custom Audience pixel (fbds.js): `_fbq.push(['addPixelId', …])`.
    ("_fbq.push", MARKETING, "Meta Pixel"),
    ("_paq.push", ANALYTICS, "Matomo"),
    ("_mtm.push", ANALYTICS, "Matomo"),
    ("hj(", ANALYTICS, "Hotjar"),
    ("h.hj=h.hj", ANALYTICS, "Hotjar"),
    ("static.hotjar.com", ANALYTICS, "Hotjar"),
    ("clarity(", ANALYTICS, "Microsoft Clarity"),
    ("clarity.ms/tag", ANALYTICS, "Microsoft Clarity"),
    ("_linkedin_partner_id", MARKETING, "LinkedIn Insight"),
    ("snap.licdn.com", MARKETING, "LinkedIn Insight"),
    ("lintrk(", MARKETING, "LinkedIn Insight"),
    ("_hsq", ANALYTICS, "HubSpot"),
    ("js.hs-scripts.com", ANALYTICS, "HubSpot"),
    ("ttq.", MARKETING, "TikTok Pixel"),
    ("analytics.tiktok.com", MARKETING, "TikTok Pixel"),
    ("uetq", MARKETING, "Microsoft Advertising"),
    ("bat.bing.com", MARKETING, "Microsoft Advertising"),
    ("ym(", ANALYTICS, "Yandex Metrica"),
    ("mc.yandex.ru/metrika", ANALYTICS, "Yandex Metrica"),
    ("cdn.segment.com", ANALYTICS, "Segment"),
    ("cdn.mxpnl.com", ANALYTICS, "Mixpanel"),
    ("mixpanel.init(", ANALYTICS, "Mixpanel"),
    ("snaptr(", MARKETING, "Snapchat"),
    ("_taboola.push", MARKETING, "Taboola"),
    ("_tfa.push", MARKETING, "Taboola"),
    ("criteo_q", MARKETING, "Criteo"),
    ("_qevents", MARKETING, "Quantcast"),
    ("__qc(", MARKETING, "Quantcast"),
    ("adroll_adv_id", MARKETING, "Adroll"),
    ("_sf_async_config", ANALYTICS, "Chartbeat"),
    ("_comscore", MARKETING, "Scorecard Research"),
    ("COMSCORE.beacon", MARKETING, "Scorecard Research"),
    ("pintrk(", MARKETING, "Pinterest"),
    ("twq(", MARKETING, "X (Twitter) Ads"),
    ("obApi(", MARKETING, "Outbrain"),
    ("rdt(", MARKETING, "Reddit Ads"),
    ("_hmt.push", ANALYTICS, "Baidu Analytics"),
    ("_fs_org", ANALYTICS, "FullStory"),
    # Disqus's documented configuration; its loader builds the host from the shortname.
    ("disqus_shortname", MARKETING, "Disqus"),
    ("disqus_config", MARKETING, "Disqus"),
    ("_kmq.push", ANALYTICS, "KISSmetrics"),
    ("heap.load(", ANALYTICS, "Heap"),
    ("_vwo_code", ANALYTICS, "VWO"),
    ("apstag.", MARKETING, "Amazon Ads"),
]

# ---------------------------------------------------------------------------------------------
# 4. What the catalogue must hold back, and must leave alone (checked before anything is
#    written): (URL, category it must fall in, or None for "never held back").
# ---------------------------------------------------------------------------------------------
SAMPLE_URLS = [
    ("https://sc-static.net/scevent.min.js", MARKETING),
    ("https://cdn.taboola.com/libtrc/example/loader.js", MARKETING),
    ("https://pagead2.googlesyndication.com/pagead/js/adsbygoogle.js", MARKETING),
    ("https://www.googletagservices.com/tag/js/gpt.js", MARKETING),
    ("https://securepubads.g.doubleclick.net/tag/js/gpt.js", MARKETING),
    ("https://cdn.matomo.cloud/example.matomo.cloud/container_abc.js", ANALYTICS),
    ("https://edge.fullstory.com/s/fs.js", ANALYTICS),
    ("https://static.criteo.net/js/ld/publishertag.js", MARKETING),
    ("https://secure.quantserve.com/quant.js", MARKETING),
    ("https://s.adroll.com/j/roundtrip.js", MARKETING),
    ("https://static.chartbeat.com/js/chartbeat.js", ANALYTICS),
    ("https://sb.scorecardresearch.com/beacon.js", MARKETING),
    ("https://assets.pinterest.com/js/pinit.js", MARKETING),
    ("https://platform.twitter.com/widgets.js", MARKETING),
    ("https://connect.facebook.net/en_US/sdk.js", MARKETING),
    ("https://connect.facebook.net/en_US/fbds.js", MARKETING),
    ("https://www.facebook.com/plugins/like.php?href=x", MARKETING),
    ("https://ad.fls.doubleclick.net/activityi;src=1", MARKETING),
    ("https://www.facebook.com/tr?id=1&ev=PageView", MARKETING),
    ("https://c.amazon-adsystem.com/aax2/apstag.js", MARKETING),
    ("https://widgets.outbrain.com/outbrain.js", MARKETING),
    ("https://www.youtube.com/embed/abc", MARKETING),
    ("https://player.vimeo.com/video/1", MARKETING),
    ("https://www.google.com/maps/embed?pb=1", MARKETING),
    ("https://tags.tiqcdn.com/utag/a/b/prod/utag.js", ANALYTICS),
    ("https://cdn.parsely.com/keys/example.com/p.js", ANALYTICS),
    ("https://secure.gravatar.com/avatar/abc", MARKETING),
    ("https://stats.wp.com/e-202401.js", ANALYTICS),
    ("https://example.disqus.com/embed.js", MARKETING),
    ("https://s7.addthis.com/js/300/addthis_widget.js", MARKETING),
    ("https://platform-api.sharethis.com/js/sharethis.js", MARKETING),
    ("https://vk.com/js/api/openapi.js", MARKETING),
    ("https://counter.yadro.ru/hit", ANALYTICS),
    ("https://script.hotjar.com/modules.js", ANALYTICS),
    ("https://bat.bing.com/bat.js", MARKETING),
    ("https://www.clarity.ms/tag/abc", ANALYTICS),
    # Never held back.
    ("https://fonts.googleapis.com/css?family=Roboto", None),
    ("https://fonts.gstatic.com/s/roboto.woff2", None),
    ("https://ajax.googleapis.com/ajax/libs/jquery/3.7.1/jquery.min.js", None),
    ("https://maps.googleapis.com/maps/api/js?key=x", None),
    ("https://www.google.com/recaptcha/api.js", None),
    ("https://www.gstatic.com/recaptcha/releases/x/recaptcha__en.js", None),
    ("https://cdn.cookielaw.org/scripttemplates/otSDKStub.js", None),
    ("https://consent.cookiebot.com/uc.js", None),
    ("https://fundingchoicesmessages.google.com/i/pub?ers=1", None),
    ("https://js.stripe.com/v3/", None),
    ("https://www.paypal.com/sdk/js?client-id=x", None),
    ("https://cdnjs.cloudflare.com/ajax/libs/x.js", None),
    ("https://cdn.jsdelivr.net/npm/x", None),
    ("https://code.jquery.com/jquery-3.7.1.min.js", None),
    ("https://use.typekit.net/abc.css", None),
    ("https://d3abc123example.cloudfront.net/app.js", None),
    ("https://yui.yahooapis.com/3.18.1/yui/yui-min.js", None),
    ("https://i0.wp.com/example.com/image.jpg", None),
    ("https://www.microsoft.com/en-us/", None),
]


def registrable(host: str) -> str:
    """The last two labels: enough to compare a homepage with a domain (no public suffix list;
    only used to mark page domains, where a miss merely keeps a host strict)."""
    return ".".join(host.split(".")[-2:])


def covers(domain: str, host: str) -> bool:
    return host == domain or host.endswith("." + domain)


def held_category(entity: dict) -> str | None:
    if entity["name"] in ENTITY_CATEGORY:
        return ENTITY_CATEGORY[entity["name"]]
    category = entity["category"]
    if category not in CATEGORY_MAP:
        raise SystemExit(f"third-party-web category without a mapping: {category!r}")
    return CATEGORY_MAP[category]


def domains_of(entity: dict) -> list[str]:
    """An entity's domains as hosts: `*.x` covers x and its subdomains, as a bare entry does."""
    out = []
    for d in entity["domains"]:
        d = d.strip().lower().removeprefix("*.")
        if d and d not in out:
            out.append(d)
    return out


def host_rules(entities: list[dict], curated_hosts: set[str]) -> tuple[list[dict], dict]:
    """The rules derived from third-party-web: exceptions first, then held domains, each group
    longest domain first. Also returns statistics."""
    held: dict[str, tuple[str, str, bool]] = {}  # domain -> (category, vendor, pages)
    never: dict[str, str] = {}  # domain -> vendor
    stats = {"entities": len(entities), "held_entities": 0, "shared_skipped": 0, "dropped": 0,
             "conflicts": 0}
    for e in entities:
        category = held_category(e)
        homepage = registrable(urlsplit(e.get("homepage") or "").hostname or "")
        if category is not None:
            stats["held_entities"] += 1
        for d in domains_of(e):
            if category is None:
                never.setdefault(d, e["name"])
                continue
            if d in SHARED_DOMAINS:
                stats["shared_skipped"] += 1
                continue
            if d in DROPPED_DOMAINS:
                stats["dropped"] += 1
                continue
            site = d.removeprefix("www.")
            pages = site in PAGE_DOMAINS or site == homepage
            if d in held:
                # Listed by two held entities: the more restrictive category wins.
                stats["conflicts"] += 1
                if RANK[held[d][0]] >= RANK[category]:
                    continue
            held[d] = (category, e["name"], pages)
    for d in curated_hosts:
        held.pop(d, None)
    # A never-held host under a held domain (a consent manager on an ad company's domain) is
    # an exception, emitted before the held rule it carves out.
    exceptions = {
        d: v for d, v in never.items()
        if d not in held and any(covers(h, d) for h in held)
    }
    order = lambda d: (-d.count("."), d)  # noqa: E731
    rules = [
        {"host": d, "category": NECESSARY, "vendor": exceptions[d], "pages": False}
        for d in sorted(exceptions, key=order)
    ]
    for d in sorted(held, key=order):
        category, vendor, pages = held[d]
        rules.append({"host": d, "category": category, "vendor": vendor, "pages": pages})
    stats["exceptions"] = len(exceptions)
    stats["host_rules"] = len(held)
    return rules, stats


def curated_rules() -> list[dict]:
    out = []
    for host, path, category, vendor, *query in CURATED_TAGS:
        out.append({
            "host": host, "path": path, "query": query[0] if query else None,
            "category": category, "vendor": vendor,
            "consent_mode": (host, path) in CONSENT_MODE_TAGS,
        })
    return out


def tag_rules(entities_path: Path = ENTITIES) -> tuple[list[dict], dict]:
    entities = json.loads(entities_path.read_text(encoding="utf-8"))
    curated = curated_rules()
    curated_hosts = {r["host"] for r in curated if r["path"] is None and r["query"] is None}
    derived, stats = host_rules(entities, curated_hosts)
    rules = curated + derived
    check(rules)
    return rules, stats


def matching_rule(rules: list[dict], url: str) -> dict | None:
    """The first rule matching `url`, as the rewriter chooses it."""
    parts = urlsplit(url)
    host, path, query = parts.hostname or "", parts.path or "/", parts.query
    for r in rules:
        if r["host"] != "*" and not covers(r["host"], host):
            continue
        if r.get("path") and not fnmatch.fnmatchcase(path, r["path"]):
            continue
        if r.get("query") and not fnmatch.fnmatchcase(query, r["query"]):
            continue
        return r
    return None


def check(rules: list[dict]) -> None:
    errors = []
    seen = set()
    for r in rules:
        key = (r["host"], r.get("path"), r.get("query"))
        if key in seen:
            errors.append(f"duplicate tag rule {key}")
        seen.add(key)
        if r["host"] in SHARED_DOMAINS:
            errors.append(f"tag rule for a whole shared domain {r['host']!r}")
    unknown = (CONSENT_MODE_TAGS - {(h, p) for h, p, *_ in CURATED_TAGS}) | (
        CONSENT_MODE_SIGNATURES - {sig for sig, *_ in INLINE_TAGS}
    )
    if unknown:
        errors.append(f"consent-mode entries without a tag rule: {unknown}")
    if len({s for s, *_ in INLINE_TAGS}) != len(INLINE_TAGS):
        errors.append("duplicate inline signature")
    for url, want in SAMPLE_URLS:
        r = matching_rule(rules, url)
        got = r["category"] if r else None
        if got == NECESSARY:
            got = None
        if got != want:
            errors.append(f"{url} is held back as {got} (rule {r and r['host']!r}), "
                          f"expected {want}")
    if errors:
        raise SystemExit("tag catalogue self-check failed:\n  " + "\n  ".join(errors))
