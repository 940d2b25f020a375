//! HTML tag rewriting throughput under the built-in policy: a 100 KiB page fed in 1 KiB chunks,
//! once with few tracker tags and once with many; and the real pages of tests/realpages.rs
//! (fetched by `scripts/realpages` into target/realpages/pages), all of them in turn, in
//! 8 KiB chunks.
//!
//! Run with `cargo bench --bench rewrite`.

use consent_proxy::category::CategorySet;
use consent_proxy::filter::html::{TagRules, document_encoding, rewriter};
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

/// Rewrites `page` fed in `chunk`-byte pieces with nothing granted, up to the end or the first
/// error; the number of tags neutralized.
fn rewrite(rules: &Arc<TagRules>, page: &[u8], chunk: usize) -> usize {
    let mut out = 0usize;
    let (mut rw, report) = rewriter(
        Arc::clone(rules),
        CategorySet::NECESSARY,
        true,
        16 << 20,
        document_encoding(None).unwrap(),
        None,
        |c: &[u8]| out += c.len(),
    );
    if page.chunks(chunk).all(|c| rw.write(c).is_ok()) {
        let _ = rw.end();
    }
    report.report().neutralized
}

fn bench(c: &mut Criterion) {
    let policy = policy::builtin().expect("the built-in policy compiles");
    let rules = policy.tags.clone();
    let mut group = c.benchmark_group("rewrite 100 KiB in 1 KiB chunks");
    for (name, every) in [("few matches", 400), ("many matches", 2)] {
        let input = page(every);
        group.throughput(Throughput::Bytes(input.len() as u64));
        group.bench_function(name, |b| b.iter(|| rewrite(&rules, &input, 1024)));
    }
    // The floor: lol_html parsing the same page with no handlers at all.
    let input = page(400);
    group.throughput(Throughput::Bytes(input.len() as u64));
    group.bench_function("lol_html alone, no handlers", |b| {
        b.iter(|| {
            let mut out = 0usize;
            let mut rw =
                lol_html::HtmlRewriter::new(lol_html::Settings::new(), |c: &[u8]| out += c.len());
            for chunk in input.chunks(1024) {
                rw.write(chunk).unwrap();
            }
            rw.end().unwrap();
            out
        })
    });
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
    group.bench_function("built-in catalogue, nothing granted", |b| {
        b.iter(|| {
            pages
                .iter()
                .map(|p| rewrite(&rules, p, 8192))
                .sum::<usize>()
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
