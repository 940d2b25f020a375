//! Where decision records go: one JSON line each on stdout, written by a dedicated thread so
//! that request tasks never block on the terminal or a pipe. The queue is unbounded: a record is
//! never dropped, and every queued record is written before the process exits.

use super::record::Decision;
use std::io::Write;
use std::sync::Mutex;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::thread::JoinHandle;

/// A handle for sending records to the writer thread.
pub struct LogSink {
    tx: Mutex<Option<Sender<Vec<u8>>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

impl LogSink {
    /// Starts a writer thread over `out`.
    pub fn new<W: Write + Send + 'static>(out: W) -> LogSink {
        let (tx, rx) = channel::<Vec<u8>>();
        let writer = std::thread::Builder::new()
            .name("decision-log".into())
            .spawn(move || write_loop(rx, out))
            .expect("spawn the decision-log thread");
        LogSink {
            tx: Mutex::new(Some(tx)),
            writer: Mutex::new(Some(writer)),
        }
    }

    /// Writes records to standard output.
    pub fn stdout() -> LogSink {
        LogSink::new(std::io::stdout())
    }

    /// Writes records to `path`, rotated at midnight UTC into `NAME.YYYY-MM-DD` files in the
    /// same directory, of which the newest `retention_days` are kept: older ones are deleted.
    /// `path` itself becomes a symbolic link to the current file.
    pub fn daily_file(path: &std::path::Path, retention_days: u32) -> Result<LogSink, String> {
        let fail = |why: String| format!("log.file {}: {why}", path.display());
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| fail("not a file name".into()))?;
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => std::path::Path::new("."),
        };
        if retention_days == 0 {
            return Err(fail("retention_days must be at least 1".into()));
        }
        let appender = tracing_appender::rolling::RollingFileAppender::builder()
            .rotation(tracing_appender::rolling::Rotation::DAILY)
            .filename_prefix(name)
            .latest_symlink(name)
            .max_log_files(retention_days as usize)
            .build(dir)
            .map_err(|e| fail(e.to_string()))?;
        Ok(LogSink::new(appender))
    }

    /// Queues one record.
    pub fn emit(&self, d: &Decision) {
        let mut line = match serde_json::to_vec(d) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!("cannot serialize a decision record: {e}");
                return;
            }
        };
        line.push(b'\n');
        let guard = self.tx.lock().unwrap_or_else(|e| e.into_inner());
        match guard.as_ref() {
            Some(tx) if tx.send(line).is_ok() => {}
            _ => tracing::error!("decision log closed; a record could not be written"),
        }
    }

    /// Stops accepting records and waits until every queued one is written and flushed.
    pub fn close(&self) {
        drop(self.tx.lock().unwrap_or_else(|e| e.into_inner()).take());
        if let Some(w) = self.writer.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = w.join();
        }
    }
}

fn write_loop<W: Write>(rx: Receiver<Vec<u8>>, out: W) {
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, out);
    while let Ok(line) = rx.recv() {
        let mut ok = out.write_all(&line).is_ok();
        // Drain what is already queued before flushing, to batch writes under load.
        while ok && let Ok(more) = rx.try_recv() {
            ok = out.write_all(&more).is_ok();
        }
        if !ok || out.flush().is_err() {
            eprintln!("consent-proxy: the decision log cannot be written");
        }
    }
    let _ = out.flush();
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);
    impl Write for Shared {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn decision() -> Decision {
        Decision {
            ts: "t".into(),
            client: "c".into(),
            method: "GET".into(),
            host: "h".into(),
            path: "/".into(),
            status: 200,
            granted: crate::category::CategorySet::NECESSARY,
            source: "default",
            region: None,
            signals: vec![],
            cookies: Default::default(),
            blocked: false,
            tags_neutralized: 0,
            tag_vendors: Vec::new(),
            mode: "enforce",
            duration_ms: 0.5,
            error: None,
        }
    }

    #[test]
    fn a_daily_file_keeps_the_newest_files_and_links_the_current_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("decisions.log");
        // Twenty days of older files, and one that is not the log's.
        for day in 1..=20 {
            std::fs::write(
                dir.path().join(format!("decisions.log.2026-10-{day:02}")),
                "old\n",
            )
            .unwrap();
        }
        std::fs::write(dir.path().join("other.txt"), "keep\n").unwrap();
        let sink = LogSink::daily_file(&path, 3).unwrap();
        sink.emit(&decision());
        sink.close();
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        let dated: Vec<&String> = names
            .iter()
            .filter(|n| n.starts_with("decisions.log."))
            .collect();
        assert_eq!(dated.len(), 3, "{names:?}");
        assert!(!names.contains(&"decisions.log.2026-10-01".to_string()));
        assert!(names.contains(&"other.txt".to_string()));
        // The link names today's file, which holds the record.
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("\"method\":\"GET\""), "{text}");
        assert!(LogSink::daily_file(&path, 0).is_err());
    }

    #[test]
    fn every_record_is_written_before_close_returns() {
        let buf = Shared::default();
        let sink = LogSink::new(buf.clone());
        let d = decision();
        for _ in 0..10_000 {
            sink.emit(&d);
        }
        sink.close();
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text.lines().count(), 10_000);
        let v: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        assert_eq!(v["granted"], serde_json::json!(["necessary"]));
        assert_eq!(v["stripped_set_cookies"], serde_json::json!([]));
        assert!(v.get("error").is_none());
    }
}
