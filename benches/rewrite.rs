//! HTML tag rewriting throughput under the built-in policy, nothing granted:
//!
//! - the load harness's 21 KiB page (benches/load.py: Google Analytics and Meta tags, then
//!   product cards with a link and an image each), and an element-heavy 100 KiB page (400
//!   blocks, each with a link, an `<img srcset>`, a style sheet `<link>` and a first-party inline
//!   script), each in 8 KiB chunks, read as a stream (every kind of tag selected) and as a whole
//!   document (the kinds its bytes hold, [`Kinds::of`], as the proxy does when it has the whole
//!   page); with lol_html alone (no handlers) as the floor;
//! - a 100 KiB page fed in 1 KiB chunks, once with few tracker tags and once with many;
//! - the real pages of tests/realpages.rs (fetched by `scripts/realpages` into
//!   target/realpages/pages), all of them in turn, in 8 KiB chunks.
//!
//! Run with `cargo bench --bench rewrite`.

use consent_proxy::category::CategorySet;
use consent_proxy::filter::html::{Kinds, Params, TagRules, rewriter};
use consent_proxy::policy;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::sync::Arc;

const TRACKER: &str = r#"<script async src="https://www.googletagmanager.com/gtag/js?id=G-1"></script><script>window.dataLayer=window.dataLayer||[];function gtag(){dataLayer.push(arguments);}gtag('js',new Date());</script><noscript><img src="https://www.facebook.com/tr?id=1&ev=PageView"></noscript>"#;
const CONTENT: &str = r#"<div class="card"><h2>Product</h2><p>Some description text with <a href="/item/1">a link</a> and <img src="/img/1.jpg" alt="x"></p><script>console.log("app code")</script></div>"#;

fn page(trackers_every: usize) -> Vec<u8> {
    let mut s = String::from("<!doctype html><html><head><title>t</title></head><body>");
    let mut i = 0;
    while s.len() < 100 * 1024 {
        s.push_str(CONTENT);
        i += 1;
        if i % trackers_every == 0 {
            s.push_str(TRACKER);
        }
    }
    s.push_str("</body></html>");
    s.into_bytes()
}

/// The load harness's page (benches/load.py `page()`): 20 KiB.
fn load_page() -> Vec<u8> {
    let mut s = String::from(concat!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Shop</title>\n",
        "<script async src=\"https://www.googletagmanager.com/gtag/js?id=G-LOAD123\"></script>\n",
        "<script>window.dataLayer=window.dataLayer||[];function gtag(){dataLayer.push(arguments);}\n",
        "gtag('js',new Date());gtag('config','G-LOAD123');</script>\n",
        "<script>!function(f,b,e,v,n,t,s){if(f.fbq)return;n=f.fbq=function(){n.callMethod?\n",
        "n.callMethod.apply(n,arguments):n.queue.push(arguments)};if(!f._fbq)f._fbq=n;n.push=n;\n",
        "n.loaded=!0;n.version='2.0';n.queue=[];t=b.createElement(e);t.async=!0;t.src=v;\n",
        "s=b.getElementsByTagName(e)[0];s.parentNode.insertBefore(t,s)}(window,document,'script',\n",
        "'https://connect.facebook.net/en_US/fbevents.js');fbq('init','1');fbq('track','PageView');</script>\n",
        "<noscript><img height=\"1\" width=\"1\" src=\"https://www.facebook.com/tr?id=1&ev=PageView&noscript=1\"></noscript>\n",
        "<link rel=\"stylesheet\" href=\"/static/site.css\"><script src=\"/static/app.js\" defer></script>\n",
        "</head><body><h1>Shop</h1>\n",
    ));
    let card = "<div class=\"card\"><h2>Product</h2><p>A description of the product with <a href=\"/item\">a link</a> and <img src=\"/img/p.jpg\" alt=\"p\"></p></div>\n";
    while s.len() < 20 * 1024 - 200 {
        s.push_str(card);
    }
    s.push_str("</body></html>\n");
    s.into_bytes()
}

