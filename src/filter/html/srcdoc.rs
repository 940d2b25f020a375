//! `<iframe srcdoc>`: a document inside an attribute, rewritten like the page.

use super::surgery::{attributes_of, misread_when_changed, rewrite_tags};
use super::{Ctx, Kinds, Params, TagReportHandle, rewriter_reporting_to};
use lol_html::html_content::Element;

/// What an `<iframe srcdoc>` document may hold while it is rewritten.
const MAX_SRCDOC_MEMORY: usize = 16 << 20;

/// How deep `<iframe srcdoc>` documents are rewritten inside each other; a deeper one is
/// dropped. Each level is a rewriter on the stack (and the escaping grows with each), so a
/// bound keeps a crafted page from exhausting the stack.
pub(super) const MAX_SRCDOC_DEPTH: usize = 4;

impl Ctx<'_> {
    /// An `<iframe srcdoc>`: its document is rewritten like the page (with no Consent Mode: the
    /// block is not in it), and written back.
    pub(super) fn srcdoc(&self, el: &mut Element<'_, '_, lol_html::send::SendHandlerTypes>) {
        let Some(doc) = el.get_attribute("srcdoc") else {
            return;
        };
        let depth = self.shared.lock().unwrap().srcdoc_depth + 1;
        if depth > MAX_SRCDOC_DEPTH {
            if self.enforce {
                tracing::debug!("dropped an <iframe srcdoc> nested {depth} deep");
                el.remove_attribute("srcdoc");
            }
            return;
        }
        let doc = htmlize::unescape_attribute(&*doc);
        let mut out = Vec::new();
        let report = TagReportHandle::default();
        report.0.lock().unwrap().srcdoc_depth = depth;
        let mut params = Params::new(self.rules.clone(), self.granted, MAX_SRCDOC_MEMORY);
        params.enforce = self.enforce;
        params.kinds = Kinds::of(doc.as_bytes());
        let mut rw = rewriter_reporting_to(&report, params, |c: &[u8]| out.extend_from_slice(c));
        let done = rw.write(doc.as_bytes()).and_then(|()| rw.end());
        self.shared.lock().unwrap().report.merge(report.report());
        if !self.enforce {
            return;
        }
        let srcdoc = match (done, String::from_utf8(out)) {
            // Changed: a tag neutralized, or a srcdoc inside dropped. lol_html escapes the
            // double quotes of a value; `&` is escaped here.
            (Ok(()), Ok(out)) if out != doc => Some(out.replace('&', "&amp;")),
            (Ok(()), Ok(_)) => return,
            // A document that cannot be rewritten is not loaded.
            _ => None,
        };
        if misread_when_changed(el) {
            let mut attrs = attributes_of(el);
            attrs.retain(|(n, _)| n != "srcdoc");
            if let Some(doc) = srcdoc {
                // Written by `rewrite_tags`, which escapes double quotes as lol_html does.
                attrs.push(("srcdoc".to_string(), doc));
            }
            rewrite_tags(el, &attrs);
            return;
        }
        match srcdoc {
            Some(doc) => {
                let _ = el.set_attribute("srcdoc", &doc);
            }
            None => el.remove_attribute("srcdoc"),
        }
    }
}
