//! The state one document's handlers share: what was done (the report), the text held until
//! an end tag, and where the document stands.

use std::sync::{Arc, Mutex};

use super::held::RawText;

/// The longest inline script judged by its text; a longer one is neutralized unread.
pub const MAX_INLINE_SCRIPT: usize = 512 * 1024;

/// What the rewriter did, for the decision log.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TagReport {
    pub neutralized: usize,
    pub vendors: Vec<String>,
}

impl TagReport {
    pub(super) fn record(&mut self, vendor: &str) {
        self.neutralized += 1;
        if !self.vendors.iter().any(|v| v == vendor) {
            self.vendors.push(vendor.to_string());
        }
    }

    pub(super) fn merge(&mut self, other: TagReport) {
        self.neutralized += other.neutralized;
        for v in other.vendors {
            if !self.vendors.contains(&v) {
                self.vendors.push(v);
            }
        }
    }
}

/// Element text held until the end tag, up to [`MAX_INLINE_SCRIPT`] bytes.
#[derive(Default)]
pub(super) struct Held {
    pub(super) text: String,
    /// Longer than the limit: the text was dropped and the element cannot be judged.
    pub(super) unreadable: bool,
}

impl Held {
    pub(super) fn push(&mut self, chunk: &str) {
        if self.unreadable {
            return;
        }
        if self.text.len() + chunk.len() > MAX_INLINE_SCRIPT {
            self.unreadable = true;
            self.text = String::new();
        } else {
            self.text.push_str(chunk);
        }
    }
}

/// State shared by the handlers of one document.
#[derive(Default)]
pub(super) struct Shared {
    pub(super) report: TagReport,
    /// The inline script being held: its start tag's attributes and its text so far.
    pub(super) script: Option<(Vec<(String, String)>, Held)>,
    /// The text of the `<noscript>` or `<style>` being held.
    pub(super) raw: Option<(RawText, Held)>,
    /// How many SVG `<style>` elements are open, and the text node of theirs being held.
    pub(super) svg_styles: usize,
    pub(super) svg_text: Held,
    /// Whether the `<head>` block has been written.
    pub(super) injected: bool,
    /// Whether the `<body>` block (the banner) has been written.
    pub(super) body_written: bool,
    /// How many `<template>` elements are open: their content is inert.
    pub(super) templates: usize,
    /// How many `<iframe srcdoc>` documents this one is inside.
    pub(super) srcdoc_depth: usize,
}

/// Read access to a rewriter's report.
#[derive(Clone, Default)]
pub struct TagReportHandle(pub(super) Arc<Mutex<Shared>>);

impl TagReportHandle {
    pub fn report(&self) -> TagReport {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .report
            .clone()
    }

    /// Sets the report of a document that was not parsed (a remembered rewrite).
    pub fn set(&self, report: TagReport) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).report = report;
    }
}