/// 400 blocks, each with a link, an `<img srcset>`, a style sheet `<link>` and a first-party
/// inline script: about 100 KiB.
fn element_heavy_page() -> Vec<u8> {
    let mut s = String::from("<!doctype html><html><head><title>t</title></head><body>");
    for i in 0..400 {
        s.push_str(&format!(
            "<section class=\"item\"><a href=\"/products/{i}\">Item {i}</a><img src=\"/images/{i}.jpg\" srcset=\"/images/{i}-2x.jpg 2x, /images/{i}-3x.jpg 3x\" alt=\"Item {i}\"><link rel=\"stylesheet\" href=\"/css/item-{i}.css\"><script>window.items.push({{id: {i}}});</script></section>\n"
        ));
    }
    s.push_str("</body></html>");
    s.into_bytes()
}

/// Rewrites `page` fed in `chunk`-byte pieces with nothing granted, stopping at the tags
/// `kinds` lists, up to the end or the first error; the number of tags neutralized.
fn rewrite(rules: &Arc<TagRules>, page: &[u8], chunk: usize, kinds: Kinds) -> usize {
    let mut out = 0usize;
    let mut params = Params::new(Arc::clone(rules), CategorySet::NECESSARY, 16 << 20);
    params.kinds = kinds;
    let (mut rw, report) = rewriter(params, |c: &[u8]| out += c.len());
    if page.chunks(chunk).all(|c| rw.write(c).is_ok()) {
        let _ = rw.end();
    }
    report.report().neutralized
}

/// lol_html parsing `page` with no handlers at all.
fn lol_html_alone(page: &[u8], chunk: usize) -> usize {
    let mut out = 0usize;
    let mut rw = lol_html::HtmlRewriter::new(lol_html::Settings::new(), |c: &[u8]| out += c.len());
    for c in page.chunks(chunk) {
        rw.write(c).unwrap();
    }
    rw.end().unwrap();
    out
}

fn bench(c: &mut Criterion) {
    let policy = policy::builtin().expect("the built-in policy compiles");
    let rules = policy.tags.clone();
    for (name, input) in [
        ("the load page, 21 KiB", load_page()),
        ("element-heavy, 100 KiB", element_heavy_page()),
    ] {
        let mut group = c.benchmark_group(format!("rewrite {name}, 8 KiB chunks"));
        group.throughput(Throughput::Bytes(input.len() as u64));
        group.bench_function("lol_html alone, no handlers", |b| {
            b.iter(|| lol_html_alone(&input, 8192))
        });
        group.bench_function("streamed: every kind of tag", |b| {
            b.iter(|| rewrite(&rules, &input, 8192, Kinds::ALL))
        });
        group.bench_function("whole document: the kinds it holds", |b| {
            b.iter(|| rewrite(&rules, &input, 8192, Kinds::of(&input)))
        });
        group.finish();
    }

    let mut group = c.benchmark_group("rewrite 100 KiB in 1 KiB chunks");
    for (name, every) in [("few matches", 400), ("many matches", 2)] {
        let input = page(every);
        group.throughput(Throughput::Bytes(input.len() as u64));
        group.bench_function(name, |b| {
            b.iter(|| rewrite(&rules, &input, 1024, Kinds::ALL))
        });
    }
    group.finish();

    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/realpages/pages");
    let mut pages: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .map(|d| {
            d.filter_map(|e| std::fs::read(e.ok()?.path()).ok())
                .collect()
        })
        .unwrap_or_default();
    if pages.is_empty() {
        eprintln!("no real pages in {}: run scripts/realpages", dir.display());
        return;
    }
    pages.sort();
    let total: usize = pages.iter().map(Vec::len).sum();
    let mut group = c.benchmark_group(format!(
        "rewrite {} real pages in 8 KiB chunks",
        pages.len()
    ));
    group.throughput(Throughput::Bytes(total as u64));
    group.sample_size(10);
    for (name, whole) in [("streamed", false), ("whole documents", true)] {
        group.bench_function(name, |b| {
            b.iter(|| {
                pages
                    .iter()
                    .map(|p| {
                        let kinds = if whole { Kinds::of(p) } else { Kinds::ALL };
                        rewrite(&rules, p, 8192, kinds)
                    })
                    .sum::<usize>()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
